package customize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Size caps for downloads.
const (
	// MaxFileBytes is the File customizer's limit: AIB documents the File
	// customizer for files under 20 MB and tells users to fetch larger ones
	// from a script.
	MaxFileBytes = 20 << 20
	// MaxScriptBytes bounds a scriptUri download. AIB documents no limit;
	// a script larger than this is almost surely a wrong URL.
	MaxScriptBytes = 64 << 20
)

// Artifact is a downloaded, verified script or file.
type Artifact struct {
	URI    string
	SHA256 string // lower-case hex digest of Data
	Data   []byte
}

// ChecksumError says the downloaded bytes are not the ones the template names.
type ChecksumError struct {
	URI, Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch for %s: the template's sha256Checksum is %s but the downloaded bytes have %s", e.URI, e.Want, e.Got)
}

// TooLargeError says a download is over its size cap.
type TooLargeError struct {
	URI   string
	Limit int64
	Size  int64 // -1 when only known to exceed Limit
}

func (e *TooLargeError) Error() string {
	if e.Size >= 0 {
		return fmt.Sprintf("download %s: %d bytes is over the %d byte limit", e.URI, e.Size, e.Limit)
	}
	return fmt.Sprintf("download %s: more than the %d byte limit", e.URI, e.Limit)
}

// Fetcher downloads scriptUri and sourceUri artifacts over http(s) and
// verifies their sha256Checksum. The zero value works (no disk cache; an
// in-memory cache per Fetcher). Safe for concurrent use.
type Fetcher struct {
	// Client is the HTTP client; nil means http.DefaultClient. Requests
	// carry the caller's context, so its deadline bounds them.
	Client *http.Client
	// CacheDir, when set, keeps downloads across Fetchers and processes,
	// keyed by URL and expected digest. Entries with a digest are re-verified
	// when read. Give a run's staging directory (entries without a digest
	// are only as fresh as that directory).
	CacheDir string

	mu  sync.Mutex
	mem map[string]*Artifact
}

// NormalizeSHA256 returns the lower-case form of a hex sha256 digest, or an
// error if s is not 64 hex digits. An empty s returns "".
func NormalizeSHA256(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	if len(s) != 64 {
		return "", fmt.Errorf("sha256Checksum %q is not 64 hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("sha256Checksum %q is not hex", s)
	}
	return s, nil
}

// Fetch downloads uri (or takes it from the cache), refuses more than limit
// bytes, and checks it against wantSHA256 (hex, any case) when that is set.
func (f *Fetcher) Fetch(ctx context.Context, uri, wantSHA256 string, limit int64) (*Artifact, error) {
	want, err := NormalizeSHA256(wantSHA256)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", uri, err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("download %s: bad URI: %w", uri, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("download %s: only http and https URIs can be fetched", uri)
	}
	key := cacheKey(uri, want)

	f.mu.Lock()
	defer f.mu.Unlock() // downloads are few; one at a time keeps the cache simple
	if a, ok := f.mem[key]; ok {
		if int64(len(a.Data)) > limit {
			return nil, &TooLargeError{URI: uri, Limit: limit, Size: int64(len(a.Data))}
		}
		return a, nil
	}
	if a := f.readCache(key, uri, want); a != nil {
		if int64(len(a.Data)) > limit {
			return nil, &TooLargeError{URI: uri, Limit: limit, Size: int64(len(a.Data))}
		}
		f.remember(key, a)
		return a, nil
	}
	data, err := f.get(ctx, uri, limit)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if want != "" && got != want {
		return nil, &ChecksumError{URI: uri, Want: want, Got: got}
	}
	a := &Artifact{URI: uri, SHA256: got, Data: data}
	f.remember(key, a)
	f.writeCache(key, data)
	return a, nil
}

func (f *Fetcher) get(ctx context.Context, uri string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", uri, err)
	}
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URI
		}
		return nil, fmt.Errorf("download %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: HTTP %s", uri, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, &TooLargeError{URI: uri, Limit: limit, Size: resp.ContentLength}
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", uri, err)
	}
	if n > limit {
		return nil, &TooLargeError{URI: uri, Limit: limit, Size: -1}
	}
	return buf.Bytes(), nil
}

func cacheKey(uri, want string) string {
	sum := sha256.Sum256([]byte(uri + "\n" + want))
	return hex.EncodeToString(sum[:])
}

func (f *Fetcher) remember(key string, a *Artifact) {
	if f.mem == nil {
		f.mem = map[string]*Artifact{}
	}
	f.mem[key] = a
}

func (f *Fetcher) readCache(key, uri, want string) *Artifact {
	if f.CacheDir == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(f.CacheDir, key))
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if want != "" && got != want {
		return nil // damaged entry: fetch again
	}
	return &Artifact{URI: uri, SHA256: got, Data: data}
}

// writeCache stores data atomically; a cache that cannot be written is not
// an error (the download already succeeded).
func (f *Fetcher) writeCache(key string, data []byte) {
	if f.CacheDir == "" {
		return
	}
	if err := os.MkdirAll(f.CacheDir, 0o755); err != nil {
		return
	}
	tmp, err := os.CreateTemp(f.CacheDir, ".part-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), filepath.Join(f.CacheDir, key)) != nil {
		os.Remove(tmp.Name())
	}
}
