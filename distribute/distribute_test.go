package distribute

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/internal/s3test"
	"github.com/goldsmith-dev/goldsmith/template"
)

func TestVersionName(t *testing.T) {
	now := time.Date(2026, 3, 5, 1, 2, 3, 0, time.UTC) // day 64, second 3723
	major := func(n int) *int { return &n }
	latest := &template.Versioning{Scheme: "Latest"}
	tests := []struct {
		name string
		req  VersionRequest
		want string
	}{
		{"explicit", VersionRequest{Explicit: "2.3.4"}, "2.3.4"},
		{"explicit malformed", VersionRequest{Explicit: "2.3"}, ""},
		{"explicit exists", VersionRequest{Explicit: "2.3.4", Existing: []string{"2.3.4"}}, ""},
		{"explicit and versioning", VersionRequest{Explicit: "2.3.4", Versioning: latest}, ""},
		{"old apiVersion: from the clock", VersionRequest{APIVersion: "2020-02-14"}, "0.26064.3723"},
		{"old apiVersion: made unique", VersionRequest{APIVersion: "2020-02-14", Existing: []string{"0.26064.3723"}}, "0.26064.3724"},
		{"new apiVersion without versioning: latest", VersionRequest{APIVersion: "2022-07-01", Existing: []string{"1.0.3"}}, "1.0.4"},
		{"latest, none yet", VersionRequest{Versioning: latest}, "1.0.0"},
		{"latest, next patch", VersionRequest{Versioning: latest, Existing: []string{"1.0.9", "1.2.0", "0.9.9"}}, "1.2.1"},
		{"latest within major", VersionRequest{Versioning: &template.Versioning{Scheme: "Latest", Major: major(0)}, Existing: []string{"1.2.0", "0.9.9"}}, "0.9.10"},
		{"latest, new major", VersionRequest{Versioning: &template.Versioning{Scheme: "Latest", Major: major(3)}, Existing: []string{"1.2.0"}}, "3.0.0"},
		{"source", VersionRequest{Versioning: &template.Versioning{Scheme: "Source"}, SourceVersion: "12.20250101.1"}, "12.20250101.1"},
		{"source exists", VersionRequest{Versioning: &template.Versioning{Scheme: "Source"}, SourceVersion: "1.2.3", Existing: []string{"1.2.3"}}, ""},
		{"source latest is not a version", VersionRequest{Versioning: &template.Versioning{Scheme: "Source"}, SourceVersion: "latest"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Now = now
			got, err := VersionName(tt.req)
			if (err != nil) != (tt.want == "") || got != tt.want {
				t.Errorf("VersionName = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestGalleryRegions(t *testing.T) {
	tests := []struct {
		name string
		d    template.Distributor
		want []string
	}{
		{"gallery region only", template.Distributor{}, []string{"westus2"}},
		{"replication regions", template.Distributor{ReplicationRegions: []string{"East US", "westus2"}}, []string{"westus2", "eastus"}},
		{"replication regions without the gallery's", template.Distributor{ReplicationRegions: []string{"eastus"}}, nil},
		{"target regions get the gallery's", template.Distributor{TargetRegions: []template.TargetRegion{{Name: "eastus", ReplicaCount: 2}}}, []string{"westus2", "eastus"}},
		{"both", template.Distributor{ReplicationRegions: []string{"westus2"}, TargetRegions: []template.TargetRegion{{Name: "eastus"}}}, nil},
		{"duplicate", template.Distributor{ReplicationRegions: []string{"westus2", "West US 2"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GalleryRegions(tt.d, "West US 2")
			if (err != nil) != (tt.want == nil) {
				t.Fatalf("GalleryRegions = %v, %v", got, err)
			}
			var names []string
			for _, r := range got {
				names = append(names, r.Name)
				if r.ReplicaCount < 1 || r.StorageAccountType == "" {
					t.Errorf("region %+v has no defaults", r)
				}
			}
			if len(names) != len(tt.want) {
				t.Fatalf("regions %v, want %v", names, tt.want)
			}
			for i := range names {
				if names[i] != tt.want[i] {
					t.Fatalf("regions %v, want %v", names, tt.want)
				}
			}
		})
	}
}

// rawDisk writes a sparse raw disk with some data and returns its path and sha256.
func rawDisk(t *testing.T, dir string, size int64) (string, string) {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("goldsmith test disk"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("middle"), size/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum, _, err := disk.SHA256File(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return p, sum
}

// s3srv is a real S3-compatible server (versitygw on 127.0.0.1) for the
// regions stored in buckets.
var s3srv *s3test.Server

func TestMain(m *testing.M) { s3test.Main(m, func(s *s3test.Server) { s3srv = s }) }

func TestReplicate(t *testing.T) {
	tests := []struct {
		name         string
		s3           []bool // per region: a bucket rather than a directory
		serverCopied []bool // per region: copied by the S3 server from another bucket
	}{
		{"local directories", []bool{false, false, false}, []bool{false, false, false}},
		{"a directory and two buckets on one endpoint", []bool{true, false, true}, []bool{false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testReplicate(t, tt.s3, tt.serverCopied) })
	}
}

func testReplicate(t *testing.T, onS3, serverCopied []bool) {
	src, sum := rawDisk(t, t.TempDir(), 8<<20)
	var stores []blob.Store
	var replicas []Replica
	for i, r := range []string{"westus2", "eastus", "northeurope"} {
		var st blob.Store
		var err error
		if onS3[i] {
			st, err = blob.NewS3(context.Background(), s3srv.Bucket(t), os.Getenv)
		} else {
			st, err = blob.NewDir(filepath.Join(t.TempDir(), r))
		}
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		replicas = append(replicas, Replica{Region: r, Store: st})
	}
	s := NewSource(src, sum, "raw", 8<<20)
	seen := map[string][]string{}
	progress := make(chan [2]string, 16)
	res := Replicate(context.Background(), s, replicas, func(region, state string, _ error) { progress <- [2]string{region, state} })
	close(progress)
	for p := range progress {
		seen[p[0]] = append(seen[p[0]], p[1])
	}
	links := 0
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Region, r.Err)
		}
		if r.Placed.Linked {
			links++
		} else if !r.Placed.Copied {
			t.Errorf("%s: neither linked nor copied: %+v", r.Region, r.Placed)
		}
		if r.Placed.ServerCopied != serverCopied[i] {
			t.Errorf("%s: server-copied %v, want %v", r.Region, r.Placed.ServerCopied, serverCopied[i])
		}
		if got := storedSHA256(t, stores[i], sum); got != sum {
			t.Errorf("%s: replica sha256 %s, want %s", r.Region, got, sum)
		}
		if st := seen[r.Region]; len(st) != 2 || st[0] != StateReplicating || st[1] != StateCompleted {
			t.Errorf("%s: progress %v", r.Region, st)
		}
	}
	if links != 1 {
		t.Errorf("%d regions hard-linked the build output, want exactly 1", links)
	}
	for i := range replicas {
		again := Replicate(context.Background(), NewSource(src, sum, "raw", 8<<20), replicas[i:i+1], nil)
		if again[0].Err != nil || !again[0].Placed.Reused {
			t.Errorf("second replication to %s: %+v", replicas[i].Region, again[0])
		}
		bad := Replicate(context.Background(), NewSource(src, sha("other"), "raw", 8<<20), replicas[i:i+1], nil)
		if !errors.Is(bad[0].Err, blob.ErrDigestMismatch) {
			t.Errorf("a corrupt source replicated to %s: %+v", replicas[i].Region, bad[0])
		}
	}
}

func storedSHA256(t *testing.T, st blob.Store, sum string) string {
	t.Helper()
	r, err := st.Open(context.Background(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestExport(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	raw, rawSum := rawDisk(t, dir, 4<<20)
	qi := disk.QemuImg{Run: disk.Exec{}}
	qcow := filepath.Join(dir, "stored.qcow2")
	if err := qi.Convert(context.Background(), raw, "raw", qcow, disk.ConvertOptions{Format: disk.FormatQCOW2}); err != nil {
		t.Fatal(err)
	}
	for _, format := range ExportFormats {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out."+format)
			if err := Export(context.Background(), qi, qcow, "qcow2", out, format); err != nil {
				t.Fatal(err)
			}
			if format == "vhd" {
				if _, err := disk.CheckFixedVHD(out); err != nil {
					t.Fatal(err)
				}
			}
			back := filepath.Join(t.TempDir(), "back.raw")
			in, _ := qemuFormat(format)
			if err := qi.Convert(context.Background(), out, in, back, disk.ConvertOptions{Format: disk.FormatRaw}); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := disk.SHA256File(context.Background(), back); got != rawSum {
				t.Errorf("%s round trip changed the disk", format)
			}
		})
	}
	if err := Export(context.Background(), qi, qcow, "qcow2", filepath.Join(dir, "x"), "iso"); err == nil {
		t.Error("an unknown format was accepted")
	}
}
