package customize_test

// An external test package: it drives a real VM through machine.Guest, and
// package machine imports customize.

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/template"
)

// platformImage returns the catalog's built-in Debian 12 image from the
// machine's shared test data ($GOLDSMITH_TEST_DATA or
// /var/tmp/goldsmith-test), building it first when it is not cached, as
// package build's tests and goldsmith build do. Without -short the test
// fails, never skips, when it cannot have the image or a tool it needs.
func platformImage(t *testing.T, ctx context.Context) catalog.Entry {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "sfdisk", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (scripts/setup installs it); run with -short to skip VM tests", tool)
		}
	}
	dir := os.Getenv("GOLDSMITH_TEST_DATA")
	if dir == "" {
		dir = "/var/tmp/goldsmith-test"
	}
	cat, err := catalog.Open(dir, catalog.WithRunner(disk.Exec{}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := cat.Resolve(ctx, "Debian:debian-12:12:latest")
	if err != nil {
		t.Fatalf("the Debian 12 platform image is neither cached nor buildable here (building needs root and mmdebstrap): %v", err)
	}
	return e
}

// TestRealVM runs a Shell script, a File, a reboot and generalize in a real
// QEMU VM (TCG) booted from the Debian 12 platform image, then reads the
// powered-off disk to check the generalize.
func TestRealVM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	base := platformImage(t, ctx) // up to ~15 minutes when it has to be built
	work := t.TempDir()
	img := disk.QemuImg{Run: disk.Exec{}}
	overlay := filepath.Join(work, "disk.qcow2")
	if err := img.CreateOverlay(ctx, overlay, base.DiskPath, base.DiskFormat, 0); err != nil {
		t.Fatal(err)
	}
	var console customize.SyncBuf
	vm, err := machine.Start(ctx, machine.Config{
		Disk: overlay, DiskFormat: disk.FormatQCOW2, Kernel: base.KernelPath, Initrd: base.InitrdPath, Cmdline: base.Cmdline,
		Accel: machine.AccelTCG, CPUs: 2, MemoryMiB: 1024,
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
	sshCtx, sshCancel := context.WithTimeout(ctx, 5*time.Minute)
	defer sshCancel()
	if err := vm.Comm().WaitForSSH(sshCtx); err != nil {
		t.Fatal(err)
	}
	g := machine.NewGuest(vm)

	script := []byte("#!/bin/bash\nset -euo pipefail\necho \"setup as $(id -un) on $(uname -r)\"\necho built | sudo tee /etc/goldsmith-built\n")
	motd := []byte("built by goldsmith\n")
	srv := customize.NewFiles(t, map[string][]byte{"/setup.sh": script, "/motd": motd})
	var log customize.SyncBuf
	steps, err := customize.Run(ctx, g, []template.Customizer{
		{Type: template.CustomizeShell, Name: "setup-os", ScriptURI: srv.URL + "/setup.sh", SHA256Checksum: customize.Digest(script)},
		{Type: template.CustomizeFile, Name: "motd", SourceURI: srv.URL + "/motd", Destination: "/tmp/motd"},
		customize.Shell("install-motd", "sudo cp /tmp/motd /etc/motd", "cat /proc/sys/kernel/random/boot_id | sudo tee /var/boot-before"),
		customize.Shell("reboot", "sudo systemctl reboot"),
		customize.Shell("after-reboot", "test -f /etc/motd", "! cmp -s /proc/sys/kernel/random/boot_id /var/boot-before", "echo rebooted-ok"),
	}, customize.Options{Log: &log, ReadyTimeout: 2 * time.Minute})
	t.Logf("customize log:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if !steps[3].Rebooted || !strings.Contains(log.String(), "[after-reboot] rebooted-ok") {
		t.Errorf("reboot step %+v", steps[3])
	}
	if st := vm.Status(); st.Boot != 2 {
		t.Errorf("after one reboot the VM is in boot %d, want 2", st.Boot)
	}

	log = customize.SyncBuf{}
	res, err := customize.Generalize(ctx, g, "", customize.Options{Log: &log})
	t.Logf("generalize log:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != customize.GeneralizeBuiltin || res.BuildUser != machine.DefaultUser {
		t.Errorf("result %+v", res)
	}
	downCtx, downCancel := context.WithTimeout(ctx, time.Minute)
	defer downCancel()
	if err := vm.Shutdown(downCtx); err != nil {
		t.Logf("shutdown: %v", err) // qemu killed after sync: the disk is still consistent enough to read
	}
	vm.Close()

	root := rootFilesystem(t, ctx, img, overlay, work)
	debugfs := func(req string) string {
		out, _ := exec.Command("debugfs", "-R", req, root).CombinedOutput()
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

// rootFilesystem copies the root partition (the largest) of a powered-off
// disk into a file of its own that debugfs can read.
func rootFilesystem(t *testing.T, ctx context.Context, img disk.QemuImg, overlay, work string) string {
	t.Helper()
	raw := filepath.Join(work, "disk.raw")
	if err := img.Convert(ctx, overlay, disk.FormatQCOW2, raw, disk.ConvertOptions{Format: disk.FormatRaw}); err != nil {
		t.Fatal(err)
	}
	parts, err := disk.Sfdisk{Run: disk.Exec{}}.Read(ctx, raw)
	if err != nil || len(parts) == 0 {
		t.Fatalf("partitions of %s: %v %v", raw, parts, err)
	}
	root := parts[0]
	for _, p := range parts[1:] {
		if p.Size > root.Size {
			root = p
		}
	}
	src, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(filepath.Join(work, "root.ext4"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := disk.WriteSparse(dst, io.NewSectionReader(src, root.Start, root.Size)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(raw); err != nil {
		t.Fatal(err)
	}
	return dst.Name()
}
