package disk

import (
	"context"
	"fmt"
	"strconv"
)

// Ext4Spec describes an ext4 filesystem written straight into a region of
// a disk image file.
type Ext4Spec struct {
	Disk    string // image file
	Offset  int64  // bytes from the start of Disk (the partition's start)
	Size    int64  // bytes (the partition's size)
	RootDir string // populate from this directory (mke2fs -d)
	UUID    string // filesystem UUID
	Label   string
}

// FilesystemMaker creates filesystems inside image files.
type FilesystemMaker interface {
	MakeExt4(ctx context.Context, spec Ext4Spec) error
}

// Ext4BlockSize is the block size goldsmith formats with. It is passed
// explicitly: without -b, mke2fs counts a size argument in 1 KiB units and
// a 2 GiB partition silently gets a 512 MiB filesystem.
const Ext4BlockSize = 4096

// Mke2fs is the FilesystemMaker that runs e2fsprogs' mke2fs.
type Mke2fs struct {
	Run Runner
}

// MakeExt4 implements FilesystemMaker.
func (m Mke2fs) MakeExt4(ctx context.Context, s Ext4Spec) error {
	if s.Offset%Ext4BlockSize != 0 {
		return fmt.Errorf("mke2fs: offset %d is not a multiple of %d", s.Offset, Ext4BlockSize)
	}
	blocks := s.Size / Ext4BlockSize
	if blocks <= 0 {
		return fmt.Errorf("mke2fs: size %d too small", s.Size)
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", strconv.Itoa(Ext4BlockSize),
		"-E", "offset=" + strconv.FormatInt(s.Offset, 10)}
	if s.RootDir != "" {
		args = append(args, "-d", s.RootDir)
	}
	if s.UUID != "" {
		args = append(args, "-U", s.UUID)
	}
	if s.Label != "" {
		args = append(args, "-L", s.Label)
	}
	args = append(args, s.Disk, strconv.FormatInt(blocks, 10))
	_, err := m.Run.Run(ctx, Cmd{Name: "mke2fs", Args: args})
	return err
}
