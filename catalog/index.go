package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// index is the catalog's persistent state, index.json.
type index struct {
	Version int          `json:"version"`
	Entries []Entry      `json:"entries"`
	Aliases []AliasEntry `json:"aliases,omitempty"`
}

const indexVersion = 1

// readIndex reads index.json without locking: it is only ever replaced by
// rename, so a reader sees a whole old or a whole new file.
func (c *Catalog) readIndex() (*index, error) {
	b, err := os.ReadFile(c.indexPath())
	if errors.Is(err, os.ErrNotExist) {
		return &index{Version: indexVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("catalog index %s: %w", c.indexPath(), err)
	}
	if idx.Version > indexVersion {
		return nil, fmt.Errorf("catalog index %s: version %d is newer than this goldsmith (%d)", c.indexPath(), idx.Version, indexVersion)
	}
	return &idx, nil
}

// updateIndex runs fn on the current index under the index lock and, if fn
// succeeds, replaces index.json atomically (temp file, fsync, rename).
func (c *Catalog) updateIndex(ctx context.Context, fn func(*index) error) error {
	unlock, err := lockFile(ctx, filepath.Join(c.dir, "index.lock"))
	if err != nil {
		return fmt.Errorf("catalog index: %w", err)
	}
	defer unlock()
	idx, err := c.readIndex()
	if err != nil {
		return err
	}
	if err := fn(idx); err != nil {
		return err
	}
	idx.Version = indexVersion
	for i := range idx.Entries { // paths are derived from the data directory, not stored
		e := &idx.Entries[i]
		e.DiskPath, e.KernelPath, e.InitrdPath, e.SubstituteFor = "", "", "", ""
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.indexPath(), append(b, '\n'), 0o644)
}

// writeFileAtomic writes data to a temp file beside path and renames it
// over path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// find returns the entry for u: the exact version, or the highest one.
func (idx *index) find(u URN) (Entry, error) {
	var best *Entry
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if !(URN{Publisher: e.Publisher, Offer: e.Offer, SKU: e.SKU}).sameImage(u) {
			continue
		}
		if u.Version != "" {
			if e.Version == u.Version {
				return *e, nil
			}
			continue
		}
		if best == nil || CompareVersions(e.Version, best.Version) > 0 {
			best = e
		}
	}
	if best == nil {
		return Entry{}, fmt.Errorf("%s: %w", u, ErrNotFound)
	}
	return *best, nil
}

var errAliasLoop = errors.New("alias loop")

// resolveAlias follows aliases from u. An alias with a version matches that
// version only and wins over one without, which matches every version. It
// returns u itself when no alias applies.
func (idx *index) resolveAlias(u URN, depth int) (URN, error) {
	if depth > 8 {
		return URN{}, fmt.Errorf("%w at %s", errAliasLoop, u)
	}
	var match *AliasEntry
	for i := range idx.Aliases {
		a := &idx.Aliases[i]
		au, err := ParseURN(a.From)
		if err != nil || !au.sameImage(u) {
			continue
		}
		if au.Version == u.Version {
			match = a
			break
		}
		if au.Version == "" && match == nil {
			match = a
		}
	}
	if match == nil {
		return u, nil
	}
	to, err := ParseURN(match.To)
	if err != nil {
		return URN{}, err
	}
	return idx.resolveAlias(to, depth+1)
}

// lockFile takes an exclusive flock on path (created if needed), polling so
// that ctx can cancel the wait. flock is per open file, so it also excludes
// other goroutines of this process.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	delay := 10 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}
