package customize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/template"
)

// machineGuest is the adapter the package doc describes, over machine.Comm.
type machineGuest struct{ c *machine.Comm }

func mapMachineErr(err error) error {
	if errors.Is(err, machine.ErrRebooted) {
		return fmt.Errorf("%w: %w", ErrRebooted, err)
	}
	return err
}

func (g machineGuest) Run(ctx context.Context, cmd string, o, e io.Writer) (int, error) {
	code, err := g.c.Run(ctx, cmd, o, e)
	return code, mapMachineErr(err)
}

func (g machineGuest) Upload(ctx context.Context, r io.Reader, p string, m fs.FileMode) error {
	return mapMachineErr(g.c.Upload(ctx, r, p, m))
}

func (g machineGuest) WaitReboot(ctx context.Context) error { return g.c.WaitForSSH(ctx) }

// machineFixture finds the Debian test image package machine's tests build
// and cache ($GOLDSMITH_TEST_DATA or /var/tmp/goldsmith-test); this test
// does not build it.
func machineFixture(t *testing.T) (image, kernel, initrd string) {
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := os.Getenv("GOLDSMITH_TEST_DATA")
	if dir == "" {
		dir = "/var/tmp/goldsmith-test"
	}
	dir = filepath.Join(dir, "machine-fixture")
	if _, err := os.Stat(filepath.Join(dir, "version")); err != nil {
		t.Skip("no cached machine fixture; run go test ./machine first")
	}
	return filepath.Join(dir, "rootfs.img"), filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
}

// TestRealVM runs a Shell script, a File, a reboot and generalize in a real
// QEMU VM (TCG), then reads the powered-off disk to check the generalize.
func TestRealVM(t *testing.T) {
	image, kernel, initrd := machineFixture(t)
	work := t.TempDir()
	disk := filepath.Join(work, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	var console syncBuf
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	vm, err := machine.Start(ctx, machine.Config{
		Disk: disk, Kernel: kernel, Initrd: initrd, Cmdline: "root=/dev/vda rw console=ttyS0 quiet",
		RestartBoot: machine.RestartWithKernel, Accel: machine.AccelTCG, CPUs: 2, MemoryMiB: 1024,
		Console: &console, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	defer func() {
		if t.Failed() {
			t.Logf("console tail:\n%s", vm.ConsoleTail())
		}
	}()
	sshCtx, sshCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer sshCancel()
	if err := vm.Comm().WaitForSSH(sshCtx); err != nil {
		t.Fatal(err)
	}
	g := machineGuest{vm.Comm()}

	script := []byte("#!/bin/bash\nset -euo pipefail\necho \"setup as $(id -un) on $(uname -r)\"\necho built | sudo tee /etc/goldsmith-built\n")
	motd := []byte("built by goldsmith\n")
	srv := newFiles(t, map[string][]byte{"/setup.sh": script, "/motd": motd})
	var log syncBuf
	steps, err := Run(ctx, g, []template.Customizer{
		{Type: template.CustomizeShell, Name: "setup-os", ScriptURI: srv.URL + "/setup.sh", SHA256Checksum: digest(script)},
		{Type: template.CustomizeFile, Name: "motd", SourceURI: srv.URL + "/motd", Destination: "/tmp/motd"},
		shell("install-motd", "sudo cp /tmp/motd /etc/motd", "cat /proc/sys/kernel/random/boot_id | sudo tee /var/boot-before"),
		shell("reboot", "sudo systemctl reboot"),
		shell("after-reboot", "test -f /etc/motd", "! cmp -s /proc/sys/kernel/random/boot_id /var/boot-before", "echo rebooted-ok"),
	}, Options{Log: &log, ReadyTimeout: 2 * time.Minute})
	t.Logf("customize log:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if !steps[3].Rebooted || !strings.Contains(log.String(), "[after-reboot] rebooted-ok") {
		t.Errorf("reboot step %+v", steps[3])
	}

	log = syncBuf{}
	res, err := Generalize(ctx, g, "", Options{Log: &log})
	t.Logf("generalize log:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != GeneralizeBuiltin || res.BuildUser != machine.DefaultUser {
		t.Errorf("result %+v", res)
	}
	downCtx, downCancel := context.WithTimeout(ctx, time.Minute)
	defer downCancel()
	if err := vm.Shutdown(downCtx); err != nil {
		t.Logf("shutdown: %v", err) // qemu killed after sync: the disk is still consistent enough to read
	}
	vm.Close()

	raw := filepath.Join(work, "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", disk, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	debugfs := func(req string) string {
		out, _ := exec.Command("debugfs", "-R", req, raw).CombinedOutput()
		return string(out)
	}
	if got := debugfs("cat /etc/goldsmith-built"); !strings.Contains(got, "built") {
		t.Errorf("/etc/goldsmith-built: %q", got)
	}
	if got := debugfs("cat /etc/motd"); !strings.Contains(got, "built by goldsmith") {
		t.Errorf("/etc/motd: %q", got)
	}
	if got := debugfs("stat /etc/machine-id"); !strings.Contains(got, "Size: 0") {
		t.Errorf("/etc/machine-id not empty: %q", got)
	}
	if got := debugfs("ls /etc/ssh"); strings.Contains(got, "ssh_host_") {
		t.Errorf("host keys left: %q", got)
	}
	if got := debugfs("ls /home"); strings.Contains(got, machine.DefaultUser) {
		t.Errorf("build user's home left: %q", got)
	}
	if got := debugfs("cat /etc/passwd"); strings.Contains(got, machine.DefaultUser+":") {
		t.Error("build user still in /etc/passwd")
	}
	if got := debugfs("ls /etc/sudoers.d"); strings.Contains(got, "goldsmith") {
		t.Errorf("sudoers entry left: %q", got)
	}
}
