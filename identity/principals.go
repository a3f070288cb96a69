// Package identity owns who may call goldsmith: service principals (a client
// id and a secret kept only as a salted hash), the access tokens the token
// endpoint issues to them (HS256 JWTs signed with a key kept in the data
// directory, expiring), the static bearer tokens of the configuration, and
// the caller a request was authenticated as.
//
// Principals are stored as documents in the server's database (package
// store) under /goldsmith/principals, so `goldsmith principal` can manage
// them while a server runs, and a deleted principal's tokens stop working
// at once: every token is checked against the directory.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/goldsmith-dev/goldsmith/store"
)

// Defaults for a server that configures nothing else. The tenant is the one
// the Azure CLI is told at `az login --tenant`; ADFS-style authorities never
// send it back, so any GUID would do.
const (
	DefaultTenant       = "00000000-0000-0000-0000-000000000000"
	DefaultSubscription = "00000000-0000-0000-0000-000000000001"
)

const (
	principalType  = "Goldsmith/principals"
	principalScope = "/goldsmith/principals"
	initMarkerID   = "/goldsmith/identity/initialized"
	initMarkerType = "Goldsmith/identityMarker"
)

// Principal is a service principal. The secret itself is never stored.
type Principal struct {
	ClientID      string    `json:"clientId"`
	Name          string    `json:"name"`
	Subscriptions []string  `json:"subscriptions"`
	Created       time.Time `json:"created"`
	// SecretSalt and SecretHash: sha256(salt || secret). Secrets are 256
	// random bits generated here, so a fast hash cannot be brute-forced;
	// a slow password hash would only slow down the token endpoint.
	SecretSalt string `json:"secretSalt"`
	SecretHash string `json:"secretHash"`
}

// Errors callers test for with errors.Is.
var (
	ErrUnknownClient = errors.New("unknown client")
	ErrBadSecret     = errors.New("invalid client secret")
)

// Directory keeps the service principals in a store.
type Directory struct {
	st *store.Store
}

// NewDirectory is the directory of the principals kept in st.
func NewDirectory(st *store.Store) *Directory { return &Directory{st: st} }

func principalID(clientID string) string { return principalScope + "/" + strings.ToLower(clientID) }

// Create makes a principal named name with access to subscriptions and
// returns it with its secret, which is shown once and kept only hashed.
func (d *Directory) Create(ctx context.Context, name string, subscriptions []string) (Principal, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Principal{}, "", errors.New("a service principal needs a name")
	}
	if len(subscriptions) == 0 {
		subscriptions = []string{DefaultSubscription}
	}
	// Hex, not base64: a secret starting with "-" would be taken for an
	// option by `az login -p`.
	secret, err := randomHex(32)
	if err != nil {
		return Principal{}, "", err
	}
	salt, err := randomHex(16)
	if err != nil {
		return Principal{}, "", err
	}
	p := Principal{ClientID: newGUID(), Name: name, Subscriptions: subscriptions, SecretSalt: salt, SecretHash: hashSecret(salt, secret)}
	err = d.st.Update(ctx, func(tx *store.Tx) error {
		p.Created = tx.Now()
		return tx.CreateJSON(ctx, principalID(p.ClientID), principalType, p)
	})
	if err != nil {
		return Principal{}, "", fmt.Errorf("create service principal %q: %w", name, err)
	}
	return p, secret, nil
}

// CreateFirst makes the first principal, named name, once per database: it
// returns ok false when one was made before (even if it was deleted since).
func (d *Directory) CreateFirst(ctx context.Context, name string) (p Principal, secret string, ok bool, err error) {
	err = d.st.Update(ctx, func(tx *store.Tx) error {
		return tx.CreateJSON(ctx, initMarkerID, initMarkerType, map[string]string{"firstPrincipal": name})
	})
	if errors.Is(err, store.ErrExists) {
		return Principal{}, "", false, nil
	}
	if err != nil {
		return Principal{}, "", false, fmt.Errorf("initialise service principals: %w", err)
	}
	p, secret, err = d.Create(ctx, name, nil)
	return p, secret, err == nil, err
}

// Get returns a principal by client id, or ErrUnknownClient.
func (d *Directory) Get(ctx context.Context, clientID string) (Principal, error) {
	var p Principal
	err := d.st.View(ctx, func(tx *store.Tx) error {
		_, err := tx.GetJSON(ctx, principalID(clientID), &p)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, fmt.Errorf("%s: %w", clientID, ErrUnknownClient)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("read service principal %s: %w", clientID, err)
	}
	return p, nil
}

// List returns every principal, by client id.
func (d *Directory) List(ctx context.Context) ([]Principal, error) {
	var list []Principal
	err := d.st.View(ctx, func(tx *store.Tx) error {
		docs, err := tx.List(ctx, store.Query{Type: principalType, Scope: principalScope})
		if err != nil {
			return err
		}
		for _, doc := range docs {
			var p Principal
			if err := json.Unmarshal(doc.Body, &p); err != nil {
				return fmt.Errorf("decode %s: %w", doc.ID, err)
			}
			list = append(list, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list service principals: %w", err)
	}
	return list, nil
}

// Delete removes a principal; its tokens are refused from then on.
func (d *Directory) Delete(ctx context.Context, clientID string) error {
	err := d.st.Update(ctx, func(tx *store.Tx) error { return tx.Delete(ctx, principalID(clientID)) })
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: %w", clientID, ErrUnknownClient)
	}
	if err != nil {
		return fmt.Errorf("delete service principal %s: %w", clientID, err)
	}
	return nil
}

// Verify checks a client's secret and returns the principal.
func (d *Directory) Verify(ctx context.Context, clientID, secret string) (Principal, error) {
	p, err := d.Get(ctx, clientID)
	if err != nil {
		return Principal{}, err
	}
	want, err := hex.DecodeString(p.SecretHash)
	if err != nil {
		return Principal{}, fmt.Errorf("service principal %s: stored hash: %w", clientID, err)
	}
	got, _ := hex.DecodeString(hashSecret(p.SecretSalt, secret))
	if subtle.ConstantTimeCompare(want, got) != 1 {
		return Principal{}, fmt.Errorf("%s: %w", clientID, ErrBadSecret)
	}
	return p, nil
}

func hashSecret(salt, secret string) string {
	sum := sha256.Sum256([]byte(salt + secret))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newGUID is a random (version 4) GUID, as ARM's ids and request ids are.
func newGUID() string { return uuid.NewString() }
