package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// A guest's memory is saved as a file of its own beside the device state
// (the VM's memory is a file on tmpfs, see qemuInvocation.RAMFile). Between
// two checkpoints of one running guest only a few MiB of its ~0.5 GiB of
// touched memory change, so a checkpoint writes only the pages that differ
// from the previous checkpoint (or the restore) of the same QEMU process: a
// "delta", a sparse file whose holes are the pages that did not change.
// The VM keeps a shadow copy of the memory as of its last checkpoint on
// tmpfs to compare against. A restore lays the whole file and the deltas
// after it on top of one another (loadMemory).

// pageSize is the unit of comparison: the guest's page.
const pageSize = 4096

// deltaLimit: a delta with more than this share of the touched pages
// changed (after a guest reboot most pages are new) is written whole
// instead, which starts a new chain.
const deltaLimitPercent = 50

// memoryChunk is how much of each file one read takes.
const memoryChunk = 1 << 20

// saveMemory writes the paused guest's memory, live, to dst. When shadow
// holds the memory as of the previous checkpoint or restore of the same
// QEMU process, dst receives only the pages that differ (delta=true) and
// the shadow is brought up to date; otherwise dst is a whole copy, and so
// is the shadow afterwards.
func saveMemory(ctx context.Context, live, shadow string, haveShadow bool, dst string) (delta bool, changed int64, err error) {
	if haveShadow {
		delta, changed, err = saveDelta(ctx, live, shadow, dst)
		if err != nil || delta {
			return delta, changed, err
		}
	}
	if err := disk.CloneSparse(ctx, dst, live); err != nil {
		return false, 0, err
	}
	if err := disk.CloneSparse(ctx, shadow, live); err != nil {
		os.Remove(shadow)
		return false, 0, fmt.Errorf("shadow copy of the guest's memory: %w", err)
	}
	return false, 0, nil
}

// saveDelta writes to dst the pages of live that differ from shadow and
// copies them into shadow. It gives up (delta=false, dst removed, shadow
// possibly half updated: the caller rewrites it) when more than
// deltaLimitPercent of the touched pages changed.
func saveDelta(ctx context.Context, live, shadow, dst string) (delta bool, changed int64, err error) {
	in, err := os.Open(live)
	if err != nil {
		return false, 0, err
	}
	defer in.Close()
	sh, err := os.OpenFile(shadow, os.O_RDWR, 0)
	if err != nil {
		return false, 0, err
	}
	defer sh.Close()
	st, err := in.Stat()
	if err != nil {
		return false, 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return false, 0, err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil || !delta {
			os.Remove(dst)
		}
		if err != nil {
			err = fmt.Errorf("memory delta %s: %w", dst, err)
		}
	}()
	if err := out.Truncate(st.Size()); err != nil {
		return false, 0, err
	}
	extents, err := dataExtents(in, st.Size())
	if err != nil {
		return false, 0, err
	}
	var touched int64
	for _, e := range extents {
		touched += e[1] - e[0]
	}
	limit := touched / 100 * deltaLimitPercent

	// Two workers, one per half of the touched memory: comparing is
	// memory-bound and the guest is paused meanwhile.
	halves := splitExtents(extents, touched/2)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		first error
	)
	stop := make(chan struct{})
	var once sync.Once
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		once.Do(func() { close(stop) })
	}
	for _, part := range halves {
		wg.Add(1)
		go func(part [][2]int64) {
			defer wg.Done()
			a, b := make([]byte, memoryChunk), make([]byte, memoryChunk)
			for _, e := range part {
				for off := e[0]; off < e[1]; off += memoryChunk {
					select {
					case <-stop:
						return
					default:
					}
					if err := ctx.Err(); err != nil {
						fail(err)
						return
					}
					n := int(min(memoryChunk, e[1]-off))
					if _, err := in.ReadAt(a[:n], off); err != nil {
						fail(err)
						return
					}
					if _, err := sh.ReadAt(b[:n], off); err != nil {
						fail(err)
						return
					}
					var mine int64
					for p := 0; p < n; p += pageSize {
						q := min(p+pageSize, n)
						if bytes.Equal(a[p:q], b[p:q]) {
							continue
						}
						// Runs of changed pages go out in one write each.
						r := q
						for r < n && !bytes.Equal(a[r:min(r+pageSize, n)], b[r:min(r+pageSize, n)]) {
							r = min(r+pageSize, n)
						}
						if _, err := out.WriteAt(a[p:r], off+int64(p)); err != nil {
							fail(err)
							return
						}
						if _, err := sh.WriteAt(a[p:r], off+int64(p)); err != nil {
							fail(err)
							return
						}
						mine += int64(r - p)
						p = r - pageSize
					}
					mu.Lock()
					total += mine
					over := total > limit
					mu.Unlock()
					if over {
						once.Do(func() { close(stop) })
						return
					}
				}
			}
		}(part)
	}
	wg.Wait()
	if first != nil {
		return false, 0, first
	}
	if total > limit {
		return false, total, nil
	}
	return true, total, nil
}

// loadMemory lays files into dst, a new file: the first whole, each next
// one (a delta) on top, its data replacing what is below.
func loadMemory(ctx context.Context, dst string, files []string) error {
	if len(files) == 0 {
		return errors.New("no memory files")
	}
	if err := disk.CloneSparse(ctx, dst, files[0]); err != nil {
		return err
	}
	if len(files) == 1 {
		return nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, memoryChunk)
	for _, f := range files[1:] {
		if err := overlay(ctx, out, f, buf); err != nil {
			return fmt.Errorf("apply memory delta %s: %w", f, err)
		}
	}
	return nil
}

func overlay(ctx context.Context, out *os.File, path string, buf []byte) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	extents, err := dataExtents(in, st.Size())
	if err != nil {
		return err
	}
	for _, e := range extents {
		for off := e[0]; off < e[1]; off += int64(len(buf)) {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int(min(int64(len(buf)), e[1]-off))
			if _, err := in.ReadAt(buf[:n], off); err != nil {
				return err
			}
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
	}
	return nil
}

// dataExtents is disk.DataExtents rounded out to whole pages: the unit the
// memory is compared and laid down in.
func dataExtents(f *os.File, size int64) ([][2]int64, error) {
	extents, err := disk.DataExtents(f, size)
	for i, e := range extents {
		extents[i] = [2]int64{e[0] / pageSize * pageSize, min(size, (e[1]+pageSize-1)/pageSize*pageSize)}
	}
	return extents, err
}

// splitExtents cuts extents into two lists of about at bytes and the rest,
// on a page boundary.
func splitExtents(extents [][2]int64, at int64) [][][2]int64 {
	var first, second [][2]int64
	var seen int64
	for _, e := range extents {
		n := e[1] - e[0]
		switch {
		case seen >= at:
			second = append(second, e)
		case seen+n <= at:
			first = append(first, e)
		default:
			cut := e[0] + (at-seen)/pageSize*pageSize
			if cut > e[0] {
				first = append(first, [2]int64{e[0], cut})
			}
			if cut < e[1] {
				second = append(second, [2]int64{cut, e[1]})
			}
		}
		seen += n
	}
	return [][][2]int64{first, second}
}
