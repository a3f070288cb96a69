package disk

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestWriteRawHashed compares WriteRawHashed with qemu-img on a qcow2
// overlay (data written into it with qemu-io) over a compressed base whose
// size is not a whole MiB: the same bytes, the right sha256, holes kept,
// and a valid fixed VHD.
func TestWriteRawHashed(t *testing.T) {
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	raw := filepath.Join(dir, "base.raw")
	f, _ := os.Create(raw)
	size := int64(48<<20 + 64<<10)
	f.Truncate(size)
	for _, off := range []int64{0, 5<<20 + 123, 20 << 20, size - 4096} {
		f.WriteAt(bytes.Repeat([]byte("goldsmith "), 400), off)
	}
	f.Close()
	base := filepath.Join(dir, "base.qcow2")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", raw, base)
	top := filepath.Join(dir, "top.qcow2")
	run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
	run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 3M 64k", "-c", "write -z 20M 1M", top)
	want := filepath.Join(dir, "want.raw")
	run("qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", top, want)
	wantBytes, _ := os.ReadFile(want)

	got := filepath.Join(dir, "got.raw")
	sum, n, err := WriteRawHashed(ctx, top, got, false)
	if err != nil {
		t.Fatal(err)
	}
	gotBytes, _ := os.ReadFile(got)
	if !bytes.Equal(gotBytes, wantBytes) || n != int64(len(wantBytes)) {
		t.Fatalf("raw differs from qemu-img's (%d vs %d bytes)", n, len(wantBytes))
	}
	if s, _, _ := SHA256File(ctx, got); s != sum {
		t.Errorf("sha256 %s, file's %s", sum, s)
	}
	if used, _ := AllocatedBytes(got); used > 8<<20 {
		t.Errorf("raw allocates %d bytes: holes not kept", used)
	}

	vhd := filepath.Join(dir, "got.vhd")
	sum, n, err = WriteRawHashed(ctx, top, vhd, true)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := CheckFixedVHD(vhd)
	if err != nil {
		t.Fatal(err)
	}
	if ft.CurrentSize != 49<<20 || n != 49<<20+512 {
		t.Errorf("VHD virtual size %d, file %d", ft.CurrentSize, n)
	}
	if s, _, _ := SHA256File(ctx, vhd); s != sum {
		t.Errorf("VHD sha256 %s, file's %s", sum, s)
	}
	vb, _ := os.ReadFile(vhd)
	if !bytes.Equal(vb[:len(wantBytes)], wantBytes) {
		t.Errorf("VHD data differs from the raw image")
	}

	// A missing backing file is an error, and nothing is left behind.
	os.Remove(base)
	bad := filepath.Join(dir, "bad.raw")
	if _, _, err := WriteRawHashed(ctx, top, bad, false); err == nil {
		t.Errorf("no error without the backing file")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
}
