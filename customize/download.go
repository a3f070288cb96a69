package customize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/goldsmith-dev/goldsmith/download"
)

// Artifact is a downloaded, verified script or file.
type Artifact struct {
	URI    string
	SHA256 string // lower-case hex digest of Data
	Data   []byte
}

// Fetcher gives the runner its scripts and files, verified against their
// sha256Checksum and capped in size (package download's limits). The zero
// value downloads over http(s) with an in-memory cache per Fetcher. Safe for
// concurrent use.
type Fetcher struct {
	// Client is the HTTP client; nil means http.DefaultClient. Requests
	// carry the caller's context, so its deadline bounds them.
	Client *http.Client
	// Limits are the size caps; zero fields mean download's defaults.
	Limits download.Limits
	// CacheDir, when set, keeps downloads across Fetchers and processes,
	// keyed by URL and expected digest. Entries with a digest are re-verified
	// when read. Give a run's staging directory (entries without a digest
	// are only as fresh as that directory).
	CacheDir string

	// staged, when non-nil, is the only source: see NewStagedFetcher.
	staged map[string]download.Local

	mu  sync.Mutex
	mem map[string]*Artifact
}

// NewStagedFetcher returns a Fetcher that serves only files downloaded and
// verified earlier (the service stages them when a template is submitted),
// keyed by URI. A URI that is not staged is an error, never a network fetch;
// each file is checked again (cap and digest) when read.
func NewStagedFetcher(files map[string]download.Local) *Fetcher {
	staged := make(map[string]download.Local, len(files))
	for uri, f := range files {
		staged[uri] = f
	}
	return &Fetcher{staged: staged}
}

// Fetch returns the verified bytes of uri (downloading it, or from the cache
// or the staged files), refusing more than the cap for kind, and checks them
// against wantSHA256 (hex, any case) when that is set.
func (f *Fetcher) Fetch(ctx context.Context, uri, wantSHA256 string, kind download.Kind) (*Artifact, error) {
	want, err := download.NormalizeSHA256(wantSHA256)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", uri, err)
	}
	limit := f.Limits.Of(kind)
	key := cacheKey(uri, want)

	f.mu.Lock()
	defer f.mu.Unlock() // downloads are few; one at a time keeps the cache simple
	if a, ok := f.mem[key]; ok {
		if int64(len(a.Data)) > limit {
			return nil, &download.TooLargeError{URI: uri, Kind: kind, Limit: limit, Size: int64(len(a.Data))}
		}
		return a, nil
	}
	if f.staged != nil {
		local, ok := f.staged[uri]
		if !ok {
			return nil, fmt.Errorf("download %s: it was not staged when the template was submitted, and a service build does not fetch from the network", uri)
		}
		data, err := download.ReadLocal(local, want, kind, f.Limits)
		if err != nil {
			return nil, err
		}
		a := &Artifact{URI: uri, SHA256: sha256Hex(data), Data: data}
		f.remember(key, a)
		return a, nil
	}
	if a := f.readCache(key, uri, want); a != nil {
		if int64(len(a.Data)) > limit {
			return nil, &download.TooLargeError{URI: uri, Kind: kind, Limit: limit, Size: int64(len(a.Data))}
		}
		f.remember(key, a)
		return a, nil
	}
	d := &download.Downloader{Client: f.Client, Limits: f.Limits}
	var a *Artifact
	if f.CacheDir != "" && os.MkdirAll(f.CacheDir, 0o755) == nil {
		// Straight into the cache: written atomically, verified on the way.
		local, err := d.ToFile(ctx, uri, want, kind, filepath.Join(f.CacheDir, key))
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(local.Path)
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", uri, err)
		}
		a = &Artifact{URI: uri, SHA256: local.SHA256, Data: data}
	} else {
		data, sum, err := d.Bytes(ctx, uri, want, kind)
		if err != nil {
			return nil, err
		}
		a = &Artifact{URI: uri, SHA256: sum, Data: data}
	}
	f.remember(key, a)
	return a, nil
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
	got := sha256Hex(data)
	if want != "" && got != want {
		return nil // damaged entry: fetch again
	}
	return &Artifact{URI: uri, SHA256: got, Data: data}
}
