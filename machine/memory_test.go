package machine

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// memImage is a guest memory file under test: size bytes, with the pages
// in touched written (the rest are holes, as on tmpfs).
type memImage struct {
	size    int64
	content map[int64][]byte // page index → its bytes
}

func newMemImage(size int64) *memImage { return &memImage{size: size, content: map[int64][]byte{}} }

func (m *memImage) set(page int64, b byte) {
	p := bytes.Repeat([]byte{b}, pageSize)
	m.content[page] = p
}

func (m *memImage) clone() *memImage {
	c := newMemImage(m.size)
	for k, v := range m.content {
		c.content[k] = v
	}
	return c
}

func (m *memImage) write(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(m.size); err != nil {
		t.Fatal(err)
	}
	for page, b := range m.content {
		if _, err := f.WriteAt(b, page*pageSize); err != nil {
			t.Fatal(err)
		}
	}
}

// bytesOf reads what a memory file holds, holes as zeros.
func bytesOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMemoryDeltas saves a guest's memory at successive checkpoints and
// restores each from the whole file and the deltas after it.
func TestMemoryDeltas(t *testing.T) {
	const pages = 256
	rng := rand.New(rand.NewPCG(1, 2))
	base := newMemImage(pages * pageSize)
	for i := int64(0); i < 160; i++ {
		base.set(i, byte(1+rng.IntN(250)))
	}
	tests := []struct {
		name      string
		change    func(m *memImage) // from the previous checkpoint
		wantDelta bool
		wantBytes int64
	}{
		{"few pages change", func(m *memImage) { m.set(3, 0xAA); m.set(4, 0xAB); m.set(100, 0xAC) }, true, 3 * pageSize},
		{"a page becomes zero", func(m *memImage) { m.set(7, 0) }, true, pageSize},
		{"new pages are touched", func(m *memImage) { m.set(200, 9); m.set(201, 9) }, true, 2 * pageSize},
		{"nothing changes", func(*memImage) {}, true, 0},
		{"most pages change (a reboot)", func(m *memImage) {
			for i := int64(0); i < 150; i++ {
				m.set(i, byte(i+3))
			}
		}, false, 0},
		{"after a whole one, deltas again", func(m *memImage) { m.set(0, 0x11) }, true, pageSize},
	}
	dir := t.TempDir()
	ctx := context.Background()
	live, shadow := filepath.Join(dir, "ram"), filepath.Join(dir, "ram.shadow")

	// The first checkpoint has no shadow: it is whole.
	cur := base.clone()
	cur.write(t, live)
	first := filepath.Join(dir, "m0")
	delta, _, err := saveMemory(ctx, live, shadow, false, first)
	if err != nil || delta {
		t.Fatalf("first save: delta %v, err %v", delta, err)
	}
	if !bytes.Equal(bytesOf(t, shadow), bytesOf(t, live)) {
		t.Fatal("the shadow is not the memory after a whole save")
	}
	chain := []string{first}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.change(cur)
			cur.write(t, live)
			dst := filepath.Join(dir, "m"+string(rune('1'+i)))
			delta, changed, err := saveMemory(ctx, live, shadow, true, dst)
			if err != nil {
				t.Fatal(err)
			}
			if delta != tc.wantDelta {
				t.Fatalf("delta = %v, want %v", delta, tc.wantDelta)
			}
			if delta && changed != tc.wantBytes {
				t.Errorf("changed = %d bytes, want %d", changed, tc.wantBytes)
			}
			if !bytes.Equal(bytesOf(t, shadow), bytesOf(t, live)) {
				t.Fatal("the shadow is not the memory after the save")
			}
			if delta {
				chain = append(chain, dst)
				if st, err := os.Stat(dst); err != nil || st.Size() != cur.size {
					t.Fatalf("delta file: %v", err)
				}
			} else {
				chain = []string{dst}
			}
			restored := filepath.Join(dir, "restored")
			if err := loadMemory(ctx, restored, chain); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytesOf(t, restored), bytesOf(t, live)) {
				t.Fatalf("restoring from %d files does not give the memory back", len(chain))
			}
		})
	}
}

func TestSplitExtents(t *testing.T) {
	tests := []struct {
		in   [][2]int64
		at   int64
		want [2]int64 // bytes in each half
	}{
		{[][2]int64{{0, 8 * pageSize}}, 4 * pageSize, [2]int64{4 * pageSize, 4 * pageSize}},
		{[][2]int64{{0, 2 * pageSize}, {10 * pageSize, 12 * pageSize}}, 2 * pageSize, [2]int64{2 * pageSize, 2 * pageSize}},
		{[][2]int64{{0, 3 * pageSize}}, pageSize + pageSize/2, [2]int64{pageSize, 2 * pageSize}},
		{nil, 0, [2]int64{0, 0}},
	}
	for _, tc := range tests {
		halves := splitExtents(tc.in, tc.at)
		for h := range 2 {
			var n int64
			for _, e := range halves[h] {
				n += e[1] - e[0]
				if e[0]%pageSize != 0 || e[1]%pageSize != 0 || e[1] <= e[0] {
					t.Errorf("%v: bad extent %v", tc.in, e)
				}
			}
			if n != tc.want[h] {
				t.Errorf("%v at %d: half %d has %d bytes, want %d", tc.in, tc.at, h, n, tc.want[h])
			}
		}
	}
}
