package distribute

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
)

// Store is one region's blob store (a *blob.Dir or *blob.S3).
type Store interface {
	Lock(sum string) func()
	Put(ctx context.Context, sum, src string, opt blob.PutOptions) (blob.Placed, error)
}

// Source is a disk to distribute: a build output.
type Source struct {
	Path   string
	SHA256 string // lowercase hex, as the build computed it
	Format string // qcow2, raw or vhd
	Size   int64
	// Trusted: SHA256 was computed from Path by its producer (the build
	// engine), so a region that hard-links Path does not read it again.
	// Copies are verified regardless.
	Trusted bool
	// linked is claimed by the first region store that hard-links Path:
	// every other region gets a copy, so regions never share bytes.
	linked *atomic.Bool
}

// NewSource describes a build output that may be hard-linked into one
// region's store (the build no longer writes it).
func NewSource(path, sum, format string, size int64) *Source {
	return &Source{Path: path, SHA256: strings.ToLower(sum), Format: format, Size: size, linked: new(atomic.Bool)}
}

// Replica is one region to replicate to.
type Replica struct {
	Region string
	Store  Store
}

// ReplicaResult is how one region's copy went.
type ReplicaResult struct {
	Region   string
	Placed   blob.Placed
	Err      error
	Duration time.Duration
}

// Replication states reported to Progress, as a gallery image version's
// replicationStatus names them.
const (
	StateReplicating = "Replicating"
	StateCompleted   = "Completed"
	StateFailed      = "Failed"
)

// Replicate puts src into every region's store at once and returns one
// result per replica, in order. A region that has the blob already reuses
// it; the first region to take it may hard-link the build output; every
// other region gets a copy whose sha256 is read back and checked. progress
// (optional) hears each region's state changes; it may be called from
// several goroutines at once.
func Replicate(ctx context.Context, src *Source, replicas []Replica, progress func(region, state string, err error)) []ReplicaResult {
	if progress == nil {
		progress = func(string, string, error) {}
	}
	results := make([]ReplicaResult, len(replicas))
	// A bucket on the endpoint of an earlier replica's bucket is copied
	// from it by the server (blob.Copy) once that one is uploaded: the
	// bytes go up once per endpoint.
	from := make([]int, len(replicas))
	done := make([]chan struct{}, len(replicas))
	for i, rp := range replicas {
		from[i], done[i] = -1, make(chan struct{})
		if dst, ok := rp.Store.(*blob.S3); ok {
			for j := range i {
				if s, ok := replicas[j].Store.(*blob.S3); ok && from[j] == -1 && s.Endpoint() == dst.Endpoint() {
					from[i] = j
					break
				}
			}
		}
	}
	var wg sync.WaitGroup
	for i, rp := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			start := time.Now()
			progress(rp.Region, StateReplicating, nil)
			var placed blob.Placed
			var err error
			if j := from[i]; j >= 0 {
				<-done[j]
				if results[j].Err == nil {
					placed, err = copyOne(ctx, src, rp.Store.(*blob.S3), replicas[j].Store.(*blob.S3))
				} else {
					placed, err = putOne(ctx, src, rp.Store)
				}
			} else {
				placed, err = putOne(ctx, src, rp.Store)
			}
			if err != nil {
				err = fmt.Errorf("region %s: %w", rp.Region, err)
				progress(rp.Region, StateFailed, err)
			} else {
				progress(rp.Region, StateCompleted, nil)
			}
			results[i] = ReplicaResult{Region: rp.Region, Placed: placed, Err: err, Duration: time.Since(start)}
		}()
	}
	wg.Wait()
	return results
}

// copyOne has the store's server copy the blob from another bucket on its
// endpoint and verify it (blob.Copy).
func copyOne(ctx context.Context, src *Source, dst, from *blob.S3) (blob.Placed, error) {
	unlock := dst.Lock(src.SHA256)
	defer unlock()
	return blob.Copy(ctx, dst, from, src.SHA256)
}

func putOne(ctx context.Context, src *Source, st Store) (blob.Placed, error) {
	unlock := st.Lock(src.SHA256)
	defer unlock()
	// Only a local directory can hard-link; an object store claiming the
	// link would make a local region copy while it uploads.
	_, local := st.(*blob.Dir)
	link := local && src.linked != nil && src.linked.CompareAndSwap(false, true)
	placed, err := st.Put(ctx, src.SHA256, src.Path, blob.PutOptions{Link: link, TrustLinked: src.Trusted})
	if link && !placed.Linked {
		src.linked.Store(false) // not used: another region may link
	}
	return placed, err
}
