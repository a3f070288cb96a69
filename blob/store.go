package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// Store is one region's content-addressed blob store: a local directory
// (*Dir) or a bucket on an S3-compatible server (*S3). Every method that
// places a blob verifies its sha256 before the blob appears under its name.
type Store interface {
	// Lock serializes decisions about one blob; call the result to unlock.
	Lock(sum string) func()
	// Stat returns the blob's size and whether it exists.
	Stat(sum string) (int64, bool, error)
	// Put stores the file src as the blob sum, unless it is there.
	Put(ctx context.Context, sum, src string, opt PutOptions) (Placed, error)
	// PutReader stores size bytes read from r as the blob sum, unless it
	// is there.
	PutReader(ctx context.Context, sum string, r io.Reader, size int64) (Placed, error)
	// Open reads the blob.
	Open(ctx context.Context, sum string) (io.ReadCloser, error)
	// Remove deletes the blob; a missing blob is not an error.
	Remove(sum string) error
	// List returns the sums of the blobs in the store.
	List() ([]string, error)
	// CleanTmp removes what interrupted puts left.
	CleanTmp() error
}

var (
	_ Store = (*Dir)(nil)
	_ Store = (*S3)(nil)
)

// Open reads the blob sum.
func (d *Dir) Open(ctx context.Context, sum string) (io.ReadCloser, error) {
	f, err := os.Open(d.Path(sum))
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	return f, nil
}

// PutReader stores size bytes from r as the blob sum: written to tmp/,
// hashed while written, synced, and renamed into place only when the
// sha256 matches. The caller holds Lock(sum).
func (d *Dir) PutReader(ctx context.Context, sum string, r io.Reader, size int64) (Placed, error) {
	sum = strings.ToLower(sum)
	if _, err := disk.NormalizeSHA256(sum); err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	if n, ok, err := d.Stat(sum); err != nil || ok {
		return Placed{Size: n, Reused: ok}, err
	}
	dst := d.Path(sum)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), sum[:12]+"-*")
	if err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	fail := func(err error) (Placed, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return Placed{}, fmt.Errorf("store blob %s in %s: %w", sum, d.root, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), disk.ContextReader(ctx, r))
	if err != nil {
		return fail(err)
	}
	if n != size {
		return fail(fmt.Errorf("read %d bytes, want %d", n, size))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fail(fmt.Errorf("%w: expected %s, the bytes have %s", ErrDigestMismatch, sum, got))
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	_ = os.Chmod(tmp.Name(), 0o400)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fail(err)
	}
	syncDir(filepath.Dir(dst))
	return Placed{Size: n, Copied: true}, nil
}

// Copy replicates the blob sum from src to dst and verifies it: between two
// buckets of one S3 endpoint the server copies it (no bytes through
// goldsmith) and dst reads it back to check its sha256; otherwise the bytes
// stream from src into dst.PutReader, which hashes them. The caller holds
// dst.Lock(sum).
func Copy(ctx context.Context, dst, src Store, sum string) (Placed, error) {
	sum = strings.ToLower(sum)
	if n, ok, err := dst.Stat(sum); err != nil || ok {
		return Placed{Size: n, Reused: ok}, err
	}
	size, ok, err := src.Stat(sum)
	if err != nil {
		return Placed{}, fmt.Errorf("copy blob %s: %w", sum, err)
	}
	if !ok {
		return Placed{}, fmt.Errorf("copy blob %s: the source store does not have it", sum)
	}
	if d, ok := dst.(*S3); ok {
		if s, ok := src.(*S3); ok && d.endpoint == s.endpoint {
			return d.copyFrom(ctx, s, sum, size)
		}
	}
	r, err := src.Open(ctx, sum)
	if err != nil {
		return Placed{}, fmt.Errorf("copy blob %s: %w", sum, err)
	}
	defer r.Close()
	return dst.PutReader(ctx, sum, r, size)
}
