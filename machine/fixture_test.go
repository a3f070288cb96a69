package machine

// TEST FIXTURE — to be replaced by the catalog package's Debian images once
// they exist. It builds a minimal bootable Debian 12 root filesystem (no
// partition table, no bootloader) for direct kernel boot, with goldsmith's
// guest agent, and caches it on disk so that it is built once per machine
// (directory $GOLDSMITH_TEST_DATA or /var/tmp/goldsmith-test, subdir
// machine-fixture/).

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/machine/guestagent"
)

// fixtureVersion changes whenever the recipe below changes; a cached fixture
// with another version is rebuilt.
const fixtureVersion = "1"

type fixture struct {
	Image   string // raw ext4 filesystem image (root=/dev/vda)
	Kernel  string
	Initrd  string
	Cmdline string
}

func testDataDir() string {
	if d := os.Getenv("GOLDSMITH_TEST_DATA"); d != "" {
		return d
	}
	return "/var/tmp/goldsmith-test"
}

// needQEMU skips the test in -short mode or when QEMU is missing.
func needQEMU(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	needPasst(t)
}

// needPasst fails the test without passt (the default network's back end)
// where CI's tools are required (GOLDSMITH_REQUIRE_CORPUS or CI set), and
// skips it elsewhere.
func needPasst(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(DefaultPasst); err != nil {
		if os.Getenv("GOLDSMITH_REQUIRE_CORPUS") != "" || os.Getenv("CI") != "" {
			t.Fatalf("passt (Debian package passt, installed by scripts/setup) is required here (GOLDSMITH_REQUIRE_CORPUS or CI is set): %v", err)
		}
		t.Skip("passt not installed (scripts/setup installs it)")
	}
}

// getFixture returns the cached fixture, building it first if needed.
func getFixture(t *testing.T) fixture {
	t.Helper()
	for _, tool := range []string{"mmdebstrap", "mke2fs", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: cannot build the test fixture", tool)
		}
	}
	dir := filepath.Join(testDataDir(), "machine-fixture")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fx := fixture{
		Image:   filepath.Join(dir, "rootfs.img"),
		Kernel:  filepath.Join(dir, "vmlinuz"),
		Initrd:  filepath.Join(dir, "initrd.img"),
		Cmdline: "root=/dev/vda rw console=ttyS0 quiet",
	}
	// One builder at a time per machine (parallel test binaries).
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	stamp := filepath.Join(dir, "version")
	if b, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(b)) == fixtureVersion {
		return fx
	}
	start := time.Now()
	if err := buildFixture(t, dir, fx); err != nil {
		t.Fatalf("building the test fixture: %v", err)
	}
	if err := os.WriteFile(stamp, []byte(fixtureVersion+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the test fixture in %s", time.Since(start).Round(time.Second))
	return fx
}

func buildFixture(t *testing.T, dir string, fx fixture) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, tail(out.String(), 4000))
		}
		return nil
	}
	hooks := "/usr/share/mmdebstrap/hooks"
	if err := run("mmdebstrap", "--variant=minbase",
		"--include=linux-image-cloud-amd64,systemd-sysv,udev,openssh-server,sudo,iproute2,systemd-resolved",
		`--aptopt=Acquire::Check-Valid-Until "false"`,
		"--hook-dir="+filepath.Join(hooks, "eatmydata"),
		"--hook-dir="+filepath.Join(hooks, "merged-usr"),
		"bookworm", root, "http://deb.debian.org/debian"); err != nil {
		return err
	}
	write := func(p string, mode os.FileMode, data string) error {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(data), mode)
	}
	link := func(target, p string) error {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		_ = os.Remove(p)
		return os.Symlink(target, p)
	}
	for _, f := range guestagent.Files() {
		if err := write(f.Path, f.Mode, string(f.Data)); err != nil {
			return err
		}
	}
	steps := []error{
		link("/etc/systemd/system/"+guestagent.UnitName, "/etc/systemd/system/multi-user.target.wants/"+guestagent.UnitName),
		write("/etc/systemd/network/20-en.network", 0o644, "[Match]\nName=en*\n\n[Network]\nDHCP=yes\n"),
		link("/lib/systemd/system/systemd-networkd.service", "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"),
		link("/lib/systemd/system/systemd-networkd.socket", "/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"),
		write("/etc/fstab", 0o644, "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"),
		write("/etc/hostname", 0o644, "goldsmith-fixture\n"),
	}
	for _, err := range steps {
		if err != nil {
			return err
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(root, "boot", "initrd.img-*"))
	if len(kernels) != 1 || len(initrds) != 1 {
		return fmt.Errorf("want one kernel and one initrd in /boot, have %v %v", kernels, initrds)
	}
	if err := run("cp", kernels[0], fx.Kernel+".tmp"); err != nil {
		return err
	}
	if err := run("cp", initrds[0], fx.Initrd+".tmp"); err != nil {
		return err
	}
	// 2 GiB in 4 KiB blocks (without -b mke2fs counts 1 KiB blocks).
	img := fx.Image + ".tmp"
	_ = os.Remove(img)
	if err := run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "root", "-d", root, img, "524288"); err != nil {
		return err
	}
	for _, p := range []string{fx.Kernel, fx.Initrd, fx.Image} {
		if err := os.Rename(p+".tmp", p); err != nil {
			return err
		}
	}
	return nil
}

// overlay makes a qcow2 copy-on-write overlay of the fixture in a test temp dir.
func (fx fixture) overlay(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", fx.Image, p).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestFixture(t *testing.T) {
	needQEMU(t)
	fx := getFixture(t)
	for _, p := range []string{fx.Image, fx.Kernel, fx.Initrd} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
}
