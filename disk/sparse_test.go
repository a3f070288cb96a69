package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, _ := os.Create(src)
	f.Truncate(64 * MiB)
	f.WriteAt(bytes.Repeat([]byte{1}, 4096), 0)
	f.WriteAt(bytes.Repeat([]byte{2}, 3*MiB), 20*MiB)
	f.WriteAt(make([]byte, 2*MiB), 40*MiB) // written zeros: allocated in src, a hole in dst
	f.WriteAt([]byte{3}, 64*MiB-1)
	f.Close()
	dst := filepath.Join(dir, "dst")
	if err := CopySparse(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("copy differs")
	}
	alloc, _ := AllocatedBytes(dst)
	if alloc > 6*MiB {
		t.Errorf("dst allocates %d bytes: holes not kept", alloc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CopySparse(ctx, dst, src); err == nil {
		t.Error("canceled copy succeeded")
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("canceled copy left its output")
	}
}

func TestSHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := bytes.Repeat([]byte("x"), 3*MiB+1)
	os.WriteFile(p, data, 0o644)
	want := sha256.Sum256(data)
	got, n, err := SHA256File(context.Background(), p)
	if err != nil || got != hex.EncodeToString(want[:]) || n != int64(len(data)) {
		t.Errorf("SHA256File = %s, %d, %v", got, n, err)
	}
	h := NewHashingReader(bytes.NewReader(data))
	if _, err := h.Read(make([]byte, len(data)+10)); err != nil || h.Sum() != got || h.N() != int64(len(data)) {
		t.Errorf("HashingReader %s %d %v", h.Sum(), h.N(), err)
	}
	for in, ok := range map[string]bool{
		got:                              true,
		"SHA256:" + strings.ToUpper(got): true,
		got[:63]:                         false,
		strings.Repeat("z", 64):          false,
	} {
		if _, err := NormalizeSHA256(in); (err == nil) != ok {
			t.Errorf("NormalizeSHA256(%q): %v", in, err)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	ft, _ := NewFixedVHDFooter(MiB)
	fb, _ := ft.MarshalBinary()
	dyn := ft
	dyn.DiskType = VHDTypeDynamic
	dyn.DataOffset = 512
	db, _ := dyn.MarshalBinary()
	broken := bytes.Clone(fb)
	broken[100] ^= 0xff
	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr bool
	}{
		{"qcow2", append([]byte("QFI\xfb"), make([]byte, 2000)...), FormatQCOW2, false},
		{"vmdk", append([]byte("KDMV"), make([]byte, 2000)...), FormatVMDK, false},
		{"fixed vhd", append(make([]byte, MiB), fb...), FormatVHD, false},
		{"dynamic vhd", append(db, make([]byte, 4096)...), FormatVHD, false},
		{"raw", bytes.Repeat([]byte{0x33}, 4096), FormatRaw, false},
		{"empty", nil, FormatRaw, false},
		{"shorter than a magic", []byte("QF"), FormatRaw, false},
		{"damaged footer", append(make([]byte, MiB), broken...), "", true},
	}
	for _, tc := range tests {
		got, err := DetectFormat(write(tc.name, tc.data))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
	}
}

func TestWriteSparse(t *testing.T) {
	data := make([]byte, 4*MiB+100)
	copy(data[MiB:], "payload")
	data[len(data)-1] = 9
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := WriteSparse(f, bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("WriteSparse = %d, %v", n, err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	if alloc, _ := AllocatedBytes(f.Name()); alloc > 512<<10 {
		t.Errorf("allocates %d bytes: zeros were written", alloc)
	}
}
