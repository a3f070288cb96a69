package catalog

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// TestExpanded: a compressed qcow2 image is expanded once into a read-only
// uncompressed qcow2 copy with the same bytes; raw images and the copy
// itself are left alone.
func TestExpanded(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	ctx := context.Background()
	dir := t.TempDir()
	q := disk.QemuImg{Run: disk.Exec{}}
	c, e, raw, _ := importQcow2(t, dir, true)
	x, err := c.Expanded(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if x.DiskFormat != disk.FormatQCOW2 || x.DiskPath == e.DiskPath || x.DiskSHA256 != e.DiskSHA256 {
		t.Fatalf("expanded entry: format %s path %s sha %s", x.DiskFormat, x.DiskPath, x.DiskSHA256)
	}
	zst, _ := os.Stat(e.DiskPath)
	xst, _ := os.Stat(x.DiskPath)
	if xst.Size() <= zst.Size() {
		t.Errorf("the copy (%d bytes) is not larger than the compressed image (%d bytes)", xst.Size(), zst.Size())
	}
	back := filepath.Join(dir, "back.raw")
	if err := q.Convert(ctx, x.DiskPath, disk.FormatQCOW2, back, disk.ConvertOptions{Format: disk.FormatRaw}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(raw.path)
	if !bytes.Equal(got, want) {
		t.Fatal("the expanded copy's bytes differ from the image's")
	}
	st, _ := os.Stat(x.DiskPath)
	if st.Mode().Perm()&0o222 != 0 {
		t.Errorf("the expanded copy is writable: %v", st.Mode())
	}
	again, err := c.Expanded(ctx, e)
	if err != nil || again.DiskPath != x.DiskPath {
		t.Fatalf("second expansion: %v, %s", err, again.DiskPath)
	}
	if st2, _ := os.Stat(x.DiskPath); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("the second call made the copy again")
	}
	same, err := c.Expanded(ctx, x)
	if err != nil || same.DiskPath != x.DiskPath || same.DiskFormat != x.DiskFormat {
		t.Errorf("the expanded entry changed: %+v, %v", same, err)
	}
	rawEntry := Entry{URN: "Local:raw:x", DiskPath: raw.path, DiskFormat: disk.FormatRaw, DiskSHA256: "abc"}
	if r, err := c.Expanded(ctx, rawEntry); err != nil || r.DiskPath != raw.path || r.DiskFormat != disk.FormatRaw {
		t.Errorf("a raw entry changed: %+v, %v", r, err)
	}
}
