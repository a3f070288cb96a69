package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// copyVerified copies src to dst keeping holes (disk.CopySparseProgress,
// synced) and returns the sha256 of dst as read back from dst. The hash
// follows the copy: each block is read back and hashed as soon as the copy
// has passed it, so copying and verifying overlap (sha256 here is ~850 MB/s
// on one core; the copy is the kernel's work on the other).
func copyVerified(parent context.Context, dst, src string) (string, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		mu       sync.Mutex
		cond           = sync.NewCond(&mu)
		done     int64 = -1 // dst is final below done; -1: not created yet
		finished bool
		copyErr  error
	)
	go func() {
		err := disk.CopySparseProgress(ctx, dst, src, func(off int64) {
			mu.Lock()
			if off > done {
				done = off
			}
			mu.Unlock()
			cond.Broadcast()
		})
		mu.Lock()
		finished, copyErr = true, err
		mu.Unlock()
		cond.Broadcast()
	}()
	// wait returns how far dst is final once it is past pos (or the copy
	// ended), and whether the copy ended.
	wait := func(pos int64) (int64, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		for done <= pos && !finished {
			cond.Wait()
		}
		return done, finished, copyErr
	}
	stop := func(err error) (string, error) {
		cancel()
		wait(1 << 62)
		if perr := parent.Err(); perr != nil {
			return "", perr
		}
		return "", err
	}
	if _, _, err := wait(-1); err != nil {
		return "", err
	}
	f, err := os.Open(dst)
	if err != nil {
		return stop(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var pos int64
	for {
		avail, fin, err := wait(pos)
		if err != nil {
			return "", err
		}
		for pos < avail {
			n := min(int64(len(buf)), avail-pos)
			if _, err := io.ReadFull(io.NewSectionReader(f, pos, n), buf[:n]); err != nil {
				return stop(fmt.Errorf("read back %s: %w", dst, err))
			}
			h.Write(buf[:n])
			pos += n
		}
		if fin {
			break
		}
	}
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Size() != pos {
		return "", fmt.Errorf("read back %s: hashed %d bytes of %d", dst, pos, st.Size())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
