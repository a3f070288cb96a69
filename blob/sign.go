package blob

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Signer makes and checks download URLs that carry their own authorization,
// as Azure's SAS URLs do: the query names the permission (sp=r), the expiry
// (se, Unix seconds) and an HMAC-SHA256 over both and the path (sig). No
// other credential is needed to use one; a changed path, permission or
// expiry, or an expired URL, is refused.
type Signer struct {
	key []byte
}

// Errors Verify returns.
var (
	ErrNoSignature  = errors.New("the URL is not signed")
	ErrBadSignature = errors.New("the URL's signature is not valid")
	ErrExpired      = errors.New("the URL has expired")
)

// NewSigner signs with key (at least 32 bytes).
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("blob signer: key of %d bytes, want at least 32", len(key))
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// LoadOrCreateKey reads a signing key from path, creating a random one
// (mode 0600) the first time.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil && len(key) >= 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, key, 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

func (s *Signer) mac(path, perm, expiry string) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "%s\n%s\n%s", perm, expiry, path)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Sign returns the query that authorizes reading path until expires.
func (s *Signer) Sign(path string, expires time.Time) url.Values {
	se := strconv.FormatInt(expires.Unix(), 10)
	return url.Values{"sv": {"1"}, "sp": {"r"}, "se": {se}, "sig": {s.mac(path, "r", se)}}
}

// Signed tells whether a query carries a signature (and so asks to be
// authorized by it rather than by a bearer token).
func Signed(q url.Values) bool { return q.Get("sig") != "" }

// Verify checks that q authorizes reading path at now.
func (s *Signer) Verify(path string, q url.Values, now time.Time) error {
	sig, se, sp := q.Get("sig"), q.Get("se"), q.Get("sp")
	if sig == "" {
		return ErrNoSignature
	}
	if sp != "r" || se == "" || !hmac.Equal([]byte(sig), []byte(s.mac(path, sp, se))) {
		return ErrBadSignature
	}
	exp, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if now.Unix() >= exp {
		return fmt.Errorf("%w (at %s)", ErrExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return nil
}
