package bootconfig

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/lima-vm/go-qcow2reader"
	"github.com/lima-vm/go-qcow2reader/image"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"
)

const sectorSize = 512

// diskImage is an opened disk image: its guest-visible bytes.
type diskImage struct {
	r     io.ReaderAt
	size  int64
	close func() error
}

// openImage opens a raw image or a qcow2 image with its backing chain
// (compressed clusters included) for reading.
func openImage(path, format string) (*diskImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case "raw":
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		return &diskImage{r: newChunkCache(f), size: st.Size(), close: f.Close}, nil
	case "qcow2":
		img, err := qcow2reader.OpenWithType(f, qcow2.Type)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open qcow2: %w", err)
		}
		if err := img.Readable(); err != nil {
			img.Close()
			f.Close()
			return nil, fmt.Errorf("open qcow2: %w", err)
		}
		return &diskImage{r: newChunkCache(zeroTail{img}), size: img.Size(), close: func() error {
			err := img.Close()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}}, nil
	default:
		f.Close()
		return nil, fmt.Errorf("disk format %q: want qcow2 or raw", format)
	}
}

// zeroTail makes a full read that ends exactly at the image's end succeed
// without io.EOF, as os.File does.
type zeroTail struct{ image.Image }

func (z zeroTail) ReadAt(p []byte, off int64) (int, error) {
	n, err := z.Image.ReadAt(p, off)
	if n == len(p) && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// chunkCache keeps the last chunks read, so the many small metadata reads
// of a filesystem walk do not each decompress a whole qcow2 cluster. Large
// reads (file contents) go straight through.
type chunkCache struct {
	r      io.ReaderAt
	chunks map[int64][]byte
	order  []int64
}

const (
	chunkSize = 64 << 10
	maxChunks = 256 // 16 MiB
)

func newChunkCache(r io.ReaderAt) *chunkCache {
	return &chunkCache{r: r, chunks: make(map[int64][]byte)}
}

func (c *chunkCache) ReadAt(p []byte, off int64) (int, error) {
	if len(p) >= 4*chunkSize {
		return c.r.ReadAt(p, off)
	}
	n := 0
	for n < len(p) {
		base := (off + int64(n)) / chunkSize * chunkSize
		chunk, err := c.chunk(base)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], chunk[off+int64(n)-base:])
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}

func (c *chunkCache) chunk(base int64) ([]byte, error) {
	if b, ok := c.chunks[base]; ok {
		return b, nil
	}
	b := make([]byte, chunkSize)
	n, err := c.r.ReadAt(b, base)
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return nil, err
	}
	b = b[:n]
	if len(c.order) >= maxChunks {
		delete(c.chunks, c.order[0])
		c.order = c.order[1:]
	}
	c.chunks[base] = b
	c.order = append(c.order, base)
	return b, nil
}

// partition is one entry of the disk's partition table, named as GRUB
// names it: (hd0,gptN) or (hd0,msdosN).
type partition struct {
	scheme string // "gpt" or "msdos"
	number int    // 1-based, GRUB's number
	start  int64  // bytes
	size   int64
}

func (p partition) grubName() string { return fmt.Sprintf("hd0,%s%d", p.scheme, p.number) }

// readPartitions reads a GPT (behind its protective MBR) or an MBR's
// primary partitions. Logical partitions in an extended one are not read.
func readPartitions(r io.ReaderAt, size int64) ([]partition, error) {
	mbr := make([]byte, sectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, errors.New("no partition table (no MBR signature)")
	}
	le := binary.LittleEndian
	gptHeader := make([]byte, sectorSize)
	if _, err := r.ReadAt(gptHeader, sectorSize); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	if bytes.Equal(gptHeader[:8], []byte("EFI PART")) {
		entriesLBA := int64(le.Uint64(gptHeader[0x48:]))
		count := int64(le.Uint32(gptHeader[0x50:]))
		entrySize := int64(le.Uint32(gptHeader[0x54:]))
		if entrySize < 128 || count > 1024 {
			return nil, errors.New("GPT: corrupt header")
		}
		table := make([]byte, count*entrySize)
		if _, err := r.ReadAt(table, entriesLBA*sectorSize); err != nil {
			return nil, fmt.Errorf("read GPT entries: %w", err)
		}
		var parts []partition
		for i := int64(0); i < count; i++ {
			e := table[i*entrySize:]
			if bytes.Equal(e[:16], make([]byte, 16)) {
				continue
			}
			first, last := int64(le.Uint64(e[0x20:])), int64(le.Uint64(e[0x28:]))
			if last < first || (last+1)*sectorSize > size {
				return nil, fmt.Errorf("GPT: partition %d out of the disk", i+1)
			}
			parts = append(parts, partition{scheme: "gpt", number: int(i + 1), start: first * sectorSize, size: (last - first + 1) * sectorSize})
		}
		return parts, nil
	}
	var parts []partition
	for i := 0; i < 4; i++ {
		e := mbr[446+i*16:]
		typ := e[4]
		if typ == 0 || typ == 0x05 || typ == 0x0f || typ == 0x85 {
			continue // empty, or an extended partition (its logical ones are not read)
		}
		if typ == 0xee {
			return nil, errors.New("protective MBR without a GPT header")
		}
		start, n := int64(le.Uint32(e[8:]))*sectorSize, int64(le.Uint32(e[12:]))*sectorSize
		if start+n > size {
			return nil, fmt.Errorf("MBR: partition %d out of the disk", i+1)
		}
		parts = append(parts, partition{scheme: "msdos", number: i + 1, start: start, size: n})
	}
	return parts, nil
}
