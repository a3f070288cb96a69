package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// GRUB for BIOS, installed without grub-install or loop devices: the same
// end state grub-bios-setup produces when it embeds core.img in a GPT
// BIOS-boot partition, made from byte writes.
//
// Facts used (GRUB 2.x include/grub/i386/pc/boot.h, util/setup.c):
//   - boot.img is one sector. Setup keeps the target's BPB bytes
//     [0x03,0x5a) and its partition table area [0x1b8,0x1fe) (NT disk
//     signature, four MBR entries), and the 0x55AA signature.
//   - The LBA of core.img's first sector goes at 0x5c (little-endian u64);
//     the boot drive byte at 0x64 stays 0xff ("use the BIOS's DL").
//   - The two-byte jump at 0x66 is replaced by two NOPs for hard disks, to
//     work around BIOSes that pass a wrong boot drive.
//   - core.img starts with diskboot.img, whose first sector ends in a list of
//     12-byte blocklist entries {start u64 LBA, len u16 sectors, segment u16},
//     read from the sector's end backwards until one with len 0. For a
//     contiguous core.img, one entry (start = coreLBA+1, len = sectors-1,
//     segment 0x820) and a zero terminator before it are all it takes.
const (
	SectorSize = 512

	grubBPBStart      = 0x03
	grubBPBEnd        = 0x5a
	grubKernelSector  = 0x5c
	grubBootDrive     = 0x64
	grubDriveCheck    = 0x66
	mbrPartTableStart = 0x1b8 // NT disk signature, then the 4 partition entries
	mbrSignature      = 0x1fe

	blocklistEntrySize = 12
	blocklistFirst     = SectorSize - blocklistEntrySize // 0x1f4
	coreLoadSegment    = 0x820                           // 0x8000 + one sector, in paragraphs
)

// BIOSBootPartitionType is the GPT type GUID of a BIOS boot partition.
const BIOSBootPartitionType = "21686148-6449-6E6F-744E-656564454649"

// LinuxFilesystemType is the GPT type GUID of a generic Linux filesystem.
const LinuxFilesystemType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

// PatchBootSector returns the MBR sector that boots GRUB: GRUB's boot.img
// code with mbr's BPB bytes, partition table and signature, pointing at
// core.img's first sector coreLBA.
func PatchBootSector(mbr, bootImg []byte, coreLBA uint64) ([]byte, error) {
	if len(mbr) != SectorSize || len(bootImg) != SectorSize {
		return nil, fmt.Errorf("boot sector: mbr is %d bytes and boot.img %d, want %d", len(mbr), len(bootImg), SectorSize)
	}
	if mbr[mbrSignature] != 0x55 || mbr[mbrSignature+1] != 0xAA {
		return nil, errors.New("boot sector: target sector has no 0x55AA signature (no partition table?)")
	}
	// Sanity-check that boot.img is the GRUB image these offsets belong to.
	if bootImg[grubBootDrive] != 0xff {
		return nil, fmt.Errorf("boot.img: byte %#x is %#x, want 0xff: not a GRUB i386-pc boot.img", grubBootDrive, bootImg[grubBootDrive])
	}
	if bootImg[grubDriveCheck] != 0xeb && !(bootImg[grubDriveCheck] == 0x90 && bootImg[grubDriveCheck+1] == 0x90) {
		return nil, fmt.Errorf("boot.img: byte %#x is %#x, want a short jmp (0xeb): not a GRUB i386-pc boot.img", grubDriveCheck, bootImg[grubDriveCheck])
	}
	out := make([]byte, SectorSize)
	copy(out, bootImg)
	copy(out[grubBPBStart:grubBPBEnd], mbr[grubBPBStart:grubBPBEnd])
	copy(out[mbrPartTableStart:], mbr[mbrPartTableStart:])
	binary.LittleEndian.PutUint64(out[grubKernelSector:], coreLBA)
	out[grubBootDrive] = 0xff
	out[grubDriveCheck] = 0x90
	out[grubDriveCheck+1] = 0x90
	return out, nil
}

// PatchCoreBlocklist rewrites the blocklist in core.img's first sector
// (diskboot.img) so it loads the rest of core.img from the sectors that
// follow coreLBA. It modifies core in place.
func PatchCoreBlocklist(core []byte, coreLBA uint64) error {
	if len(core) < 2*SectorSize {
		return fmt.Errorf("core.img: %d bytes, too small", len(core))
	}
	sectors := (len(core) + SectorSize - 1) / SectorSize
	if sectors-1 > 0xffff {
		return fmt.Errorf("core.img: %d sectors, too large", sectors)
	}
	first := core[blocklistFirst:SectorSize]
	// diskboot.img as grub-mkimage leaves it: start 2, len = sectors-1.
	if got := binary.LittleEndian.Uint16(first[10:]); got != coreLoadSegment {
		return fmt.Errorf("core.img: blocklist segment %#x, want %#x: not an i386-pc core.img", got, coreLoadSegment)
	}
	// grub-mkimage leaves one entry and a zero terminator before it; check
	// that, so a core.img of another layout is refused rather than patched.
	term := core[blocklistFirst-blocklistEntrySize : blocklistFirst]
	if binary.LittleEndian.Uint16(term[8:]) != 0 {
		return errors.New("core.img: more than one blocklist entry; not a fresh grub-mkimage output")
	}
	binary.LittleEndian.PutUint64(first[0:], coreLBA+1)
	binary.LittleEndian.PutUint16(first[8:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(first[10:], coreLoadSegment)
	clear(term)
	return nil
}

// CoreImageMaker builds GRUB's core.img.
type CoreImageMaker interface {
	MakeCoreImage(ctx context.Context, spec CoreImageSpec) ([]byte, error)
}

// CoreImageSpec describes an i386-pc core.img.
type CoreImageSpec struct {
	Modules     []string // built into core.img
	EarlyConfig string   // embedded config run before normal mode
	Prefix      string   // default prefix, e.g. "/boot/grub"
	ModuleDir   string   // "" means /usr/lib/grub/i386-pc
}

// DefaultGrubModuleDir holds the i386-pc modules and images (grub-pc-bin).
const DefaultGrubModuleDir = "/usr/lib/grub/i386-pc"

// BIOSCoreModules are built into core.img: enough to find the root
// filesystem by UUID on a GPT disk and run grub.cfg without loading more.
func BIOSCoreModules() []string {
	return []string{
		"biosdisk", "part_gpt", "part_msdos", "ext2", "search_fs_uuid", "search",
		"normal", "configfile", "linux", "echo", "test", "serial", "terminal",
		"gzio", "boot",
	}
}

// GrubMkimage runs grub-mkimage.
type GrubMkimage struct {
	Run Runner
}

// MakeCoreImage implements CoreImageMaker.
func (g GrubMkimage) MakeCoreImage(ctx context.Context, spec CoreImageSpec) ([]byte, error) {
	dir, err := os.MkdirTemp("", "goldsmith-grub-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "early.cfg")
	if err := os.WriteFile(cfg, []byte(spec.EarlyConfig), 0o644); err != nil {
		return nil, err
	}
	modDir := spec.ModuleDir
	if modDir == "" {
		modDir = DefaultGrubModuleDir
	}
	prefix := spec.Prefix
	if prefix == "" {
		prefix = "/boot/grub"
	}
	out := filepath.Join(dir, "core.img")
	args := []string{"-O", "i386-pc", "-d", modDir, "-o", out, "-c", cfg, "-p", prefix}
	args = append(args, spec.Modules...)
	if _, err := g.Run.Run(ctx, Cmd{Name: "grub-mkimage", Args: args}); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// EarlyGrubConfig is the config embedded in core.img: find the root
// filesystem by its UUID and set the prefix there; GRUB then enters normal
// mode, which reads $prefix/grub.cfg.
func EarlyGrubConfig(rootFSUUID string) string {
	return fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n", rootFSUUID)
}

// GrubConfig is the static /boot/grub/grub.cfg of an image.
type GrubConfig struct {
	Title          string
	Kernel, Initrd string // paths on the root filesystem, e.g. /vmlinuz
	Cmdline        string // kernel arguments, including root=UUID=...
	TimeoutSeconds int
}

var grubCfgTemplate = template.Must(template.New("grub.cfg").Parse(`# Written by goldsmith. A static config: the image carries no grub-mkconfig.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout={{.TimeoutSeconds}}
set default=0
menuentry '{{.Title}}' {
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root {{.RootUUID}}
	echo 'Loading {{.Kernel}} ...'
	linux {{.Kernel}} {{.Cmdline}}
	initrd {{.Initrd}}
}
`))

// Render writes grub.cfg. rootFSUUID is the filesystem holding Kernel/Initrd.
func (c GrubConfig) Render(rootFSUUID string) ([]byte, error) {
	for _, s := range []string{c.Title, c.Kernel, c.Initrd, c.Cmdline} {
		if strings.ContainsAny(s, "'\n") {
			return nil, fmt.Errorf("grub.cfg: %q contains a quote or newline", s)
		}
	}
	var b bytes.Buffer
	err := grubCfgTemplate.Execute(&b, struct {
		GrubConfig
		RootUUID string
	}{c, rootFSUUID})
	return b.Bytes(), err
}

// InstallGrubFiles puts what GRUB reads at boot into a root directory before
// the filesystem is made from it: /boot/grub/grub.cfg and the i386-pc
// modules (loaded on demand for commands not built into core.img).
func InstallGrubFiles(rootDir, moduleDir string, grubCfg []byte) error {
	if moduleDir == "" {
		moduleDir = DefaultGrubModuleDir
	}
	dst := filepath.Join(rootDir, "boot", "grub", "i386-pc")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(moduleDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !(strings.HasSuffix(n, ".mod") || strings.HasSuffix(n, ".lst") || n == "modinfo.sh") {
			continue
		}
		if err := copyFile(filepath.Join(dst, n), filepath.Join(moduleDir, n), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(rootDir, "boot", "grub", "grub.cfg"), grubCfg, 0o644)
}

func copyFile(dst, src string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
