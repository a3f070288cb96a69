package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/disk"
)

type testImage struct {
	path string
	data []byte
	sum  string
}

// writeTestImage writes a raw image: some data, then zeros.
func writeTestImage(t *testing.T, size int) testImage {
	t.Helper()
	data := make([]byte, size)
	copy(data, bytes.Repeat([]byte("goldsmith"), 1000))
	p := filepath.Join(t.TempDir(), "image.raw")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return testImage{path: p, data: data, sum: sha256hex(data)}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func serve(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	raw := writeTestImage(t, 2<<20)
	vhdPath := filepath.Join(t.TempDir(), "image.vhd")
	os.WriteFile(vhdPath, raw.data[:1<<20+5], 0o644)
	if _, err := disk.WriteFixedVHD(vhdPath); err != nil {
		t.Fatal(err)
	}
	vhd, _ := os.ReadFile(vhdPath)
	qcowHead := append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 1024)...)
	srv := serve(t, map[string][]byte{"/raw.img": raw.data, "/disk.vhd": vhd, "/disk.qcow2": qcowHead})

	tests := []struct {
		name       string
		req        ImportRequest
		wantURN    string
		wantFormat string
		wantErr    []string // substrings of the error
		wantIs     error
	}{
		{name: "raw over http", req: ImportRequest{URN: "Canonical:UbuntuServer:18.04-LTS", Source: srv.URL + "/raw.img", SHA256: raw.sum},
			wantURN: "Canonical:UbuntuServer:18.04-LTS:18.20260315.0", wantFormat: disk.FormatRaw},
		{name: "second day-version", req: ImportRequest{URN: "Canonical:UbuntuServer:18.04-LTS:latest", Source: raw.path, SHA256: "SHA256:" + strings.ToUpper(raw.sum)},
			wantURN: "Canonical:UbuntuServer:18.04-LTS:18.20260315.1", wantFormat: disk.FormatRaw},
		{name: "fixed vhd", req: ImportRequest{URN: "Local:win:2022:1.0.0", Source: srv.URL + "/disk.vhd", SHA256: sha256hex(vhd), OSType: "windows", HyperVGeneration: "V2"},
			wantURN: "Local:win:2022:1.0.0", wantFormat: disk.FormatVHD},
		{name: "qcow2", req: ImportRequest{URN: "Local:q:1:1", Source: srv.URL + "/disk.qcow2", SHA256: sha256hex(qcowHead)},
			wantURN: "Local:q:1:1", wantFormat: disk.FormatQCOW2},
		{name: "same bytes same version again", req: ImportRequest{URN: "Local:win:2022:1.0.0", Source: srv.URL + "/disk.vhd", SHA256: sha256hex(vhd)},
			wantURN: "Local:win:2022:1.0.0", wantFormat: disk.FormatVHD},
		{name: "bad digest", req: ImportRequest{URN: "Local:bad:1", Source: srv.URL + "/raw.img", SHA256: strings.Repeat("ab", 32)},
			wantErr: []string{srv.URL + "/raw.img", "expected " + strings.Repeat("ab", 32), "got " + raw.sum}, wantIs: ErrDigestMismatch},
		{name: "other bytes under an existing version", req: ImportRequest{URN: "Local:win:2022:1.0.0", Source: srv.URL + "/raw.img", SHA256: raw.sum},
			wantIs: ErrExists},
		{name: "404", req: ImportRequest{URN: "Local:x:1", Source: srv.URL + "/nope", SHA256: raw.sum}, wantErr: []string{"404"}},
		{name: "no digest", req: ImportRequest{URN: "Local:x:1", Source: raw.path}, wantErr: []string{"sha256 is required"}},
		{name: "built-in name", req: ImportRequest{URN: "Debian:debian-12:12", Source: raw.path, SHA256: raw.sum}, wantErr: []string{"built-in"}},
		{name: "ftp", req: ImportRequest{URN: "Local:x:1", Source: "ftp://example.com/x", SHA256: raw.sum}, wantErr: []string{"unsupported source"}},
	}
	c := newTestCatalog(t, t.TempDir(), &fakes{boot: &fakeBootstrap{}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := c.List()
			e, err := c.Import(ctx, tc.req)
			if tc.wantErr != nil || tc.wantIs != nil {
				if err == nil {
					t.Fatalf("imported %s; want an error", e.URN)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("error %v is not %v", err, tc.wantIs)
				}
				if after, _ := c.List(); len(after) != len(before) {
					t.Errorf("index changed on error: %d → %d entries", len(before), len(after))
				}
				assertNoWork(t, c)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.URN != tc.wantURN || e.DiskFormat != tc.wantFormat {
				t.Errorf("got %s (%s), want %s (%s)", e.URN, e.DiskFormat, tc.wantURN, tc.wantFormat)
			}
			got, err := os.ReadFile(e.DiskPath)
			if err != nil || sha256hex(got) != e.DiskSHA256 || filepath.Base(e.DiskPath) != e.DiskSHA256 {
				t.Errorf("blob %s does not hold the imported bytes: %v", e.DiskPath, err)
			}
			if e.KernelPath != "" || e.Cmdline != "" {
				t.Errorf("an import has no direct kernel boot: %+v", e)
			}
			assertNoWork(t, c)
		})
	}
	// The bad digest left no blob: only the four good imports' three blobs.
	blobs, _ := filepath.Glob(filepath.Join(c.Dir(), "blobs", "sha256", "*"))
	if len(blobs) != 3 {
		t.Errorf("%d blobs, want 3 (raw, vhd, qcow2): %v", len(blobs), blobs)
	}
	e, _ := c.Resolve(ctx, "Local:win:2022")
	if e.OSType != "Windows" || e.HyperVGeneration != "V2" {
		t.Errorf("vhd entry %+v", e)
	}
	// Zero blocks were not written: the raw blob stays sparse.
	alloc, err := disk.AllocatedBytes(filepath.Join(c.Dir(), "blobs", "sha256", raw.sum))
	if err != nil || alloc > int64(len(raw.data))/4 {
		t.Errorf("raw blob allocates %d of %d bytes (%v): not sparse", alloc, len(raw.data), err)
	}
}

// TestImportRealQcow2 imports a real qcow2 made by qemu-img, and refuses
// one with a backing file.
func TestImportRealQcow2(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	ctx := context.Background()
	dir := t.TempDir()
	q := disk.QemuImg{Run: disk.Exec{}}
	c, e, _, qc := importQcow2(t, dir, false)
	ov := filepath.Join(dir, "overlay.qcow2")
	if err := q.CreateOverlay(ctx, ov, qc, disk.FormatQCOW2, 0); err != nil {
		t.Fatal(err)
	}
	if e.DiskFormat != disk.FormatQCOW2 || e.VirtualSize != 4<<20 || e.Version != "0.20260315.0" {
		t.Errorf("entry %+v", e)
	}
	osum, _, _ := disk.SHA256File(ctx, ov)
	if _, err := c.Import(ctx, ImportRequest{URN: "Local:golden:overlay", Source: ov, SHA256: osum}); err == nil || !strings.Contains(err.Error(), "backing file") {
		t.Errorf("overlay import: %v", err)
	}
	assertNoWork(t, c)
}

// importQcow2 makes a qcow2 (compressed or not) of a 4 MiB test image in dir
// with qemu-img and imports it into a new catalog as Local:golden:base. It
// returns the catalog, the entry, the raw image and the qcow2's path.
func importQcow2(t *testing.T, dir string, compress bool) (*Catalog, Entry, testImage, string) {
	t.Helper()
	ctx := context.Background()
	raw := writeTestImage(t, 4<<20)
	qc := filepath.Join(dir, "a.qcow2")
	q := disk.QemuImg{Run: disk.Exec{}}
	if err := q.Convert(ctx, raw.path, disk.FormatRaw, qc, disk.ConvertOptions{Format: disk.FormatQCOW2, Compress: compress}); err != nil {
		t.Fatal(err)
	}
	c, err := Open(t.TempDir(), WithClock(func() time.Time { return testDay }))
	if err != nil {
		t.Fatal(err)
	}
	sum, _, _ := disk.SHA256File(ctx, qc)
	e, err := c.Import(ctx, ImportRequest{URN: "Local:golden:base", Source: qc, SHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	return c, e, raw, qc
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	c := newTestCatalog(t, t.TempDir(), &fakes{boot: &fakeBootstrap{}})
	a, b := writeTestImage(t, 1<<20), writeTestImage(t, 2<<20)
	imp := func(urn string, img testImage) Entry {
		e, err := c.Import(ctx, ImportRequest{URN: urn, Source: img.path, SHA256: img.sum})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a1, a2, b1 := imp("L:o:s:1", a), imp("L:o:s:2", a), imp("L:o:s:3", b)
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if err := c.Remove(ctx, "L:o:s:3"); err != nil {
		t.Fatal(err)
	}
	if exists(b1.DiskPath) {
		t.Error("blob used by no other entry was kept")
	}
	if err := c.Remove(ctx, "L:o:s:1"); err != nil {
		t.Fatal(err)
	}
	if !exists(a2.DiskPath) || a1.DiskPath != a2.DiskPath {
		t.Error("blob still used by L:o:s:2 was removed")
	}
	if e, err := c.Resolve(ctx, "L:o:s"); err != nil || e.Version != "2" {
		t.Errorf("latest after removals: %s, %v", e.URN, err)
	}
}
