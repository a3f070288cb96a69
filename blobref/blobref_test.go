package blobref

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/internal/s3test"
	"github.com/goldsmith-dev/goldsmith/store"
)

// These tests use a real store (SQLite) and real regions' stores: local
// directories, and buckets on a real S3-compatible server (versitygw on
// 127.0.0.1, started once for the package).

var s3srv *s3test.Server

func TestMain(m *testing.M) { s3test.Main(m, func(s *s3test.Server) { s3srv = s }) }

// forBackends runs test with both regions' stores local, then on S3.
func forBackends(t *testing.T, test func(t *testing.T, f *fixture)) {
	for _, kind := range []string{"local", "s3"} {
		t.Run(kind, func(t *testing.T) { test(t, newFixture(t, kind)) })
	}
}

type fixture struct {
	st      *store.Store
	regions *blob.Regions
	refs    *Refs
}

func newFixture(t *testing.T, kind string) *fixture {
	t.Helper()
	dir := t.TempDir()
	conf := []blob.Region{{Name: "westus2"}, {Name: "eastus"}}
	if kind == "s3" {
		for i := range conf {
			c := s3srv.Bucket(t)
			conf[i].S3 = &c
		}
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "goldsmith.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	regions, err := blob.OpenRegions(context.Background(), filepath.Join(dir, "regions"), conf)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, regions: regions, refs: New(st, regions, nil)}
}

// put places a blob with content in region and returns its sha256.
func (f *fixture) put(t *testing.T, region, content string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(src, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(content))
	sum := hex.EncodeToString(h[:])
	d, _ := f.regions.Store(region)
	if _, err := d.Put(context.Background(), sum, src, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return sum
}

func (f *fixture) has(region, sum string) bool {
	d, _ := f.regions.Store(region)
	_, ok, _ := d.Stat(sum)
	return ok
}

func (f *fixture) update(t *testing.T, fn func(*store.Tx) error) {
	t.Helper()
	if err := f.st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// TestRelease drops references one step at a time: the blob stays while
// one holder is left in its region, and goes with the last.
func TestRelease(t *testing.T) { forBackends(t, testRelease) }

func testRelease(t *testing.T, f *fixture) {
	ctx := context.Background()
	sum := f.put(t, "westus2", "a disk")
	other := f.put(t, "eastus", "a disk")
	f.update(t, func(tx *store.Tx) error {
		for _, h := range []string{"image#1", "version#1"} {
			if err := f.refs.Acquire(ctx, tx, "westus2", sum, h); err != nil {
				return err
			}
		}
		// Acquiring twice is one reference.
		if err := f.refs.Acquire(ctx, tx, "westus2", sum, "image#1"); err != nil {
			return err
		}
		return f.refs.Acquire(ctx, tx, "eastus", other, "version#1")
	})
	steps := []struct {
		region, holder  string
		westus2, eastus bool // whether each region's copy stays
	}{
		{"westus2", "image#1", true, true},
		{"westus2", "nobody", true, true},
		{"westus2", "version#1", false, true},
		{"eastus", "version#1", false, false},
	}
	for _, s := range steps {
		f.update(t, func(tx *store.Tx) error { return f.refs.Release(ctx, tx, s.region, sum, s.holder) })
		if f.has("westus2", sum) != s.westus2 || f.has("eastus", sum) != s.eastus {
			t.Errorf("after releasing %s in %s: westus2 %v, eastus %v; want %v, %v",
				s.holder, s.region, f.has("westus2", sum), f.has("eastus", sum), s.westus2, s.eastus)
		}
	}
}

// TestReleaseRolledBack keeps the blob when the transaction that dropped
// its last reference does not commit.
func TestReleaseRolledBack(t *testing.T) { forBackends(t, testReleaseRolledBack) }

func testReleaseRolledBack(t *testing.T, f *fixture) {
	ctx := context.Background()
	sum := f.put(t, "westus2", "a disk")
	f.update(t, func(tx *store.Tx) error { return f.refs.Acquire(ctx, tx, "westus2", sum, "image#1") })
	err := f.st.Update(ctx, func(tx *store.Tx) error {
		if err := f.refs.Release(ctx, tx, "westus2", sum, "image#1"); err != nil {
			return err
		}
		return os.ErrInvalid // roll back
	})
	if err == nil {
		t.Fatal("the update did not fail")
	}
	if !f.has("westus2", sum) {
		t.Error("the blob went with a rolled-back release")
	}
}

// TestSweep drops the references of holders that are gone and removes the
// blobs nothing refers to any more, in every region.
func TestSweep(t *testing.T) { forBackends(t, testSweep) }

func testSweep(t *testing.T, f *fixture) {
	ctx := context.Background()
	kept := f.put(t, "westus2", "kept")
	shared := f.put(t, "westus2", "shared")
	dead := f.put(t, "westus2", "dead")
	orphan := f.put(t, "eastus", "orphan") // no reference at all
	f.update(t, func(tx *store.Tx) error {
		for _, r := range []struct{ sum, holder string }{{kept, "image#1"}, {shared, "image#1"}, {shared, "gone#1"}, {dead, "gone#1"}} {
			if err := f.refs.Acquire(ctx, tx, "westus2", r.sum, r.holder); err != nil {
				return err
			}
		}
		return nil
	})
	if err := f.refs.Sweep(ctx, func(h string) bool { return h == "image#1" }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		region, sum, name string
		stays             bool
	}{{"westus2", kept, "kept", true}, {"westus2", shared, "shared", true}, {"westus2", dead, "dead", false}, {"eastus", orphan, "orphan", false}} {
		if f.has(c.region, c.sum) != c.stays {
			t.Errorf("%s: stays %v, want %v", c.name, f.has(c.region, c.sum), c.stays)
		}
	}
	// shared lost gone#1's reference: image#1's release removes it.
	f.update(t, func(tx *store.Tx) error { return f.refs.Release(ctx, tx, "westus2", shared, "image#1") })
	if f.has("westus2", shared) {
		t.Error("shared outlives its last holder")
	}
}
