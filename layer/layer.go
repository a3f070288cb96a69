// Package layer is the build's layer cache: the build VM's disk, with its
// memory and device state, saved after each customizer, so that a rebuild
// whose first customizers are unchanged restores the VM as it was after
// them and runs only the rest, the way a container build reuses layers.
//
// A layer is a directory named by its key, holding a qcow2 disk whose
// backing file is its parent layer's disk (the first layer's is the source
// image), the VM's saved state, and meta.json. A key covers everything that
// determines the layer's contents (see Key), so layers are content-addressed
// and shared by every template with the same prefix.
//
// Layers are immutable once committed. Their disks are referenced by path
// from their children and from running builds, so a directory never moves:
// a build reserves the directory of the layer it is about to make, the VM
// writes its disk there, and meta.json appears only when the layer is
// complete. Builds hold a shared flock on every layer they use; eviction
// and pruning take an exclusive one and skip what is in use.
package layer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/goldsmith-dev/goldsmith/machine"
)

// Format versions the layout and key scheme; a change makes old layers
// unreachable (prune removes them).
const Format = "goldsmith-layer-1"

// Files in a layer directory.
const (
	diskFile  = "disk.qcow2"
	stateFile = "state"
	metaFile  = "meta.json"
	lockFile  = "lock"
)

// ErrNotFound: no committed layer has the key.
var ErrNotFound = errors.New("layer not found")

// ErrBusy: another build is making the layer right now.
var ErrBusy = errors.New("layer is being made by another build")

// Meta describes a committed layer.
type Meta struct {
	Key    string `json:"key"`
	Parent string `json:"parent,omitempty"` // "" for the booted source image
	// Step is how many customizers the layer includes (0: the booted source).
	Step         int    `json:"step"`
	Description  string `json:"description"`
	SourceSHA256 string `json:"sourceSHA256"`
	// Boot is how the QEMU process that saved the state booted; a restore
	// starts QEMU the same way (direct kernel boot or firmware).
	DirectKernel bool `json:"directKernel"`
	// MemoryDelta: the layer's memory file holds only the pages that
	// changed since its parent's memory (see Handle.MemoryFiles).
	MemoryDelta bool             `json:"memoryDelta,omitempty"`
	Identity    machine.Identity `json:"identity"`
	Bytes       int64            `json:"bytes"` // disk space of disk, state and memory
	Created     time.Time        `json:"created"`
	LastUsed    time.Time        `json:"lastUsed"`
}

// Key derives a layer's key from its parent's key and the parts that
// determine what the layer adds. The parts are length-prefixed, so no two
// different lists hash alike.
func Key(parent string, parts ...[]byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", Format, parent)
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Cache is a directory of layers with a size bound.
type Cache struct {
	dir      string
	maxBytes int64
	log      *slog.Logger
}

// Open opens (creating) the cache in dir, bounded to maxBytes (0: no bound).
func Open(dir string, maxBytes int64, log *slog.Logger) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{dir: dir, maxBytes: maxBytes, log: log}, nil
}

func (c *Cache) path(key string, name string) string { return filepath.Join(c.dir, key, name) }

// Pending is a layer being made: its directory exists, held exclusively by
// one build, without meta.json.
type Pending struct {
	c    *Cache
	key  string
	lock *os.File
}

// Reserve makes the directory of a new layer. It fails with ErrBusy when
// another live build is making it, and with fs.ErrExist when it is already
// committed. A pending directory left by a build that died is taken over.
func (c *Cache) Reserve(key string) (*Pending, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("layer cache: bad key %q", key)
	}
	dir := filepath.Join(c.dir, key)
	for attempt := 0; attempt < 2; attempt++ {
		// The directory appears with its lock already held: it is made
		// under a temporary name, locked, and renamed into place, so no
		// other build ever sees it unlocked and takes it for abandoned.
		p, err := c.create(key, dir)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			return nil, fmt.Errorf("layer cache: reserve %s: %w", short(key), err)
		}
		if _, err := os.Stat(c.path(key, metaFile)); err == nil {
			return nil, fmt.Errorf("layer %s: %w", short(key), fs.ErrExist)
		}
		// Pending: alive if its owner holds the lock.
		lock, err := lockPath(c.path(key, lockFile), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", short(key), ErrBusy)
		}
		if _, err := os.Stat(c.path(key, metaFile)); err == nil {
			lock.Close()
			return nil, fmt.Errorf("layer %s: %w", short(key), fs.ErrExist)
		}
		c.log.Info("removing a layer left unfinished by a build that stopped", "key", short(key))
		os.RemoveAll(dir)
		lock.Close()
	}
	return nil, fmt.Errorf("layer %s: %w", short(key), ErrBusy)
}

// create makes the layer's directory, locked, or fails with fs.ErrExist
// (or ENOTEMPTY) when it exists.
func (c *Cache) create(key, dir string) (*Pending, error) {
	tmp, err := os.MkdirTemp(c.dir, ".new-"+short(key)+"-")
	if err != nil {
		return nil, err
	}
	lock, err := lockPath(filepath.Join(tmp, lockFile), syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Pending{c: c, key: key, lock: lock}, nil
}

// DiskPath is where the VM writes the layer's disk.
func (p *Pending) DiskPath() string { return p.c.path(p.key, diskFile) }

// StatePath is where the VM's state is saved.
func (p *Pending) StatePath() string { return p.c.path(p.key, stateFile) }

// Commit completes the layer. The caller keeps a shared hold on it until
// the returned Handle is released (a running build uses it as a backing
// file).
func (p *Pending) Commit(m Meta) (*Handle, error) {
	m.Key = p.key
	now := time.Now().UTC()
	m.Created, m.LastUsed = now, now
	m.Bytes = usage(filepath.Dir(p.DiskPath()))
	if err := writeMeta(p.c.path(p.key, metaFile), m); err != nil {
		return nil, fmt.Errorf("layer cache: commit %s: %w", short(p.key), err)
	}
	// Downgrade: readers may use it now; eviction still sees it in use.
	if err := syscall.Flock(int(p.lock.Fd()), syscall.LOCK_SH); err != nil {
		p.lock.Close()
		return nil, fmt.Errorf("layer cache: commit %s: %w", short(p.key), err)
	}
	h := &Handle{Meta: m, locks: []*os.File{p.lock}, c: p.c}
	p.lock = nil
	return h, nil
}

// Discard removes a pending layer (its customizer failed or the run was
// canceled).
func (p *Pending) Discard() {
	if p.lock == nil {
		return
	}
	os.RemoveAll(filepath.Join(p.c.dir, p.key))
	p.lock.Close()
	p.lock = nil
}

// Handle is a committed layer held for use, with its ancestors.
type Handle struct {
	Meta  Meta
	c     *Cache
	locks []*os.File
	chain []Meta // Meta, then its parent, and so on
}

// MemoryFiles lists the memory files a restore of the layer lays on top of
// one another, oldest first: the nearest whole one among the layer and its
// ancestors, then each delta after it.
func (h *Handle) MemoryFiles() []string {
	var files []string
	for _, m := range h.chain {
		files = append(files, machine.MemoryFile(h.c.path(m.Key, stateFile)))
		if !m.MemoryDelta {
			break
		}
	}
	slices.Reverse(files)
	return files
}

// DiskPath is the layer's disk (never written to).
func (h *Handle) DiskPath() string { return h.c.path(h.Meta.Key, diskFile) }

// StatePath is the layer's saved VM state.
func (h *Handle) StatePath() string { return h.c.path(h.Meta.Key, stateFile) }

// Release drops the hold.
func (h *Handle) Release() {
	for _, l := range h.locks {
		l.Close()
	}
	h.locks = nil
}

// Remove deletes a layer this build committed and still holds (a run that
// was canceled or timed out keeps no layer), unless another build uses it
// already.
func (h *Handle) Remove() {
	if len(h.locks) > 0 && syscall.Flock(int(h.locks[0].Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		os.RemoveAll(filepath.Join(h.c.dir, h.Meta.Key))
	}
	h.Release()
}

// Acquire holds a committed layer and every ancestor (shared locks), and
// marks them used now.
func (c *Cache) Acquire(key string) (*Handle, error) {
	var locks []*os.File
	fail := func(err error) (*Handle, error) {
		for _, l := range locks {
			l.Close()
		}
		return nil, err
	}
	var chain []Meta
	for k := key; k != ""; {
		if !validKey(k) {
			return fail(fmt.Errorf("layer cache: bad key %q", k))
		}
		l, err := lockPath(c.path(k, lockFile), syscall.LOCK_SH|syscall.LOCK_NB)
		if err != nil {
			return fail(fmt.Errorf("layer %s: %w", short(k), ErrNotFound))
		}
		locks = append(locks, l)
		m, err := readMeta(c.path(k, metaFile))
		if err != nil {
			return fail(fmt.Errorf("layer %s: %w", short(k), ErrNotFound))
		}
		if _, err := os.Stat(c.path(k, diskFile)); err != nil {
			return fail(fmt.Errorf("layer %s: disk missing: %w", short(k), ErrNotFound))
		}
		m.LastUsed = time.Now().UTC()
		chain = append(chain, m)
		if err := writeMeta(c.path(k, metaFile), m); err != nil {
			return fail(err)
		}
		k = m.Parent
	}
	return &Handle{Meta: chain[0], c: c, locks: locks, chain: chain}, nil
}

// List returns every committed layer, most recently used first.
func (c *Cache) List() ([]Meta, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	var out []Meta
	for _, e := range entries {
		if !e.IsDir() || !validKey(e.Name()) {
			continue
		}
		m, err := readMeta(c.path(e.Name(), metaFile))
		if err != nil {
			continue // pending
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// Prune removes least recently used layers, with their descendants, until
// the cache holds at most maxBytes (0 removes every layer not in use).
// Layers in use are kept. It returns what it removed.
func (c *Cache) Prune(maxBytes int64) ([]Meta, error) {
	all, err := c.List()
	if err != nil {
		return nil, err
	}
	var total int64
	children := map[string][]Meta{}
	for _, m := range all {
		total += m.Bytes
		children[m.Parent] = append(children[m.Parent], m)
	}
	var removed []Meta
	gone := map[string]bool{}
	// Oldest first; a parent is never used later than its children, so
	// leaves go first.
	for i := len(all) - 1; i >= 0 && total > maxBytes; i-- {
		m := all[i]
		if gone[m.Key] {
			continue
		}
		tree := subtree(m, children, gone)
		var locks []*os.File
		busy := false
		for _, t := range tree {
			l, err := lockPath(c.path(t.Key, lockFile), syscall.LOCK_EX|syscall.LOCK_NB)
			if err != nil {
				busy = true
				break
			}
			locks = append(locks, l)
		}
		if !busy {
			for _, t := range tree {
				if err := os.RemoveAll(filepath.Join(c.dir, t.Key)); err != nil {
					c.log.Warn("remove layer", "key", short(t.Key), "err", err)
					continue
				}
				gone[t.Key] = true
				total -= t.Bytes
				removed = append(removed, t)
			}
		}
		for _, l := range locks {
			l.Close()
		}
	}
	return removed, nil
}

// RemoveTree removes a layer and every layer that builds on it, unless one
// of them is in use (then nothing is removed). It is for a layer that turned
// out to be broken: its descendants' disks have its disk as backing file.
func (c *Cache) RemoveTree(key string) ([]Meta, error) {
	all, err := c.List()
	if err != nil {
		return nil, err
	}
	children := map[string][]Meta{}
	var root *Meta
	for i, m := range all {
		children[m.Parent] = append(children[m.Parent], m)
		if m.Key == key {
			root = &all[i]
		}
	}
	if root == nil {
		return nil, nil
	}
	tree := subtree(*root, children, map[string]bool{})
	var locks []*os.File
	defer func() {
		for _, l := range locks {
			l.Close()
		}
	}()
	for _, t := range tree {
		l, err := lockPath(c.path(t.Key, lockFile), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			return nil, fmt.Errorf("layer %s: in use", short(t.Key))
		}
		locks = append(locks, l)
	}
	for _, t := range tree {
		if err := os.RemoveAll(filepath.Join(c.dir, t.Key)); err != nil {
			return nil, err
		}
	}
	return tree, nil
}

// Enforce prunes to the cache's bound.
func (c *Cache) Enforce() ([]Meta, error) {
	if c.maxBytes <= 0 {
		return nil, nil
	}
	removed, err := c.Prune(c.maxBytes)
	for _, m := range removed {
		c.log.Info("layer cache: evicted", "key", short(m.Key), "step", m.Step, "bytes", m.Bytes)
	}
	return removed, err
}

// subtree is m and its committed descendants not yet removed, children
// before parents.
func subtree(m Meta, children map[string][]Meta, gone map[string]bool) []Meta {
	var out []Meta
	for _, ch := range children[m.Key] {
		if !gone[ch.Key] {
			out = append(out, subtree(ch, children, gone)...)
		}
	}
	return append(out, m)
}

func lockPath(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func readMeta(path string) (Meta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Meta{}, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func writeMeta(path string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	// A temp name of its own: builds in one process (goldsmith serve) mark
	// the same layer used at the same moment.
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// usage is the disk space the files in dir take (holes excluded): the
// disk, the device state and the memory.
func usage(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, e.Name()), &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

func validKey(k string) bool {
	if len(k) != 64 {
		return false
	}
	return strings.Trim(k, "0123456789abcdef") == ""
}

func short(k string) string {
	if len(k) > 12 {
		return k[:12]
	}
	return k
}
