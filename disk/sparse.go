package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// lseek whence values for sparse files (Linux).
const (
	seekData = 3
	seekHole = 4
)

// CopySparse copies the file src to dst (created or truncated, mode 0644)
// keeping holes: it visits only src's data extents (SEEK_DATA/SEEK_HOLE) and
// also leaves a hole for every all-zero 1 MiB block inside them.
func CopySparse(ctx context.Context, dst, src string) error {
	return CopySparseProgress(ctx, dst, src, nil)
}

// copyChunk is how much CopySparseProgress copies between progress reports.
const copyChunk = 8 << 20

// CopySparseProgress is CopySparse that reports, after every block, the
// offset below which dst is final (copied data or holes), so a reader can
// follow the copy (e.g. to hash it while it is written). dst exists when
// progress is first called; the last call reports the file size, before
// dst is synced.
func CopySparseProgress(ctx context.Context, dst, src string, progress func(done int64)) (err error) {
	return copySparse(ctx, dst, src, progress, true)
}

// CloneSparse is CopySparse without the final fsync: for copies that are
// caches or scratch (a VM's memory file), where a crash may lose them.
func CloneSparse(ctx context.Context, dst, src string) error {
	return copySparse(ctx, dst, src, nil, false)
}

func copySparse(ctx context.Context, dst, src string, progress func(done int64), sync bool) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
			err = fmt.Errorf("sparse copy %s → %s: %w", src, dst, err)
		}
	}()
	size := st.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	if progress == nil {
		progress = func(int64) {}
	}
	extents, err := DataExtents(in, size)
	if err != nil {
		return err
	}
	for _, e := range extents {
		start, end := e[0], e[1]
		progress(start)
		// Data extents are copied in the kernel (io.CopyN between two files
		// uses copy_file_range), in chunks so progress follows the copy.
		for pos := start; pos < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(copyChunk), end-pos)
			if _, err := in.Seek(pos, io.SeekStart); err != nil {
				return err
			}
			if _, err := out.Seek(pos, io.SeekStart); err != nil {
				return err
			}
			if _, err := io.CopyN(out, in, n); err != nil {
				return err
			}
			pos += n
			progress(pos)
		}
	}
	progress(size)
	if !sync {
		return nil
	}
	return out.Sync()
}

// DataExtents lists f's data extents [start, end) up to size, by SEEK_DATA
// and SEEK_HOLE; a filesystem without them gives one extent of everything.
func DataExtents(f *os.File, size int64) ([][2]int64, error) {
	fd := int(f.Fd())
	var out [][2]int64
	for off := int64(0); off < size; {
		start, err := syscall.Seek(fd, off, seekData)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) { // no data after off
				break
			}
			if !errors.Is(err, syscall.EINVAL) {
				return nil, fmt.Errorf("seek data: %w", err)
			}
			start = off // no SEEK_DATA support: one extent
		}
		end, err := syscall.Seek(fd, start, seekHole)
		if err != nil {
			end = size
		}
		end = min(end, size)
		out = append(out, [2]int64{start, end})
		off = end
	}
	return out, nil
}

// WriteSparse copies r into f from offset 0, seeking over all-zero 64 KiB
// blocks instead of writing them, so a streamed raw image stays sparse. It
// sets f's size to the number of bytes read, which it returns.
func WriteSparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if !isZero(buf[:n]) {
				if _, werr := f.WriteAt(buf[:n], off); werr != nil {
					return off, werr
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, f.Truncate(off)
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// AllocatedBytes returns how many bytes of path are actually allocated on disk.
func AllocatedBytes(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Blocks * 512, nil
	}
	return st.Size(), nil
}
