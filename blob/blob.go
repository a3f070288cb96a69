// Package blob owns goldsmith's artifact storage: one content-addressed
// store per region (Azure's location), where a disk is kept under its
// sha256, so identical bytes are stored once per region. A store is a local
// directory (Dir) or a bucket, or a prefix in one, on an S3-compatible server
// (S3); both are a Store. Writes are atomic: a blob appears under its name only
// once it is complete, synced and verified; a failed or canceled copy leaves
// nothing behind.
//
// Which resource uses which blob is not this package's business: the caller
// keeps references (package resource keeps them in the store) and removes a
// blob when nothing refers to it, holding Lock(sum) around both decisions.
package blob

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// ErrDigestMismatch says the bytes written do not hash to the expected sum.
var ErrDigestMismatch = errors.New("sha256 mismatch")

// Dir is a region's blob store in a local directory:
//
//	ROOT/sha256/ab/abcdef...   the blobs (read-only once placed)
//	ROOT/tmp/                  copies in progress
type Dir struct {
	root  string
	locks keyLocks
}

// keyLocks are per-blob mutexes, kept only while someone holds or waits.
// They serialize one process's decisions; several processes sharing a
// store need a lock outside them (not provided yet).
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyLocks) lock(sum string) func() {
	sum = strings.ToLower(sum)
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[sum]
	if l == nil {
		l = &keyLock{}
		k.locks[sum] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, sum)
		}
		k.mu.Unlock()
	}
}

// NewDir opens (creating when needed) the store rooted at root.
func NewDir(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob root %s: %w", root, err)
	}
	for _, d := range []string{"sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("blob root %s: %w", abs, err)
		}
	}
	return &Dir{root: abs}, nil
}

// Root is the store's directory.
func (d *Dir) Root() string { return d.root }

// Path is where the blob with this sha256 lives (whether or not it exists).
func (d *Dir) Path(sum string) string {
	sum = strings.ToLower(sum)
	if len(sum) < 2 {
		return filepath.Join(d.root, "sha256", "_", sum)
	}
	return filepath.Join(d.root, "sha256", sum[:2], sum)
}

// Stat returns the blob's size, and whether it exists.
func (d *Dir) Stat(sum string) (int64, bool, error) {
	st, err := os.Stat(d.Path(sum))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("blob %s: %w", sum, err)
	}
	return st.Size(), true, nil
}

// Lock serializes decisions about one blob (placing it, removing it):
// call the returned function to unlock.
func (d *Dir) Lock(sum string) func() { return d.locks.lock(sum) }

// PutOptions tune Put.
type PutOptions struct {
	// Link hard-links src instead of copying it when both are on one
	// filesystem: for a file goldsmith owns and no longer changes (a build
	// output). Its sha256 is checked unless TrustLinked.
	Link bool
	// TrustLinked skips reading a hard-linked src again: its producer
	// computed sum from this very file (the build engine hashes every
	// output it writes). A copy is always verified.
	TrustLinked bool
}

// Placed says how Put stored a blob.
type Placed struct {
	Size   int64
	Reused bool // the blob was there already
	Linked bool // a hard link to src, no bytes copied; sha256 verified
	Copied bool // the bytes were copied and the copy's sha256 verified
	// ServerCopied: the object store's server copied the bytes from another
	// bucket (with Copied: the copy was read back and verified).
	ServerCopied bool
}

// Put stores the file src as the blob sum (lowercase hex sha256), unless
// the store has it already. A copy is made in tmp/, synced, hashed again
// from the copy and renamed into place only when it matches sum; on any
// failure nothing is left. The caller holds Lock(sum).
func (d *Dir) Put(ctx context.Context, sum, src string, opt PutOptions) (Placed, error) {
	sum = strings.ToLower(sum)
	if _, err := disk.NormalizeSHA256(sum); err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	dst := d.Path(sum)
	if size, ok, err := d.Stat(sum); err != nil || ok {
		return Placed{Size: size, Reused: ok}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), sum[:12]+"-*")
	if err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	os.Remove(tmpName)
	placed := Placed{}
	if opt.Link {
		if err := os.Link(src, tmpName); err == nil {
			placed.Linked = true
		}
	}
	got, err := "", error(nil)
	switch {
	case placed.Linked && opt.TrustLinked:
		got = sum
	case placed.Linked:
		got, _, err = disk.SHA256File(ctx, tmpName)
	default:
		got, err = copyVerified(ctx, tmpName, src)
		placed.Copied = err == nil
	}
	if err == nil && got != sum {
		err = fmt.Errorf("%w: expected %s, the stored bytes have %s", ErrDigestMismatch, sum, got)
	}
	if err != nil {
		os.Remove(tmpName)
		return Placed{}, fmt.Errorf("store %s in %s: %w", src, d.root, err)
	}
	st, err := os.Stat(tmpName)
	if err == nil {
		placed.Size = st.Size()
		_ = os.Chmod(tmpName, 0o400)
		err = os.Rename(tmpName, dst)
	}
	if err != nil {
		os.Remove(tmpName)
		return Placed{}, fmt.Errorf("blob put %s: %w", sum, err)
	}
	syncDir(filepath.Dir(dst))
	return placed, nil
}

// Remove deletes the blob; a missing blob is not an error. The caller holds
// Lock(sum) and has checked that nothing refers to it.
func (d *Dir) Remove(sum string) error {
	if err := os.Remove(d.Path(sum)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", sum, err)
	}
	return nil
}

// List returns the sums of the blobs in the store.
func (d *Dir) List() ([]string, error) {
	var sums []string
	err := filepath.WalkDir(filepath.Join(d.root, "sha256"), func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			sums = append(sums, e.Name())
		}
		return nil
	})
	return sums, err
}

// CleanTmp removes copies a crash left in tmp/. Call it when no Put runs.
func (d *Dir) CleanTmp() error {
	entries, err := os.ReadDir(filepath.Join(d.root, "tmp"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(d.root, "tmp", e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}
