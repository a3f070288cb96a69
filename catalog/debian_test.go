package catalog

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/disk/disktest"
)

// testDataDir is shared by every test run on this machine (and by other
// packages' tests), so the image and the .deb cache are built once.
func testDataDir() string {
	if d := os.Getenv("GOLDSMITH_TEST_DATA"); d != "" {
		return d
	}
	return "/var/tmp/goldsmith-test"
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: builds or boots a real image")
	}
	if os.Geteuid() != 0 {
		t.Skip("mmdebstrap --mode=root needs root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// bootDeadline bounds each test boot. An idle machine boots in 30-40 s;
// while other work loads it, a GRUB boot was measured at 112 s.
const bootDeadline = 150 * time.Second

// userspaceUp are serial console lines that prove systemd and a getty ran.
var userspaceUp = []string{" login: ", "Reached target multi-user.target", "Reached target Multi-User System"}

// TestDebian12BuildAndBoot builds (or reuses) Debian 12 in the shared data
// directory, then boots the disk through its own GRUB, and once more by
// direct kernel boot, to a login prompt on ttyS0.
func TestDebian12BuildAndBoot(t *testing.T) {
	testBuildAndBoot(t, "Debian:debian-12:12", "12.")
}

// TestDebian11BuildAndBoot does the same for Debian 11. It costs another
// build and two boots, so it runs only with GOLDSMITH_TEST_ALL_IMAGES=1.
func TestDebian11BuildAndBoot(t *testing.T) {
	if os.Getenv("GOLDSMITH_TEST_ALL_IMAGES") == "" {
		t.Skip("set GOLDSMITH_TEST_ALL_IMAGES=1 to build and boot Debian 11 too")
	}
	// This machine's Debian mirror, a snapshot proxy, lacks the
	// linux-image-cloud-amd64 metapackage of bullseye-security (404) while
	// its index lists it; without the security suite the recipe builds.
	b := DefaultBuiltins()
	for i := range b {
		if b[i].Suite == "bullseye" && os.Getenv("GOLDSMITH_TEST_BULLSEYE_SECURITY") == "" {
			b[i].SecurityMirror = ""
		}
	}
	testBuildAndBoot(t, "Debian:debian-11:11", "11.", WithBuiltins(b...))
}

func testBuildAndBoot(t *testing.T, urn, versionPrefix string, opts ...Option) {
	needTools(t, "mmdebstrap", "sfdisk", "mke2fs", "grub-mkimage", "qemu-img", "dpkg-query", "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := Open(testDataDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	e, err := c.Resolve(ctx, urn+":latest")
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(t0)
	t.Logf("Resolve (build if not cached): %v → %s", first.Round(time.Millisecond), e.URN)

	t0 = time.Now()
	e2, err := c.Ensure(ctx, urn)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Ensure, cached: %v", time.Since(t0).Round(time.Microsecond))
	if e2.URN != e.URN || e2.DiskSHA256 != e.DiskSHA256 {
		t.Errorf("Ensure returned %s, Resolve %s", e2.URN, e.URN)
	}

	// The entry describes what is on disk.
	if !strings.HasPrefix(e.Version, versionPrefix) || e.OSType != "Linux" || e.HyperVGeneration != "V1" || e.DiskFormat != disk.FormatQCOW2 {
		t.Errorf("entry %+v", e)
	}
	sum, n, err := disk.SHA256File(ctx, e.DiskPath)
	if err != nil || sum != e.DiskSHA256 || n != e.DiskSize {
		t.Errorf("disk sha256 %s (%d bytes), entry says %s (%d): %v", sum, n, e.DiskSHA256, e.DiskSize, err)
	}
	info, err := disk.QemuImg{Run: disk.Exec{}}.Info(ctx, e.DiskPath, disk.FormatQCOW2)
	if err != nil || info.VirtualSize != e.VirtualSize {
		t.Errorf("qemu-img info: %+v, %v", info, err)
	}
	t.Logf("disk: %d bytes of qcow2 for %d bytes virtual", e.DiskSize, e.VirtualSize)
	want := map[string]bool{"linux-image-cloud-amd64": false, "openssh-server": false, "sudo": false, "grub-pc-bin": false, "fdisk": false}
	for _, p := range e.Packages {
		if _, ok := want[p.Name]; ok {
			want[p.Name] = true
		}
	}
	for p, ok := range want {
		if !ok {
			t.Errorf("package %s missing from the entry's package list (%d packages)", p, len(e.Packages))
		}
	}
	if !strings.Contains(e.Cmdline, "root=UUID=") {
		t.Errorf("cmdline %q", e.Cmdline)
	}

	t.Run("GRUB", func(t *testing.T) {
		res, err := disktest.Run(t, disktest.Boot{Disk: e.DiskPath, Format: e.DiskFormat, Snapshot: true, WaitFor: userspaceUp, Timeout: bootDeadline})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.Serial, "Loading /vmlinuz") {
			t.Error("no GRUB message on the serial console: not booted through GRUB?")
		}
		if strings.Contains(res.Serial, "fsck not present") {
			t.Error("the initramfs has no fsck: initramfs-tools did not know the root filesystem type")
		}
		t.Logf("boot through SeaBIOS and GRUB to %q: %v", res.Matched, res.Elapsed.Round(100*time.Millisecond))
	})
	t.Run("DirectKernel", func(t *testing.T) {
		res, err := disktest.Run(t, disktest.Boot{Disk: e.DiskPath, Format: e.DiskFormat, Snapshot: true,
			Kernel: e.KernelPath, Initrd: e.InitrdPath, Append: e.Cmdline, WaitFor: userspaceUp, Timeout: bootDeadline})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("direct kernel boot to %q: %v", res.Matched, res.Elapsed.Round(100*time.Millisecond))
	})

	// Nothing is left behind in the work area.
	left, _ := filepath.Glob(filepath.Join(c.Dir(), "tmp", "build-"+e.Offer+"-*"))
	if len(left) > 0 {
		t.Errorf("left in tmp: %v", left)
	}
}
