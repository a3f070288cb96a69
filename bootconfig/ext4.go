package bootconfig

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// A read-only ext2/3/4 reader: just enough to find and read the files GRUB
// reads (grub.cfg, grubenv, kernels, initrds). Layout facts are from the
// kernel's Documentation/filesystems/ext4 (on-disk format). Checksums are
// not verified; a filesystem whose journal still needs replaying is refused,
// since its metadata on disk may be stale.

const (
	ext4Magic       = 0xEF53
	ext4ExtentMagic = 0xF30A

	incompatFiletype   = 0x2
	incompatRecover    = 0x4
	incompatJournalDev = 0x8
	incompatMetaBG     = 0x10
	incompatExtents    = 0x40
	incompat64Bit      = 0x80
	incompatMMP        = 0x100
	incompatFlexBG     = 0x200
	incompatEAInode    = 0x400
	incompatCsumSeed   = 0x2000
	incompatLargeDir   = 0x4000
	incompatInlineData = 0x8000
	incompatEncrypt    = 0x10000
	incompatCasefold   = 0x20000

	// Features this reader copes with: the others change where metadata
	// lives or how names and data are stored.
	incompatKnown = incompatFiletype | incompatExtents | incompat64Bit | incompatMMP | incompatFlexBG |
		incompatEAInode | incompatCsumSeed | incompatLargeDir | incompatInlineData | incompatEncrypt | incompatCasefold

	inodeFlagEncrypt    = 0x800
	inodeFlagIndex      = 0x1000
	inodeFlagExtents    = 0x80000
	inodeFlagInlineData = 0x10000000

	modeTypeMask = 0xF000
	modeDir      = 0x4000
	modeRegular  = 0x8000
	modeSymlink  = 0xA000

	rootInode   = 2
	maxSymlinks = 40
)

// ext4FS is one ext2/3/4 filesystem inside a disk image.
type ext4FS struct {
	r          io.ReaderAt // the partition: offset 0 is the filesystem's start
	size       int64
	blockSize  int64
	inodeSize  int64
	inodesPer  uint32
	inodeCount uint32
	descSize   int64
	firstData  uint32
	groups     uint32
	is64       bool
	uuid       string
	label      string
	descs      []byte // the group descriptor table, read once
}

// errNotExt4 says the partition holds no ext2/3/4 filesystem.
var errNotExt4 = errors.New("no ext2/3/4 filesystem")

func openExt4(r io.ReaderAt, size int64) (*ext4FS, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != ext4Magic {
		return nil, errNotExt4
	}
	x := &ext4FS{r: r, size: size}
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 {
		return nil, fmt.Errorf("ext4: block size 2^%d KiB", logBS)
	}
	x.blockSize = 1024 << logBS
	x.inodeCount = le.Uint32(sb[0x0:])
	x.firstData = le.Uint32(sb[0x14:])
	blocksPer := le.Uint32(sb[0x20:])
	x.inodesPer = le.Uint32(sb[0x28:])
	x.inodeSize = 128
	if le.Uint32(sb[0x4C:]) >= 1 {
		x.inodeSize = int64(le.Uint16(sb[0x58:]))
	}
	incompat := le.Uint32(sb[0x60:])
	if incompat&incompatRecover != 0 {
		return nil, errors.New("ext4: the journal needs recovery (the filesystem was not cleanly unmounted)")
	}
	if unknown := incompat &^ incompatKnown; unknown != 0 {
		return nil, fmt.Errorf("ext4: unsupported incompatible features %#x", unknown)
	}
	x.is64 = incompat&incompat64Bit != 0
	x.descSize = 32
	if x.is64 {
		x.descSize = int64(le.Uint16(sb[0xFE:]))
		if x.descSize < 64 {
			return nil, fmt.Errorf("ext4: 64-bit descriptor size %d", x.descSize)
		}
	}
	blocks := uint64(le.Uint32(sb[0x4:]))
	if x.is64 {
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	if blocksPer == 0 || x.inodesPer == 0 || x.inodeSize < 128 || x.inodeSize > x.blockSize {
		return nil, errors.New("ext4: corrupt superblock")
	}
	x.groups = uint32((blocks - uint64(x.firstData) + uint64(blocksPer) - 1) / uint64(blocksPer))
	x.uuid = formatUUID(sb[0x68:0x78])
	x.label = strings.TrimRight(string(sb[0x78:0x88]), "\x00")
	x.descs = make([]byte, int64(x.groups)*x.descSize)
	if _, err := r.ReadAt(x.descs, (int64(x.firstData)+1)*x.blockSize); err != nil {
		return nil, fmt.Errorf("ext4: read group descriptors: %w", err)
	}
	return x, nil
}

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// inode is the part of an ext4 inode this reader uses.
type inode struct {
	num   uint32
	mode  uint16
	flags uint32
	size  int64
	block [60]byte
	raw   []byte
}

func (in *inode) isDir() bool     { return in.mode&modeTypeMask == modeDir }
func (in *inode) isRegular() bool { return in.mode&modeTypeMask == modeRegular }
func (in *inode) isSymlink() bool { return in.mode&modeTypeMask == modeSymlink }

func (x *ext4FS) inode(num uint32) (*inode, error) {
	if num == 0 || num > x.inodeCount {
		return nil, fmt.Errorf("ext4: inode %d out of range", num)
	}
	group, index := (num-1)/x.inodesPer, (num-1)%x.inodesPer
	d := x.descs[int64(group)*x.descSize:]
	le := binary.LittleEndian
	table := uint64(le.Uint32(d[0x8:]))
	if x.descSize >= 64 {
		table |= uint64(le.Uint32(d[0x28:])) << 32
	}
	raw := make([]byte, x.inodeSize)
	if _, err := x.r.ReadAt(raw, int64(table)*x.blockSize+int64(index)*x.inodeSize); err != nil {
		return nil, fmt.Errorf("ext4: read inode %d: %w", num, err)
	}
	in := &inode{num: num, mode: le.Uint16(raw[0x0:]), flags: le.Uint32(raw[0x20:]), raw: raw}
	in.size = int64(le.Uint32(raw[0x4:])) | int64(le.Uint32(raw[0x6C:]))<<32
	copy(in.block[:], raw[0x28:0x28+60])
	return in, nil
}

// run maps count blocks from logical block logical to physical block phys;
// phys 0 is a hole (or an unwritten extent): zeros.
type run struct {
	logical, phys, count uint64
}

// runs returns the block map of a regular file or directory.
func (x *ext4FS) runs(in *inode) ([]run, error) {
	switch {
	case in.flags&inodeFlagEncrypt != 0:
		return nil, fmt.Errorf("ext4: inode %d is encrypted", in.num)
	case in.flags&inodeFlagInlineData != 0:
		return nil, fmt.Errorf("ext4: inode %d stores its data inline (not supported)", in.num)
	case in.flags&inodeFlagExtents != 0:
		var out []run
		return out, x.extentRuns(in.block[:], 0, &out)
	default:
		return x.indirectRuns(in)
	}
}

func (x *ext4FS) extentRuns(node []byte, level int, out *[]run) error {
	le := binary.LittleEndian
	if len(node) < 12 || le.Uint16(node[0:]) != ext4ExtentMagic {
		return errors.New("ext4: bad extent header")
	}
	entries, depth := int(le.Uint16(node[2:])), int(le.Uint16(node[6:]))
	if level > 5 || 12+entries*12 > len(node) {
		return errors.New("ext4: corrupt extent tree")
	}
	for i := 0; i < entries; i++ {
		e := node[12+i*12:]
		if depth == 0 {
			length := uint64(le.Uint16(e[4:]))
			phys := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if length > 32768 { // unwritten: reads as zeros
				length -= 32768
				phys = 0
			}
			*out = append(*out, run{logical: uint64(le.Uint32(e[0:])), phys: phys, count: length})
			continue
		}
		leaf := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		child := make([]byte, x.blockSize)
		if _, err := x.r.ReadAt(child, int64(leaf)*x.blockSize); err != nil {
			return fmt.Errorf("ext4: read extent block: %w", err)
		}
		if err := x.extentRuns(child, level+1, out); err != nil {
			return err
		}
	}
	return nil
}

// indirectRuns maps an ext2/3-style file: 12 direct blocks, then single,
// double and triple indirect blocks.
func (x *ext4FS) indirectRuns(in *inode) ([]run, error) {
	le := binary.LittleEndian
	nblocks := uint64((in.size + x.blockSize - 1) / x.blockSize)
	perBlock := uint64(x.blockSize / 4)
	var out []run
	var logical uint64
	add := func(phys uint64) {
		if n := len(out); n > 0 && phys != 0 && out[n-1].phys != 0 && out[n-1].phys+out[n-1].count == phys && out[n-1].logical+out[n-1].count == logical {
			out[n-1].count++
		} else if phys != 0 {
			out = append(out, run{logical: logical, phys: phys, count: 1})
		}
		logical++
	}
	var walk func(block uint64, level int) error
	walk = func(block uint64, level int) error {
		if logical >= nblocks {
			return nil
		}
		if level == 0 {
			add(block)
			return nil
		}
		span := uint64(1)
		for i := 1; i < level; i++ {
			span *= perBlock
		}
		if block == 0 { // a hole covering the whole subtree
			logical += span * perBlock
			return nil
		}
		buf := make([]byte, x.blockSize)
		if _, err := x.r.ReadAt(buf, int64(block)*x.blockSize); err != nil {
			return fmt.Errorf("ext4: read indirect block: %w", err)
		}
		for i := uint64(0); i < perBlock && logical < nblocks; i++ {
			if err := walk(uint64(le.Uint32(buf[i*4:])), level-1); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < 12; i++ {
		if err := walk(uint64(le.Uint32(in.block[i*4:])), 0); err != nil {
			return nil, err
		}
	}
	for level := 1; level <= 3; level++ {
		if err := walk(uint64(le.Uint32(in.block[(11+level)*4:])), level); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readData reads a file's contents into w, at most in.size bytes.
func (x *ext4FS) readData(in *inode, w io.Writer) error {
	runs, err := x.runs(in)
	if err != nil {
		return err
	}
	var pos int64 // bytes of the file written so far
	zeros := make([]byte, 64<<10)
	writeZeros := func(n int64) error {
		for n > 0 {
			k := min(n, int64(len(zeros)))
			if _, err := w.Write(zeros[:k]); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	buf := make([]byte, 1<<20)
	for _, r := range runs {
		start := int64(r.logical) * x.blockSize
		if start >= in.size {
			break
		}
		if start < pos {
			return fmt.Errorf("ext4: inode %d: overlapping extents", in.num)
		}
		if err := writeZeros(start - pos); err != nil {
			return err
		}
		pos = start
		length := min(int64(r.count)*x.blockSize, in.size-start)
		if r.phys == 0 {
			if err := writeZeros(length); err != nil {
				return err
			}
			pos += length
			continue
		}
		off := int64(r.phys) * x.blockSize
		if off+length > x.size {
			return fmt.Errorf("ext4: inode %d: extent beyond the partition", in.num)
		}
		for length > 0 {
			k := min(length, int64(len(buf)))
			if _, err := x.r.ReadAt(buf[:k], off); err != nil {
				return fmt.Errorf("ext4: read inode %d: %w", in.num, err)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			off, pos, length = off+k, pos+k, length-k
		}
	}
	return writeZeros(in.size - pos)
}

type dirent struct {
	name  string
	inode uint32
}

// readDir lists a directory. Hash-indexed (htree) directories are read the
// same way: their index blocks look like blocks holding one empty entry,
// and their leaves are ordinary entry blocks.
func (x *ext4FS) readDir(in *inode) ([]dirent, error) {
	var b strings.Builder
	if err := x.readData(in, &b); err != nil {
		return nil, err
	}
	data := b.String()
	le := binary.LittleEndian
	var out []dirent
	for blk := int64(0); blk < int64(len(data)); blk += x.blockSize {
		block := data[blk:min(blk+x.blockSize, int64(len(data)))]
		for off := 0; off+8 <= len(block); {
			ino := le.Uint32([]byte(block[off:]))
			recLen := int(le.Uint16([]byte(block[off+4:])))
			nameLen := int(block[off+6])
			if recLen < 8 || off+recLen > len(block) || 8+nameLen > recLen {
				return nil, fmt.Errorf("ext4: directory inode %d: corrupt entry", in.num)
			}
			if ino != 0 && nameLen > 0 {
				out = append(out, dirent{name: block[off+8 : off+8+nameLen], inode: ino})
			}
			off += recLen
		}
	}
	return out, nil
}

// lookup resolves an absolute path, following symlinks (an absolute
// target is relative to this filesystem's root, as GRUB resolves it).
func (x *ext4FS) lookup(p string) (*inode, error) {
	return x.walk(p, 0)
}

func (x *ext4FS) walk(p string, links int) (*inode, error) {
	cur, err := x.inode(rootInode)
	if err != nil {
		return nil, err
	}
	var dir []string // path of cur, for relative symlinks
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for i, name := range parts {
		if name == "" {
			continue
		}
		if !cur.isDir() {
			return nil, fmt.Errorf("ext4: %s: %w", p, errNotDir)
		}
		ents, err := x.readDir(cur)
		if err != nil {
			return nil, err
		}
		var next uint32
		for _, e := range ents {
			if e.name == name {
				next = e.inode
				break
			}
		}
		if next == 0 {
			return nil, fmt.Errorf("ext4: %s: %w", p, fs.ErrNotExist)
		}
		child, err := x.inode(next)
		if err != nil {
			return nil, err
		}
		if child.isSymlink() {
			if links >= maxSymlinks {
				return nil, fmt.Errorf("ext4: %s: too many levels of symbolic links", p)
			}
			target, err := x.readlink(child)
			if err != nil {
				return nil, err
			}
			if !strings.HasPrefix(target, "/") {
				target = path.Join(append(append([]string{"/"}, dir...), target)...)
			}
			rest := strings.Join(parts[i+1:], "/")
			return x.walk(path.Join(target, rest), links+1)
		}
		switch name {
		case ".":
		case "..":
			if len(dir) > 0 {
				dir = dir[:len(dir)-1]
			}
		default:
			dir = append(dir, name)
		}
		cur = child
	}
	return cur, nil
}

var errNotDir = errors.New("not a directory")

func (x *ext4FS) readlink(in *inode) (string, error) {
	if in.flags&(inodeFlagExtents|inodeFlagInlineData) == 0 && in.size < 60 {
		return string(in.block[:in.size]), nil // a fast symlink: the target is in i_block
	}
	if in.size > 4096 {
		return "", fmt.Errorf("ext4: symlink inode %d: %d bytes", in.num, in.size)
	}
	var b strings.Builder
	if err := x.readData(in, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

// changeKey identifies a file's current contents cheaply: inode, generation,
// size and nanosecond ctime/mtime change whenever the file is written or
// replaced. ok is false on inodes without nanosecond times.
func (in *inode) changeKey() (key string, ok bool) {
	le := binary.LittleEndian
	if len(in.raw) < 0x8C || 128+int(le.Uint16(in.raw[0x80:])) < 0x8C {
		return "", false
	}
	return fmt.Sprintf("%d.%d.%d.%d.%d.%d.%d", in.num, le.Uint32(in.raw[0x64:]), in.size,
		le.Uint32(in.raw[0xC:]), le.Uint32(in.raw[0x84:]), le.Uint32(in.raw[0x10:]), le.Uint32(in.raw[0x88:])), true
}
