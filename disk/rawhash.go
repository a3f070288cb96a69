package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/lima-vm/go-qcow2reader"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"
)

// rawChunk is how much WriteRawHashed reads at a time.
const rawChunk = 1 << 20

// WriteRawHashed writes the guest-visible bytes of a qcow2 image (with its
// backing chain, compressed clusters included) to dst as a sparse raw
// image, with a fixed VHD footer after them when vhd is set (the size then
// rounded up to a whole MiB), and returns the sha256 and size of the file.
//
// It is one pass: the image is read and decompressed on one goroutine while
// another hashes and writes, and the image's zero extents are neither read
// nor written, only hashed. Converting with qemu-img and then hashing the
// file reads every byte again, gigabytes of holes included, through the
// kernel.
func WriteRawHashed(ctx context.Context, src, dst string, vhd bool) (sum string, size int64, err error) {
	f, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	img, err := qcow2reader.OpenWithType(f, qcow2.Type)
	if err != nil {
		return "", 0, fmt.Errorf("open %s: %w", src, err)
	}
	defer img.Close()
	if err := img.Readable(); err != nil {
		return "", 0, fmt.Errorf("open %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
			err = fmt.Errorf("write raw %s → %s: %w", src, dst, err)
		}
	}()
	data := img.Size()
	virtual := data
	if vhd {
		virtual = RoundUp(data, MiB)
	}
	if err := out.Truncate(virtual); err != nil {
		return "", 0, err
	}

	type chunk struct {
		off int64
		n   int64
		buf []byte // nil: n zero bytes
	}
	const inFlight = 8
	chunks := make(chan chunk, inFlight)
	free := make(chan []byte, inFlight)
	for range inFlight {
		free <- make([]byte, rawChunk)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		readErr <- func() error {
			for off := int64(0); off < data; {
				if err := ctx.Err(); err != nil {
					return err
				}
				e, err := img.Extent(off, min(data-off, 64*rawChunk))
				if err != nil {
					return fmt.Errorf("extent at %d: %w", off, err)
				}
				if e.Length <= 0 {
					return fmt.Errorf("empty extent at %d", off)
				}
				if e.Zero {
					chunks <- chunk{off: off, n: e.Length}
					off += e.Length
					continue
				}
				for end := off + e.Length; off < end; {
					n := min(end-off, rawChunk)
					var buf []byte
					select {
					case buf = <-free:
					case <-ctx.Done():
						return ctx.Err()
					}
					if _, err := img.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && off+n == data) {
						return fmt.Errorf("read at %d: %w", off, err)
					}
					chunks <- chunk{off: off, n: n, buf: buf[:n]}
					off += n
				}
			}
			return nil
		}()
	}()

	// The hash is the slowest part (one core at ~1 GB/s): this goroutine
	// only hashes, while another writes the data chunks that are not zero.
	type write struct {
		off int64
		buf []byte
	}
	writes := make(chan write, inFlight)
	writeErr := make(chan error, 1)
	go func() {
		var werr error
		for w := range writes {
			if werr == nil && !isZero(w.buf) {
				if _, err := out.WriteAt(w.buf, w.off); err != nil {
					werr = err
					cancel()
				}
			}
			free <- w.buf[:cap(w.buf)]
		}
		writeErr <- werr
	}()
	h := sha256.New()
	zeros := make([]byte, rawChunk)
	hashZeros := func(n int64) {
		for n > 0 {
			k := min(n, rawChunk)
			h.Write(zeros[:k])
			n -= k
		}
	}
	for c := range chunks {
		if c.buf == nil {
			hashZeros(c.n)
			continue
		}
		h.Write(c.buf)
		writes <- write{off: c.off, buf: c.buf}
	}
	close(writes)
	werr := <-writeErr
	if err := <-readErr; err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return "", 0, werr
	}
	hashZeros(virtual - data)
	size = virtual
	if vhd {
		footer, err := NewFixedVHDFooter(virtual)
		if err != nil {
			return "", 0, err
		}
		b, err := footer.MarshalBinary()
		if err != nil {
			return "", 0, err
		}
		if _, err := out.WriteAt(b, virtual); err != nil {
			return "", 0, err
		}
		h.Write(b)
		size += int64(len(b))
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}
