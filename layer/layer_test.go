package layer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goldsmith-dev/goldsmith/machine"
)

// commit makes a layer whose disk holds size bytes of data.
func commit(t *testing.T, c *Cache, key, parent string, size int) *Handle {
	t.Helper()
	p, err := c.Reserve(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.DiskPath(), make1(size), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := p.Commit(Meta{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func make1(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 1
	}
	return b
}

func TestKey(t *testing.T) {
	a := Key("", []byte("ab"), []byte("c"))
	tests := []struct {
		name string
		key  string
		same bool
	}{
		{"same parts", Key("", []byte("ab"), []byte("c")), true},
		{"parts split elsewhere", Key("", []byte("a"), []byte("bc")), false},
		{"other parent", Key(a, []byte("ab"), []byte("c")), false},
		{"one byte changed", Key("", []byte("ab"), []byte("d")), false},
	}
	for _, tt := range tests {
		if got := tt.key == a; got != tt.same {
			t.Errorf("%s: equal = %v, want %v", tt.name, got, tt.same)
		}
	}
	if !validKey(a) {
		t.Errorf("key %q is not valid", a)
	}
}

func TestReserveCommitAcquire(t *testing.T) {
	c, _ := Open(t.TempDir(), 0, nil)
	k0, k1 := Key("", []byte("base")), Key("x", []byte("one"))
	if _, err := c.Acquire(k0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("acquire before commit: %v", err)
	}
	p, err := c.Reserve(k0)
	if err != nil {
		t.Fatal(err)
	}
	// A second build may not make the same layer, nor use it unfinished.
	if _, err := c.Reserve(k0); !errors.Is(err, ErrBusy) {
		t.Errorf("second reserve: %v, want ErrBusy", err)
	}
	if _, err := c.Acquire(k0); !errors.Is(err, ErrNotFound) {
		t.Errorf("acquire while pending: %v", err)
	}
	os.WriteFile(p.DiskPath(), []byte("disk"), 0o600)
	h0, err := p.Commit(Meta{Step: 0, Description: "booted source"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reserve(k0); !errors.Is(err, fs.ErrExist) {
		t.Errorf("reserve after commit: %v, want ErrExist", err)
	}
	h1 := commit(t, c, k1, k0, 10)
	h0.Release()
	h1.Release()

	h, err := c.Acquire(k1)
	if err != nil {
		t.Fatal(err)
	}
	if h.Meta.Parent != k0 || len(h.locks) != 2 {
		t.Errorf("acquire holds %d layers, parent %q", len(h.locks), h.Meta.Parent)
	}
	h.Release()
	list, _ := c.List()
	if len(list) != 2 {
		t.Errorf("list: %d layers", len(list))
	}
}

func TestDiscardAndDeadOwner(t *testing.T) {
	dir := t.TempDir()
	c, _ := Open(dir, 0, nil)
	k := Key("", []byte("a"))
	p, _ := c.Reserve(k)
	os.WriteFile(p.DiskPath(), []byte("half"), 0o600)
	p.Discard()
	if _, err := os.Stat(filepath.Join(dir, k)); !os.IsNotExist(err) {
		t.Errorf("discarded layer still there: %v", err)
	}
	// A build that died left its pending directory: nobody holds its lock.
	os.MkdirAll(filepath.Join(dir, k), 0o700)
	os.WriteFile(filepath.Join(dir, k, diskFile), []byte("stale"), 0o600)
	p, err := c.Reserve(k)
	if err != nil {
		t.Fatalf("reserve over a dead build's layer: %v", err)
	}
	if _, err := os.Stat(p.DiskPath()); !os.IsNotExist(err) {
		t.Errorf("the dead build's disk was kept")
	}
	p.Discard()
}

func TestPruneLRUWithDescendantsAndInUse(t *testing.T) {
	c, _ := Open(t.TempDir(), 0, nil)
	// a <- b, and c alone; use order: a, b (so a is touched with b), then c.
	ka, kb, kc := Key("", []byte("a")), Key("", []byte("b")), Key("", []byte("c"))
	commit(t, c, ka, "", 8192).Release()
	commit(t, c, kb, ka, 8192).Release()
	commit(t, c, kc, "", 8192).Release()
	h, _ := c.Acquire(kb) // touches b and a
	h.Release()
	h, _ = c.Acquire(kc)
	h.Release()

	// While c is in use, pruning to nothing keeps it and removes the rest.
	held, _ := c.Acquire(kc)
	removed, err := c.Prune(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0].Key != kb || removed[1].Key != ka {
		t.Errorf("removed %v, want b then a", keys(removed))
	}
	held.Release()
	list, _ := c.List()
	if len(list) != 1 || list[0].Key != kc {
		t.Errorf("left %v, want c", keys(list))
	}
}

func TestEnforceEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c, _ := Open(dir, 0, nil)
	ka, kb := Key("", []byte("a")), Key("", []byte("b"))
	commit(t, c, ka, "", 1<<20).Release()
	commit(t, c, kb, "", 1<<20).Release()
	h, _ := c.Acquire(ka) // a is now the most recently used
	h.Release()
	list, _ := c.List()
	bound := list[0].Bytes + list[1].Bytes - 1
	c2, _ := Open(dir, bound, nil)
	removed, err := c2.Enforce()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Key != kb {
		t.Errorf("evicted %v, want only b (least recently used)", keys(removed))
	}
}

func keys(ms []Meta) []string {
	var out []string
	for _, m := range ms {
		out = append(out, short(m.Key))
	}
	return out
}

// TestMemoryFiles: a restore lays the nearest whole memory file and the
// deltas after it; a layer's size counts its memory.
func TestMemoryFiles(t *testing.T) {
	c, _ := Open(t.TempDir(), 0, nil)
	keys := []string{Key("", []byte("0")), Key("a", []byte("1")), Key("b", []byte("2")), Key("c", []byte("3"))}
	// Layer 0 whole, 1 and 3 deltas, 2 whole (the guest rebooted).
	delta := []bool{false, true, false, true}
	for i, k := range keys {
		p, err := c.Reserve(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.DiskPath(), make1(4096), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(machine.MemoryFile(p.StatePath()), make1(64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		parent := ""
		if i > 0 {
			parent = keys[i-1]
		}
		h, err := p.Commit(Meta{Parent: parent, Step: i, MemoryDelta: delta[i]})
		if err != nil {
			t.Fatal(err)
		}
		if h.Meta.Bytes < 64<<10+4096 {
			t.Errorf("layer %d: %d bytes: the memory file is not counted", i, h.Meta.Bytes)
		}
		h.Release()
	}
	mem := func(i int) string { return machine.MemoryFile(c.path(keys[i], stateFile)) }
	want := [][]string{{mem(0)}, {mem(0), mem(1)}, {mem(2)}, {mem(2), mem(3)}}
	for i, k := range keys {
		h, err := c.Acquire(k)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.MemoryFiles(); !slices.Equal(got, want[i]) {
			t.Errorf("layer %d: memory files %v, want %v", i, got, want[i])
		}
		h.Release()
	}
}
