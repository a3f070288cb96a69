package resource

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/store"
)

// runQueue is a RunQueue that queues nothing: these tests write runs
// directly.
type runQueue struct{}

func (runQueue) Run(context.Context, *store.Tx, string) (int64, error)          { return 1, nil }
func (runQueue) Redistribute(context.Context, *store.Tx, string) (int64, error) { return 1, nil }
func (runQueue) Cancel(context.Context, *store.Tx, int64) (bool, error)         { return false, nil }

// TestSweepKeepsActiveRuns: a node starting while another node's run
// publishes (the run holds its VHD before its runOutput exists, and a
// gallery version it replicates is Creating) must not sweep the blob or
// the version; once the run has ended without recording them, they go.
// The node's own interrupted downloads go at once.
func TestSweepKeepsActiveRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "goldsmith.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := jobs.New(ctx, st, jobs.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Store: st, Queue: q, Runs: runQueue{}, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "out.vhd")
	if err := os.WriteFile(p, []byte("a VHD being published"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum, _, err := disk.SHA256File(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	const tid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t"
	run := Run{ID: tid + "/runs/r1", RunID: "r1", TemplateID: tid, State: RunRunning, StartTime: time.Now()}
	const vid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"
	version := Resource{ID: vid, Name: "1.0.0", Type: TypeGalleryImageVersion, Properties: map[string]any{"provisioningState": StateCreating},
		Artifact: &Artifact{Format: "qcow2", SHA256: sum, Holder: vid, Run: "r1"}}
	err = st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutJSON(ctx, run.ID, TypeRun, run); err != nil {
			return err
		}
		if err := tx.PutJSON(ctx, vid, TypeGalleryImageVersion, version); err != nil {
			return err
		}
		return s.refs.Acquire(ctx, tx, stagingStore, sum, tid+"/runOutputs/vhd#r1")
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.staging.Put(ctx, sum, p, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "downloads", "submit-1", "000-setup.sh")
	if err := os.MkdirAll(filepath.Dir(left), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(left, []byte("echo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		ended bool
		kept  bool
	}{
		{"the run is in progress", false, true},
		{"the run ended without recording it", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ended {
				now := time.Now()
				run.EndTime, run.State = &now, RunFailed
				if err := st.Update(ctx, func(tx *store.Tx) error { return tx.PutJSON(ctx, run.ID, TypeRun, run) }); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := s.staging.Stat(sum); ok != tc.kept || err != nil {
				t.Fatalf("after the sweep the VHD exists = %v (%v), want %v", ok, err, tc.kept)
			}
			err := st.View(ctx, func(tx *store.Tx) error { _, err := tx.Get(ctx, vid); return err })
			if exists := err == nil; exists != tc.kept {
				t.Fatalf("after the sweep the Creating gallery version exists = %v (%v), want %v", exists, err, tc.kept)
			}
			if entries, err := os.ReadDir(filepath.Join(dir, "downloads")); len(entries) != 0 || err != nil {
				t.Fatalf("downloads/ holds %d entries after the sweep (%v)", len(entries), err)
			}
		})
	}
}
