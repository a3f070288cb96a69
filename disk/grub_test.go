package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/disk/disktest"
)

// fakeBootImg is a stand-in for GRUB's boot.img with the bytes the patcher
// checks: 0xff boot drive at 0x64, a short jmp at 0x66, code elsewhere.
func fakeBootImg() []byte {
	b := bytes.Repeat([]byte{0xCC}, SectorSize)
	b[grubBootDrive] = 0xff
	b[grubDriveCheck], b[grubDriveCheck+1] = 0xeb, 0x05
	return b
}

// protectiveMBR is sector 0 of a GPT disk: zero code, one 0xEE entry, 0x55AA.
func protectiveMBR() []byte {
	b := make([]byte, SectorSize)
	copy(b[0x1b8:], []byte{0xde, 0xad, 0xbe, 0xef})
	copy(b[0x1be:], []byte{0, 0, 2, 0, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	b[0x1fe], b[0x1ff] = 0x55, 0xaa
	return b
}

func TestPatchBootSector(t *testing.T) {
	tests := []struct {
		name    string
		mbr     func() []byte
		boot    func() []byte
		lba     uint64
		wantErr string
	}{
		{"gpt protective mbr", protectiveMBR, fakeBootImg, 2048, ""},
		{"high lba", protectiveMBR, fakeBootImg, 1<<40 + 3, ""},
		{"already patched boot.img", protectiveMBR, func() []byte {
			b := fakeBootImg()
			b[grubDriveCheck], b[grubDriveCheck+1] = 0x90, 0x90
			return b
		}, 34, ""},
		{"no signature", func() []byte { b := protectiveMBR(); b[0x1ff] = 0; return b }, fakeBootImg, 2048, "0x55AA"},
		{"not grub", protectiveMBR, func() []byte { b := fakeBootImg(); b[grubBootDrive] = 0x80; return b }, 2048, "not a GRUB"},
		{"short", func() []byte { return make([]byte, 100) }, fakeBootImg, 2048, "want 512"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mbr, boot := tc.mbr(), tc.boot()
			mbrCopy := bytes.Clone(mbr)
			out, err := PatchBootSector(mbr, boot, tc.lba)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mbr, mbrCopy) {
				t.Error("input mbr modified")
			}
			if got := binary.LittleEndian.Uint64(out[0x5c:]); got != tc.lba {
				t.Errorf("kernel sector = %d, want %d", got, tc.lba)
			}
			if !bytes.Equal(out[0x1b8:], mbr[0x1b8:]) {
				t.Error("partition table or signature not kept")
			}
			if !bytes.Equal(out[0x03:0x5a], mbr[0x03:0x5a]) {
				t.Error("BPB not kept")
			}
			if out[0x64] != 0xff || out[0x66] != 0x90 || out[0x67] != 0x90 {
				t.Errorf("boot drive %#x, drive check % x", out[0x64], out[0x66:0x68])
			}
			if !bytes.Equal(out[0:3], boot[0:3]) || !bytes.Equal(out[0x68:0x1b8], boot[0x68:0x1b8]) {
				t.Error("boot code not copied")
			}
		})
	}
}

// fakeCore is a core.img as grub-mkimage leaves it: sectors sectors,
// diskboot's default blocklist {start 2, len sectors-1, segment 0x820}.
func fakeCore(sectors int) []byte {
	c := bytes.Repeat([]byte{0x11}, sectors*SectorSize)
	e := c[0x1f4:0x200]
	binary.LittleEndian.PutUint64(e, 2)
	binary.LittleEndian.PutUint16(e[8:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(e[10:], 0x820)
	clear(c[0x1e8:0x1f4])
	return c
}

func TestPatchCoreBlocklist(t *testing.T) {
	tests := []struct {
		name    string
		core    func() []byte
		lba     uint64
		wantLen uint16
		wantErr string
	}{
		{"typical", func() []byte { return fakeCore(60) }, 2048, 59, ""},
		{"partial last sector", func() []byte { return fakeCore(60)[:60*SectorSize-100] }, 2048, 59, ""},
		{"at lba 34", func() []byte { return fakeCore(2) }, 34, 1, ""},
		{"too small", func() []byte { return fakeCore(1) }, 2048, 0, "too small"},
		{"wrong segment", func() []byte { c := fakeCore(10); c[0x1fe] = 0; return c }, 2048, 0, "segment"},
		{"two entries", func() []byte { c := fakeCore(10); c[0x1f0] = 1; return c }, 2048, 0, "more than one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.core()
			orig := bytes.Clone(c)
			err := PatchCoreBlocklist(c, tc.lba)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e := c[0x1f4:0x200]
			if s := binary.LittleEndian.Uint64(e); s != tc.lba+1 {
				t.Errorf("start = %d, want %d", s, tc.lba+1)
			}
			if l := binary.LittleEndian.Uint16(e[8:]); l != tc.wantLen {
				t.Errorf("len = %d, want %d", l, tc.wantLen)
			}
			if seg := binary.LittleEndian.Uint16(e[10:]); seg != 0x820 {
				t.Errorf("segment = %#x", seg)
			}
			if !isZero(c[0x1e8:0x1f4]) {
				t.Error("no zero terminator")
			}
			if !bytes.Equal(c[:0x1e8], orig[:0x1e8]) || !bytes.Equal(c[0x200:], orig[0x200:]) {
				t.Error("bytes outside the blocklist changed")
			}
		})
	}
}

func TestGrubConfigRender(t *testing.T) {
	c := GrubConfig{Title: "Debian", Kernel: "/vmlinuz", Initrd: "/initrd.img", Cmdline: "root=UUID=u ro console=ttyS0,115200", TimeoutSeconds: 1}
	b, err := c.Render("1234-abcd")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"set timeout=1", "--set=root 1234-abcd", "linux /vmlinuz root=UUID=u ro console=ttyS0,115200", "initrd /initrd.img"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, b)
		}
	}
	c.Cmdline = "x'y"
	if _, err := c.Render("u"); err == nil {
		t.Error("quote accepted")
	}
}

// TestBIOSDiskBootsGRUB makes a real disk with the real tools and boots it
// in QEMU: SeaBIOS runs our patched MBR, which loads core.img through the
// patched blocklist, which finds the ext4 root by UUID and runs grub.cfg
// from it (loading a module from /boot/grub/i386-pc on the way).
func TestBIOSDiskBootsGRUB(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU")
	}
	for _, tool := range []string{"sfdisk", "mke2fs", "grub-mkimage", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(DefaultGrubModuleDir, "boot.img")); err != nil {
		t.Skip("grub-pc-bin not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "marker"), []byte("ok\n"), 0o644)
	cfg := "serial --unit=0 --speed=115200\nterminal_output serial\n" +
		"if [ -f /etc/marker ]; then echo GOLDSMITH-GRUB-OK root=$root; fi\n" +
		"sleep 1\nhalt\n" // halt.mod is not in core.img: loaded from the root fs
	if err := InstallGrubFiles(root, "", []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	const uuid = "6b1c3e0a-5d0f-4c41-9c1e-6f0d2b7f9a10"
	img := filepath.Join(dir, "disk.raw")
	d, err := MakeBIOSDisk(ctx, NewBIOSDiskTools(Exec{}), BIOSDiskSpec{Path: img, Size: 100 * MiB, RootDir: root, RootFSUUID: uuid, RootLabel: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Root.Start != 4*MiB || d.Size != 100*MiB || d.CoreLBA != 2048 {
		t.Errorf("disk %+v", d)
	}
	out, err := (Exec{}).Run(ctx, Cmd{Name: "blkid", Args: []string{"-p", "-O", "4194304", "-s", "UUID", "-o", "value", img}})
	if err == nil && strings.TrimSpace(string(out)) != uuid {
		t.Errorf("blkid UUID = %q", out)
	}
	res, err := disktest.Run(t, disktest.Boot{Disk: img, Format: FormatRaw, MemoryMiB: 128, Timeout: 90 * time.Second, WaitFor: []string{"GOLDSMITH-GRUB-OK root=hd0,gpt2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GRUB ran grub.cfg from the root filesystem after %v", res.Elapsed.Round(time.Millisecond))
}
