package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestVHDGeometry(t *testing.T) {
	tests := []struct {
		size int64
		want CHS
	}{
		{1 * MiB, CHS{30, 4, 17}},
		{64 * MiB, CHS{963, 8, 17}},
		{2 << 30, CHS{4161, 16, 63}},
		{30 << 30, CHS{62415, 16, 63}},
		{32 << 30, CHS{16448, 16, 255}},
		{4 << 40, CHS{65535, 16, 255}}, // capped at the maximum geometry
	}
	for _, tc := range tests {
		if got := VHDGeometry(uint64(tc.size)); got != tc.want {
			t.Errorf("VHDGeometry(%d) = %+v, want %+v", tc.size, got, tc.want)
		}
	}
}

func TestVHDFooterRoundTrip(t *testing.T) {
	f, err := NewFixedVHDFooter(30 << 30)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != VHDFooterSize || string(b[:8]) != "conectix" {
		t.Fatalf("footer %d bytes, cookie %q", len(b), b[:8])
	}
	// Fixed fields, big-endian, at the specification's offsets.
	for _, c := range []struct {
		off  int
		want []byte
	}{
		{8, []byte{0, 0, 0, 2}},                 // features
		{12, []byte{0, 1, 0, 0}},                // format version 1.0
		{16, bytes.Repeat([]byte{0xff}, 8)},     // data offset of a fixed disk
		{48, []byte{0, 0, 0, 7, 0x80, 0, 0, 0}}, // current size 30 GiB
		{60, []byte{0, 0, 0, 2}},                // disk type fixed
	} {
		if got := b[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("bytes at %d = % x, want % x", c.off, got, c.want)
		}
	}
	g, err := ParseVHDFooter(b)
	if err != nil {
		t.Fatal(err)
	}
	f.Checksum = g.Checksum
	if g != f {
		t.Errorf("round trip:\n got %+v\nwant %+v", g, f)
	}
	f2, _ := NewFixedVHDFooter(30 << 30)
	if f2.UniqueID == f.UniqueID {
		t.Error("two footers share a unique id")
	}
}

func TestParseVHDFooterErrors(t *testing.T) {
	good, err := NewFixedVHDFooter(MiB)
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := good.MarshalBinary()
	tests := []struct {
		name   string
		mutate func([]byte)
		want   error
	}{
		{"ok", func([]byte) {}, nil},
		{"cookie", func(b []byte) { b[0] = 'x' }, ErrNotVHD},
		{"checksum", func(b []byte) { b[50] ^= 1 }, ErrVHDChecksum},
		{"stored checksum", func(b []byte) { b[64] ^= 1 }, ErrVHDChecksum},
	}
	for _, tc := range tests {
		b := bytes.Clone(gb)
		tc.mutate(b)
		_, err := ParseVHDFooter(b)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestWriteFixedVHD(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		size    int64
		virtual int64
	}{
		{"exact MiB", 2 * MiB, 2 * MiB},
		{"rounded up", 5*MiB + 1, 6 * MiB},
		{"tiny", 1, MiB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".vhd")
			data := bytes.Repeat([]byte{0xA5}, int(tc.size))
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := WriteFixedVHD(p)
			if err != nil {
				t.Fatal(err)
			}
			if v != tc.virtual {
				t.Fatalf("virtual size %d, want %d", v, tc.virtual)
			}
			ft, err := CheckFixedVHD(p)
			if err != nil {
				t.Fatal(err)
			}
			if ft.CurrentSize != uint64(tc.virtual) || ft.Geometry != VHDGeometry(uint64(tc.virtual)) {
				t.Errorf("footer %+v", ft)
			}
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got[:tc.size], data) || !isZero(got[tc.size:tc.virtual]) {
				t.Error("data changed or padding not zero")
			}
			if _, err := WriteFixedVHD(p); err == nil {
				t.Error("second WriteFixedVHD succeeded; want refusal")
			}
			if f, err := DetectFormat(p); err != nil || f != FormatVHD {
				t.Errorf("DetectFormat = %q, %v", f, err)
			}
		})
	}
}

func TestCheckFixedVHDRejects(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw")
	os.WriteFile(raw, make([]byte, MiB), 0o644)
	if _, err := CheckFixedVHD(raw); !errors.Is(err, ErrNotVHD) {
		t.Errorf("raw file: %v", err)
	}
	// A footer claiming 1 MiB on a file with extra bytes.
	p := filepath.Join(dir, "short.vhd")
	os.WriteFile(p, make([]byte, MiB), 0o644)
	if _, err := WriteFixedVHD(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(make([]byte, 512), b...), 0o644)
	if _, err := CheckFixedVHD(p); !errors.Is(err, ErrVHDSizeMismatch) {
		t.Errorf("size mismatch: %v", err)
	}
	// A footer whose size is not a multiple of 1 MiB.
	ft, _ := NewFixedVHDFooter(MiB + 512)
	fb, _ := ft.MarshalBinary()
	os.WriteFile(p, append(make([]byte, MiB+512), fb...), 0o644)
	if _, err := CheckFixedVHD(p); !errors.Is(err, ErrVHDSizeNotMiB) {
		t.Errorf("not MiB: %v", err)
	}
}

// TestFixedVHDQemuImg checks our footer against qemu's reading of it, and
// our reader against qemu-img's own fixed VHDs.
func TestFixedVHDQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := QemuImg{Run: Exec{}}
	dir := t.TempDir()
	p := filepath.Join(dir, "disk.vhd")
	if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 3*MiB+7), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFixedVHD(p); err != nil {
		t.Fatal(err)
	}
	info, err := q.Info(ctx, p, FormatVHD)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != FormatVHD || info.VirtualSize != 4*MiB {
		t.Errorf("qemu-img info: format %q virtual size %d, want vpc %d", info.Format, info.VirtualSize, 4*MiB)
	}
	// qemu reads back exactly our data.
	back := filepath.Join(dir, "back.raw")
	if err := q.Convert(ctx, p, FormatVHD, back, ConvertOptions{Format: FormatRaw}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(back)
	if len(b) != 4*MiB || !bytes.Equal(b[:3*MiB+7], bytes.Repeat([]byte{1}, 3*MiB+7)) {
		t.Errorf("qemu read back %d bytes, different data", len(b))
	}
	// And qemu-img's own fixed VHD passes our checks.
	qv := filepath.Join(dir, "qemu.vhd")
	if err := q.Convert(ctx, back, FormatRaw, qv, ConvertOptions{Format: FormatVHD}); err != nil {
		t.Fatal(err)
	}
	ft, err := CheckFixedVHD(qv)
	if err != nil {
		t.Fatal(err)
	}
	if ft.CurrentSize != 4*MiB {
		t.Errorf("qemu VHD current size %d", ft.CurrentSize)
	}
	// Without force_size qemu derives the geometry from the size too, but
	// rounds the cylinders up so CHS covers the whole size (and grows the
	// disk to match); the specification's algorithm, which we and Hyper-V
	// follow, rounds down and keeps the exact size in CurrentSize. Same
	// heads and sectors per track, at most one cylinder apart.
	for _, size := range []int64{4 * MiB, 64 * MiB, 2 << 30, 40 << 30} {
		p := filepath.Join(dir, "geo.vhd")
		os.Remove(p)
		if _, err := (Exec{}).Run(ctx, Cmd{Name: "qemu-img", Args: []string{"create", "-q", "-f", "vpc", "-o", "subformat=fixed", p, fmt.Sprint(size)}}); err != nil {
			t.Fatal(err)
		}
		ft, err := ReadVHDFooter(p)
		if err != nil {
			t.Fatal(err)
		}
		q, ours := ft.Geometry, VHDGeometry(uint64(size))
		if q.Heads != ours.Heads || q.SectorsPerTrack != ours.SectorsPerTrack || q.Cylinders-ours.Cylinders > 1 {
			t.Errorf("size %d: qemu geometry %+v, ours %+v", size, q, ours)
		}
	}
}
