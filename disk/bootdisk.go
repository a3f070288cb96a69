package disk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Layout of the disks MakeBIOSDisk writes: a 3 MiB BIOS boot partition at
// 1 MiB holds core.img, the root filesystem starts at 4 MiB and fills the
// rest (minus GPT's backup at the end).
const (
	biosBootStart = 1 * MiB
	biosBootSize  = 3 * MiB
	rootStart     = biosBootStart + biosBootSize
)

// BIOSDiskSpec describes a raw disk that boots through GRUB on BIOS.
type BIOSDiskSpec struct {
	Path       string // raw image file to create (replaced if it exists)
	Size       int64  // virtual size; rounded up to a multiple of 1 MiB
	RootDir    string // root filesystem tree, with /boot/grub already in it (InstallGrubFiles)
	RootFSUUID string // UUID of the ext4 root filesystem
	RootLabel  string
	// GrubModuleDir holds boot.img and the modules; "" means DefaultGrubModuleDir.
	GrubModuleDir string
}

// BIOSDiskTools are the programs MakeBIOSDisk drives.
type BIOSDiskTools struct {
	Partitioner Partitioner
	Filesystem  FilesystemMaker
	CoreImage   CoreImageMaker
}

// NewBIOSDiskTools returns the real programs, run by r.
func NewBIOSDiskTools(r Runner) BIOSDiskTools {
	return BIOSDiskTools{Partitioner: Sfdisk{Run: r}, Filesystem: Mke2fs{Run: r}, CoreImage: GrubMkimage{Run: r}}
}

// BIOSDisk is what MakeBIOSDisk produced.
type BIOSDisk struct {
	Path       string
	Size       int64
	Partitions []Partition
	Root       Partition // the root filesystem's partition
	CoreLBA    uint64    // first sector of core.img
	CoreSize   int
}

// MakeBIOSDisk writes a sparse raw disk image: GPT, a BIOS boot partition
// with GRUB's core.img, an ext4 root filesystem made from RootDir, and
// GRUB's boot.img in the MBR. No loop device, no mount, no root privileges
// beyond reading RootDir.
func MakeBIOSDisk(ctx context.Context, tools BIOSDiskTools, spec BIOSDiskSpec) (d BIOSDisk, err error) {
	size := RoundUp(spec.Size, MiB)
	if size < rootStart+64*MiB {
		return d, fmt.Errorf("bios disk: size %d too small", spec.Size)
	}
	if spec.RootFSUUID == "" {
		return d, fmt.Errorf("bios disk: no root filesystem UUID")
	}
	modDir := spec.GrubModuleDir
	if modDir == "" {
		modDir = DefaultGrubModuleDir
	}
	bootImg, err := os.ReadFile(filepath.Join(modDir, "boot.img"))
	if err != nil {
		return d, fmt.Errorf("bios disk: %w", err)
	}
	if _, err := os.Stat(filepath.Join(spec.RootDir, "boot", "grub", "grub.cfg")); err != nil {
		return d, fmt.Errorf("bios disk: root tree has no /boot/grub/grub.cfg: %w", err)
	}

	f, err := os.OpenFile(spec.Path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return d, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(spec.Path)
			err = fmt.Errorf("bios disk %s: %w", spec.Path, err)
		}
	}()
	if err := f.Truncate(size); err != nil {
		return d, err
	}

	parts, err := tools.Partitioner.PartitionGPT(ctx, spec.Path, []Partition{
		{Start: biosBootStart, Size: biosBootSize, Type: BIOSBootPartitionType, Name: "bios-boot"},
		{Start: rootStart, Type: LinuxFilesystemType, Name: "root"},
	})
	if err != nil {
		return d, fmt.Errorf("partition: %w", err)
	}
	if len(parts) != 2 || parts[0].Start != biosBootStart || parts[1].Start != rootStart {
		return d, fmt.Errorf("partition: unexpected table %+v", parts)
	}
	boot, root := parts[0], parts[1]

	if err := tools.Filesystem.MakeExt4(ctx, Ext4Spec{
		Disk: spec.Path, Offset: root.Start, Size: root.Size,
		RootDir: spec.RootDir, UUID: spec.RootFSUUID, Label: spec.RootLabel,
	}); err != nil {
		return d, fmt.Errorf("root filesystem: %w", err)
	}

	core, err := tools.CoreImage.MakeCoreImage(ctx, CoreImageSpec{
		Modules:     BIOSCoreModules(),
		EarlyConfig: EarlyGrubConfig(spec.RootFSUUID),
		Prefix:      "/boot/grub",
		ModuleDir:   modDir,
	})
	if err != nil {
		return d, fmt.Errorf("core.img: %w", err)
	}
	if int64(len(core)) > boot.Size {
		return d, fmt.Errorf("core.img is %d bytes, the BIOS boot partition only %d", len(core), boot.Size)
	}
	coreLBA := uint64(boot.Start / SectorSize)
	if err := PatchCoreBlocklist(core, coreLBA); err != nil {
		return d, err
	}
	if _, err := f.WriteAt(core, boot.Start); err != nil {
		return d, err
	}

	mbr := make([]byte, SectorSize)
	if err := readFullAt(f, mbr, 0); err != nil {
		return d, err
	}
	sector0, err := PatchBootSector(mbr, bootImg, coreLBA)
	if err != nil {
		return d, err
	}
	if _, err := f.WriteAt(sector0, 0); err != nil {
		return d, err
	}
	gpt := make([]byte, 8)
	if err := readFullAt(f, gpt, SectorSize); err != nil {
		return d, err
	}
	if !bytes.Equal(gpt, []byte("EFI PART")) {
		return d, fmt.Errorf("GPT header missing after writing the boot sector")
	}
	if err := f.Sync(); err != nil {
		return d, err
	}
	return BIOSDisk{Path: spec.Path, Size: size, Partitions: parts, Root: root, CoreLBA: coreLBA, CoreSize: len(core)}, nil
}
