package disk

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// VHD footer layout (Microsoft "Virtual Hard Disk Image Format
// Specification"): 512 bytes at the end of the file, big-endian fields.
const (
	VHDFooterSize = 512
	MiB           = 1 << 20

	vhdCookie        = "conectix"
	vhdFeatures      = 0x00000002 // "reserved" bit, always set
	vhdFormatVersion = 0x00010000
	vhdFixedOffset   = 0xFFFFFFFFFFFFFFFF // data offset of a fixed disk: no header
)

// VHD disk types.
const (
	VHDTypeFixed        uint32 = 2
	VHDTypeDynamic      uint32 = 3
	VHDTypeDifferencing uint32 = 4
)

// vhdEpoch is the VHD timestamp origin: 2000-01-01 00:00:00 UTC.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// CHS is a disk geometry as the VHD footer records it.
type CHS struct {
	Cylinders       uint16
	Heads           uint8
	SectorsPerTrack uint8
}

// VHDFooter is the decoded 512-byte VHD footer.
type VHDFooter struct {
	Features       uint32
	FormatVersion  uint32
	DataOffset     uint64
	Timestamp      time.Time
	CreatorApp     [4]byte
	CreatorVersion uint32
	CreatorHostOS  [4]byte
	OriginalSize   uint64
	CurrentSize    uint64
	Geometry       CHS
	DiskType       uint32
	Checksum       uint32 // as read; MarshalBinary computes its own
	UniqueID       [16]byte
	SavedState     uint8
}

// Creator fields goldsmith writes. "win " makes QEMU and Hyper-V take the
// virtual size from CurrentSize instead of the rounded-down CHS geometry
// (QEMU's vpc driver trusts CurrentSize only for the creators it knows:
// "win ", "qem2", "d2v ", "CTXS", "tap"); Azure reads CurrentSize too.
var (
	creatorApp    = [4]byte{'w', 'i', 'n', ' '}
	creatorHostOS = [4]byte{'W', 'i', '2', 'k'}
)

const creatorVersion = 0x000a0000 // 10.0, what Hyper-V on Windows Server 2016+ writes

// NewFixedVHDFooter returns the footer of a fixed VHD whose data part is
// size bytes, with a random unique id and the current time.
func NewFixedVHDFooter(size int64) (VHDFooter, error) {
	if size <= 0 || size%512 != 0 {
		return VHDFooter{}, fmt.Errorf("vhd: size %d is not a positive multiple of 512", size)
	}
	f := VHDFooter{
		Features:       vhdFeatures,
		FormatVersion:  vhdFormatVersion,
		DataOffset:     vhdFixedOffset,
		Timestamp:      time.Now().UTC().Truncate(time.Second),
		CreatorApp:     creatorApp,
		CreatorVersion: creatorVersion,
		CreatorHostOS:  creatorHostOS,
		OriginalSize:   uint64(size),
		CurrentSize:    uint64(size),
		Geometry:       VHDGeometry(uint64(size)),
		DiskType:       VHDTypeFixed,
	}
	if _, err := rand.Read(f.UniqueID[:]); err != nil {
		return VHDFooter{}, fmt.Errorf("vhd: unique id: %w", err)
	}
	return f, nil
}

// VHDGeometry computes the CHS geometry the VHD specification prescribes
// for a disk of size bytes (its appendix "CHS Calculation").
func VHDGeometry(size uint64) CHS {
	total := size / 512
	if total > 65535*16*255 {
		total = 65535 * 16 * 255
	}
	var spt, heads, cth uint64
	if total >= 65535*16*63 {
		spt, heads = 255, 16
		cth = total / spt
	} else {
		spt = 17
		cth = total / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = total / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = total / spt
		}
	}
	return CHS{Cylinders: uint16(cth / heads), Heads: uint8(heads), SectorsPerTrack: uint8(spt)}
}

// MarshalBinary encodes the footer and fills in its checksum.
func (f VHDFooter) MarshalBinary() ([]byte, error) {
	b := make([]byte, VHDFooterSize)
	be := binary.BigEndian
	copy(b[0:8], vhdCookie)
	be.PutUint32(b[8:], f.Features)
	be.PutUint32(b[12:], f.FormatVersion)
	be.PutUint64(b[16:], f.DataOffset)
	secs := f.Timestamp.Sub(vhdEpoch) / time.Second
	if secs < 0 || secs > 0xFFFFFFFF {
		return nil, fmt.Errorf("vhd: timestamp %v out of range", f.Timestamp)
	}
	be.PutUint32(b[24:], uint32(secs))
	copy(b[28:32], f.CreatorApp[:])
	be.PutUint32(b[32:], f.CreatorVersion)
	copy(b[36:40], f.CreatorHostOS[:])
	be.PutUint64(b[40:], f.OriginalSize)
	be.PutUint64(b[48:], f.CurrentSize)
	be.PutUint16(b[56:], f.Geometry.Cylinders)
	b[58] = f.Geometry.Heads
	b[59] = f.Geometry.SectorsPerTrack
	be.PutUint32(b[60:], f.DiskType)
	copy(b[68:84], f.UniqueID[:])
	b[84] = f.SavedState
	be.PutUint32(b[64:], vhdChecksum(b))
	return b, nil
}

// vhdChecksum is the one's complement of the byte sum of the footer with
// its checksum field taken as zero.
func vhdChecksum(b []byte) uint32 {
	var sum uint32
	for i, c := range b[:VHDFooterSize] {
		if i >= 64 && i < 68 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// Errors ParseVHDFooter wraps.
var (
	ErrNotVHD          = errors.New("not a VHD footer (no conectix cookie)")
	ErrVHDChecksum     = errors.New("VHD footer checksum mismatch")
	ErrNotFixedVHD     = errors.New("not a fixed VHD")
	ErrVHDSizeNotMiB   = errors.New("VHD virtual size is not a multiple of 1 MiB")
	ErrVHDSizeMismatch = errors.New("VHD file size does not match its footer")
)

// ParseVHDFooter decodes and validates a 512-byte footer: cookie, checksum
// and a known disk type. It does not require a fixed disk.
func ParseVHDFooter(b []byte) (VHDFooter, error) {
	if len(b) < VHDFooterSize {
		return VHDFooter{}, fmt.Errorf("vhd footer: %d bytes, want %d", len(b), VHDFooterSize)
	}
	b = b[:VHDFooterSize]
	if !bytes.Equal(b[0:8], []byte(vhdCookie)) {
		return VHDFooter{}, ErrNotVHD
	}
	be := binary.BigEndian
	f := VHDFooter{
		Features:       be.Uint32(b[8:]),
		FormatVersion:  be.Uint32(b[12:]),
		DataOffset:     be.Uint64(b[16:]),
		Timestamp:      vhdEpoch.Add(time.Duration(be.Uint32(b[24:])) * time.Second),
		CreatorVersion: be.Uint32(b[32:]),
		OriginalSize:   be.Uint64(b[40:]),
		CurrentSize:    be.Uint64(b[48:]),
		Geometry:       CHS{Cylinders: be.Uint16(b[56:]), Heads: b[58], SectorsPerTrack: b[59]},
		DiskType:       be.Uint32(b[60:]),
		Checksum:       be.Uint32(b[64:]),
		SavedState:     b[84],
	}
	copy(f.CreatorApp[:], b[28:32])
	copy(f.CreatorHostOS[:], b[36:40])
	copy(f.UniqueID[:], b[68:84])
	if want := vhdChecksum(b); f.Checksum != want {
		return f, fmt.Errorf("%w: stored %#08x, computed %#08x", ErrVHDChecksum, f.Checksum, want)
	}
	switch f.DiskType {
	case VHDTypeFixed, VHDTypeDynamic, VHDTypeDifferencing:
	default:
		return f, fmt.Errorf("vhd footer: unknown disk type %d", f.DiskType)
	}
	return f, nil
}

// ReadVHDFooter reads and validates the footer at the end of the file.
func ReadVHDFooter(path string) (VHDFooter, error) {
	f, err := os.Open(path)
	if err != nil {
		return VHDFooter{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return VHDFooter{}, err
	}
	if st.Size() < VHDFooterSize {
		return VHDFooter{}, fmt.Errorf("%s: %w", path, ErrNotVHD)
	}
	b := make([]byte, VHDFooterSize)
	if _, err := f.ReadAt(b, st.Size()-VHDFooterSize); err != nil {
		return VHDFooter{}, fmt.Errorf("%s: read footer: %w", path, err)
	}
	ft, err := ParseVHDFooter(b)
	if err != nil {
		return ft, fmt.Errorf("%s: %w", path, err)
	}
	return ft, nil
}

// CheckFixedVHD checks that path is a fixed VHD Azure accepts: a valid
// footer of a fixed disk, a file exactly one footer longer than the virtual
// size, and a virtual size that is a multiple of 1 MiB. It returns the
// footer.
func CheckFixedVHD(path string) (VHDFooter, error) {
	ft, err := ReadVHDFooter(path)
	if err != nil {
		return ft, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return ft, err
	}
	switch {
	case ft.DiskType != VHDTypeFixed:
		return ft, fmt.Errorf("%s: %w (disk type %d)", path, ErrNotFixedVHD, ft.DiskType)
	case ft.DataOffset != vhdFixedOffset:
		return ft, fmt.Errorf("%s: %w (data offset %#x)", path, ErrNotFixedVHD, ft.DataOffset)
	case uint64(st.Size()) != ft.CurrentSize+VHDFooterSize:
		return ft, fmt.Errorf("%s: %w: file %d bytes, footer says %d + %d", path, ErrVHDSizeMismatch, st.Size(), ft.CurrentSize, VHDFooterSize)
	case ft.CurrentSize%MiB != 0:
		return ft, fmt.Errorf("%s: %w (%d bytes)", path, ErrVHDSizeNotMiB, ft.CurrentSize)
	}
	return ft, nil
}

// WriteFixedVHD turns the raw disk image at path into a fixed VHD in place:
// it grows the file (sparsely) to a multiple of 1 MiB and appends a footer.
// It refuses a file that already ends in a VHD footer. It returns the
// virtual size.
func WriteFixedVHD(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	size, err := appendFixedVHDFooter(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("fixed vhd %s: %w", path, err)
	}
	return size, nil
}

func appendFixedVHDFooter(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, errors.New("empty file")
	}
	if size >= VHDFooterSize {
		tail := make([]byte, VHDFooterSize)
		if _, err := f.ReadAt(tail, size-VHDFooterSize); err != nil {
			return 0, err
		}
		if bytes.Equal(tail[:8], []byte(vhdCookie)) {
			return 0, errors.New("already ends in a VHD footer")
		}
	}
	virtual := RoundUp(size, MiB)
	footer, err := NewFixedVHDFooter(virtual)
	if err != nil {
		return 0, err
	}
	b, err := footer.MarshalBinary()
	if err != nil {
		return 0, err
	}
	if virtual != size {
		if err := f.Truncate(virtual); err != nil {
			return 0, err
		}
	}
	if _, err := f.WriteAt(b, virtual); err != nil {
		return 0, err
	}
	return virtual, f.Sync()
}

// RoundUp rounds n up to a multiple of m.
func RoundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// readFullAt reads len(b) bytes at off, treating a short read as an error.
func readFullAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
