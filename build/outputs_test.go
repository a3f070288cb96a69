package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/template"
)

// TestWriteOutputs converts a real qcow2 disk (qemu-img) for two managed
// targets and a VHD: one conversion per format, the second managed target a
// hard link, the VHD fixed and sparse (its holes not written).
func TestWriteOutputs(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	ctx := context.Background()
	img := disk.QemuImg{Run: disk.Exec{}}
	raw := filepath.Join(dir, "src.raw")
	f, _ := os.Create(raw)
	f.Truncate(64 << 20)
	f.WriteAt([]byte("data at 1 MiB"), 1<<20)
	f.Close()
	src := filepath.Join(dir, "src.qcow2")
	if err := img.Convert(ctx, raw, "raw", src, disk.ConvertOptions{Format: disk.FormatQCOW2}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	r := &run{b: &Builder{Disks: img}, req: Request{OutputDir: out, ManagedFormat: "qcow2"}, overlay: src}
	outs, err := r.writeOutputs(ctx, []template.Distributor{
		{Type: template.DistributeManagedImage, RunOutputName: "img"},
		{Type: template.DistributeVHD, RunOutputName: "vhd"},
		{Type: template.DistributeSharedImage, RunOutputName: "sig"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 3 || outs[0].Format != "qcow2" || outs[1].Format != "vhd" || outs[2].Format != "qcow2" {
		t.Fatalf("outputs %+v", outs)
	}
	if outs[0].SHA256 != outs[2].SHA256 {
		t.Errorf("targets of one format differ")
	}
	a, _ := os.Stat(outs[0].Path)
	b, _ := os.Stat(outs[2].Path)
	if !os.SameFile(a, b) {
		t.Errorf("second qcow2 target is not a link of the first")
	}
	ft, err := disk.CheckFixedVHD(outs[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	if ft.CurrentSize != 64<<20 || outs[1].Size != 64<<20+512 {
		t.Errorf("VHD virtual size %d, file %d", ft.CurrentSize, outs[1].Size)
	}
	if used, _ := disk.AllocatedBytes(outs[1].Path); used > 1<<20 {
		t.Errorf("VHD allocates %d bytes for 13 bytes of data: not sparse", used)
	}
	sum, _, _ := disk.SHA256File(ctx, outs[1].Path)
	if sum != outs[1].SHA256 {
		t.Errorf("VHD sha256 %s, recorded %s", sum, outs[1].SHA256)
	}
	// The data is where it was.
	got := make([]byte, 13)
	vf, _ := os.Open(outs[1].Path)
	vf.ReadAt(got, 1<<20)
	vf.Close()
	if string(got) != "data at 1 MiB" {
		t.Errorf("VHD data %q", got)
	}
}
