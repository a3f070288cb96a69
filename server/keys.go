package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/goldsmith-dev/goldsmith/store"
)

// Shared signing keys are documents of this type: on a database several
// servers share, every replica signs and checks tokens and download URLs
// with the same key, so any replica accepts what another issued.
const keyType = "goldsmith/signing-key"

type signingKey struct {
	Key []byte `json:"key"` // base64 in JSON
}

// sharedKey reads the signing key named name from the store, making it
// (256 random bits) the first time; writers are serialized, so replicas
// starting together agree on one key.
func sharedKey(ctx context.Context, st *store.Store, name string) ([]byte, error) {
	id := "/goldsmith/keys/" + name
	var k signingKey
	err := st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.GetJSON(ctx, id, &k)
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		k.Key = make([]byte, 32)
		if _, err := rand.Read(k.Key); err != nil {
			return err
		}
		return tx.CreateJSON(ctx, id, keyType, k)
	})
	if err != nil {
		return nil, fmt.Errorf("%s signing key: %w", name, err)
	}
	return k.Key, nil
}

// TokenSigningKey is the key every server on the shared database st signs
// access tokens with (on SQLite a server's key is a file of its data
// directory instead).
func TokenSigningKey(ctx context.Context, st *store.Store) ([]byte, error) {
	return sharedKey(ctx, st, "token")
}
