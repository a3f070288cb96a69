package resource_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/internal/s3test"
	"github.com/goldsmith-dev/goldsmith/internal/standin"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/server"
	"github.com/goldsmith-dev/goldsmith/template"
)

// stagingSite is how the nodes of one site are configured: one database,
// one staging store, one set of regions.
type stagingSite struct {
	database string // "": SQLite in the node's data directory
	regions  func(t *testing.T, dir string) *blob.Regions
	staging  func(t *testing.T, dir string) blob.Store // nil store: the local default
}

// node opens a server on dir with the stand-in executor and works its
// queue until close (or the test's end).
func (s stagingSite) node(t *testing.T, dir string) *fixture {
	t.Helper()
	srv, err := server.Open(context.Background(), server.Config{DataDir: dir, Database: s.database, Workers: 2,
		Executor: standin.Executor{Duration: 100 * time.Millisecond}, Regions: s.regions(t, dir), Staging: s.staging(t, dir),
		QueuePoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	var once sync.Once
	f := &fixture{svc: srv.Service(), dir: srv.DataDir(), close: func() { once.Do(func() { stop(); <-done; srv.Close() }) }}
	t.Cleanup(f.close)
	return f
}

// TestStagingStore submits a template whose customizers reference files on
// a server on 127.0.0.1, runs it and deletes it, with the staging store
// and the region's store local (one node) and then in buckets on a real
// S3 server (versitygw) shared by two nodes on one PostgreSQL database: the
// second node runs what the first submitted and serves its outputs. The
// staged files and the VHD are blobs in the staging store, fetched and
// downloaded with their sha256 checked, and go when nothing refers to them.
func TestStagingStore(t *testing.T) {
	files := map[string]string{"/setup.sh": "#!/bin/sh\necho set up\n", "/motd": "built by goldsmith\n"}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(web.Close)

	local := stagingSite{
		regions: func(t *testing.T, dir string) *blob.Regions { return nil },
		staging: func(t *testing.T, dir string) blob.Store { return nil },
	}
	shared := func(t *testing.T) stagingSite {
		srv, err := s3test.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		cfg := srv.Bucket(t)
		return stagingSite{database: cluster.Database(t),
			regions: func(t *testing.T, dir string) *blob.Regions {
				rs, err := blob.OpenRegions(context.Background(), filepath.Join(dir, "regions"), []blob.Region{{Name: "westus2", S3: &cfg}})
				if err != nil {
					t.Fatal(err)
				}
				return rs
			},
			staging: func(t *testing.T, dir string) blob.Store {
				st, err := blob.NewS3(context.Background(), *blob.StagingS3(nil, []blob.Region{{Name: "westus2", S3: &cfg}}), os.Getenv)
				if err != nil {
					t.Fatal(err)
				}
				return st
			},
		}
	}
	for _, tc := range []struct {
		name  string
		site  func(t *testing.T) stagingSite
		nodes int
	}{
		{"local", func(*testing.T) stagingSite { return local }, 1},
		{"s3, two nodes", shared, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			site := tc.site(t)
			dirs := []string{t.TempDir(), t.TempDir()}
			a := site.node(t, dirs[0])
			// The store the nodes stage into, as the test reads it.
			staging := site.staging(t, dirs[0])
			if staging == nil {
				d, err := blob.NewDir(filepath.Join(dirs[0], "staging", ".blobs"))
				if err != nil {
					t.Fatal(err)
				}
				staging = d
			}
			a.group(t, "rg")
			body := templateBody("rg")
			props := body["properties"].(map[string]any)
			props["customize"] = []any{
				map[string]any{"type": "Shell", "name": "setup", "scriptUri": web.URL + "/setup.sh"},
				map[string]any{"type": "File", "name": "motd", "sourceUri": web.URL + "/motd", "destination": "/tmp/motd"},
			}
			props["distribute"] = append(props["distribute"].([]any), map[string]any{"type": "VHD", "runOutputName": "vhd"})
			id := a.submit(t, "t", body)
			tmpl, err := a.svc.GetTemplate(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.ProvisioningState != resource.StateSucceeded || len(tmpl.StagedFiles) != 2 {
				t.Fatalf("template %s (%+v), staged %+v", tmpl.ProvisioningState, tmpl.ProvisioningError, tmpl.StagedFiles)
			}
			for _, f := range tmpl.StagedFiles {
				h := sha256.Sum256([]byte(files[strings.TrimPrefix(f.URI, web.URL)]))
				if f.SHA256 != hex.EncodeToString(h[:]) {
					t.Errorf("%s staged with sha256 %s, want %x", f.URI, f.SHA256, h)
				}
				if _, ok, err := staging.Stat(f.SHA256); !ok || err != nil {
					t.Errorf("%s is not in the staging store (%v)", f.URI, err)
				}
			}
			if entries, _ := os.ReadDir(filepath.Join(dirs[0], "downloads")); len(entries) != 0 {
				t.Errorf("the submission left %d entries in downloads/", len(entries))
			}

			// With two nodes, the second runs the build and serves its
			// outputs: only the database and the object store are shared.
			b, bdir := a, dirs[0]
			if tc.nodes == 2 {
				a.close()
				b, bdir = site.node(t, dirs[1]), dirs[1]
			}
			vhd := runOnce(t, b, id)
			for _, f := range tmpl.StagedFiles {
				if !strings.Contains(vhd.log, fmt.Sprintf("staged %s sha256 %s", f.URI, f.SHA256)) {
					t.Errorf("the build did not read %s from its scratch space:\n%s", f.URI, vhd.log)
				}
			}
			if got := download(t, b, vhd.uri); got != vhd.sum {
				t.Errorf("the VHD downloaded has sha256 %s, its artifactUri names %s", got, vhd.sum)
			}
			if _, ok, err := staging.Stat(vhd.sum); !ok || err != nil {
				t.Errorf("the VHD is not in the staging store (%v)", err)
			}
			// The managed image's disk, in the region's store, is what a
			// build from it would start from on this node.
			src := template.Source{Type: template.SourceManagedImage, ImageID: imageID("rg")}
			disk, err := b.svc.StoredDisk(resource.WithRunLocation(ctx, "westus2"), src)
			if err != nil {
				t.Fatal(err)
			}
			if got := fileSHA256(t, disk.Path); got != disk.SHA256 || !strings.HasPrefix(disk.Path, b.dir) {
				t.Errorf("stored disk at %s has sha256 %s, want %s under %s", disk.Path, got, disk.SHA256, b.dir)
			}

			// A second run replaces the runOutput: the first VHD goes.
			second := runOnce(t, b, id)
			if second.sum == vhd.sum {
				t.Fatal("the stand-in wrote the same VHD twice")
			}
			if _, ok, err := staging.Stat(vhd.sum); ok || err != nil {
				t.Errorf("the replaced VHD is still in the staging store (%v)", err)
			}

			// Deleting the template frees its staged files and its VHD.
			del, err := b.svc.DeleteTemplate(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			b.wait(t, del.ID)
			// (The blobs go after the deletion's commit, which ends its
			// operation.)
			for _, sum := range []string{second.sum, tmpl.StagedFiles[0].SHA256, tmpl.StagedFiles[1].SHA256} {
				goneFrom(t, staging, sum)
			}

			// A blob nothing refers to (a crash between placing and
			// recording it) goes at the next start.
			orphan := filepath.Join(t.TempDir(), "orphan")
			if err := os.WriteFile(orphan, []byte("left behind"), 0o600); err != nil {
				t.Fatal(err)
			}
			sum := fileSHA256(t, orphan)
			if _, err := staging.Put(ctx, sum, orphan, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			b.close()
			site.node(t, bdir).close()
			if _, ok, err := staging.Stat(sum); ok || err != nil {
				t.Errorf("the orphan blob survived the sweep (%v)", err)
			}
		})
	}
}

type vhdOutput struct{ uri, sum, log string }

// runOnce runs the template on f and returns its VHD runOutput.
func runOnce(t *testing.T, f *fixture, id string) vhdOutput {
	t.Helper()
	ctx := context.Background()
	op, err := f.svc.StartRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if op := f.wait(t, op.ID); op.Status != resource.OpSucceeded {
		t.Fatalf("run: %s %+v", op.Status, op.Error)
	}
	out, err := f.svc.GetRunOutput(ctx, id, "vhd")
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := out.Properties["artifactUri"].(string)
	rest, ok := strings.CutPrefix(uri, resource.StagedScheme)
	if !ok || !strings.HasSuffix(rest, ".vhd") {
		t.Fatalf("artifactUri %q", uri)
	}
	rd, _, err := f.svc.LogReader(ctx, id, "", false)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(rd)
	rd.Close()
	sum, _, _ := strings.Cut(rest, "/")
	return vhdOutput{uri: uri, sum: sum, log: string(log)}
}

// download fetches an artifactUri's link as a client would and returns the
// bytes' sha256: a presigned GET from the object store, or the local file
// goldsmith's signed URL serves.
func download(t *testing.T, f *fixture, uri string) string {
	t.Helper()
	l, err := f.svc.ArtifactLink(context.Background(), uri, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if l.Rel != "" {
		if !strings.HasPrefix(l.Rel, "staging/") {
			t.Errorf("goldsmith serves blobs under staging/ only, not %s", l.Rel)
		}
		return fileSHA256(t, filepath.Join(f.dir, filepath.FromSlash(l.Rel)))
	}
	resp, err := http.Get(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", l.URL, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// goneFrom waits for a blob to leave a store.
func goneFrom(t *testing.T, st blob.Store, sum string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ok, err := st.Stat(sum)
		if !ok && err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("blob %s is still in %v (%v)", sum, st, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
