package machine_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine"
)

// debian12 returns the catalog's Debian 12 image, built on first use into
// the machine-wide test cache.
func debian12(t *testing.T) catalog.Entry {
	t.Helper()
	if testing.Short() {
		t.Skip("boots real VMs")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "mmdebstrap", machine.DefaultPasst} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	data := os.Getenv("GOLDSMITH_TEST_DATA")
	if data == "" {
		data = "/var/tmp/goldsmith-test"
	}
	cat, err := catalog.Open(data, catalog.WithRunner(disk.Exec{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	e, err := cat.Resolve(ctx, "Debian:debian-12:12:latest")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func run(t *testing.T, vm *machine.VM, cmd string) string {
	t.Helper()
	var out bytes.Buffer
	code, err := vm.Comm().Run(context.Background(), cmd, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("%s: exit %d, %v: %s", cmd, code, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// TestCheckpointRestore saves a booted VM's disk and memory while it runs
// on, then restores the pair twice: each restore has SSH with its own keys
// (the saved identity no longer works), the clock is set to now, and what
// the first VM did after the checkpoint is not there.
func TestCheckpointRestore(t *testing.T) {
	base := debian12(t)
	dir := t.TempDir()
	img := disk.QemuImg{Run: disk.Exec{}}
	ctx := context.Background()
	frozen := filepath.Join(dir, "layer0.qcow2")
	if err := img.CreateOverlay(ctx, frozen, base.DiskPath, base.DiskFormat, 0); err != nil {
		t.Fatal(err)
	}
	cfg := machine.Config{Disk: frozen, DiskFormat: "qcow2", Kernel: base.KernelPath, Initrd: base.InitrdPath,
		Cmdline: base.Cmdline, CPUs: 2, MemoryMiB: 2048, Accel: machine.AccelTCG, User: "packer"}
	start := time.Now()
	vm, err := machine.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.Comm().WaitForSSH(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("cold boot to SSH: %s", time.Since(start).Round(100*time.Millisecond))
	state := filepath.Join(dir, "layer0.state")
	saved, err := vm.Checkpoint(ctx, machine.Checkpoint{NewDisk: filepath.Join(dir, "top.qcow2"), StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(state)
	t.Logf("checkpoint took %s, state %d MiB", saved.Took.Round(time.Millisecond), fi.Size()>>20)
	// The VM runs on after a checkpoint and can be checkpointed again.
	s2, err := vm.Checkpoint(ctx, machine.Checkpoint{NewDisk: filepath.Join(dir, "top2.qcow2"), StateFile: state + "2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second checkpoint took %s", s2.Took.Round(time.Millisecond))
	run(t, vm, "echo after > ~/after-checkpoint && sync")
	oldKey := run(t, vm, "cat ~/.ssh/authorized_keys")
	bootID := vm.Comm().BootID()
	vm.Close()

	for i := range 2 {
		disk := filepath.Join(dir, "restore"+strconv.Itoa(i)+".qcow2")
		if err := img.CreateOverlay(ctx, disk, frozen, "qcow2", 0); err != nil {
			t.Fatal(err)
		}
		rcfg := cfg
		rcfg.Disk, rcfg.Kernel, rcfg.Initrd, rcfg.Cmdline = disk, saved.Kernel, saved.Initrd, saved.Cmdline
		rcfg.Restore = &machine.Restore{StateFile: state, Identity: saved.Identity}
		start := time.Now()
		rvm, err := machine.Start(ctx, rcfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := rvm.Comm().WaitForSSH(ctx); err != nil {
			rvm.Close()
			t.Fatal(err)
		}
		t.Logf("restore %d to SSH with its own identity: %s", i, time.Since(start).Round(100*time.Millisecond))
		// The same boot, as the adopt session read it (the connection
		// itself read none).
		if got := rvm.Comm().BootID(); bootID == "" || got != bootID {
			t.Errorf("restore %d: boot_id %q, want the saved guest's %q", i, got, bootID)
		}
		if got := run(t, rvm, "test -e ~/after-checkpoint && echo present || echo absent"); got != "absent" {
			t.Errorf("restore %d sees a file written after the checkpoint", i)
		}
		if key := run(t, rvm, "cat ~/.ssh/authorized_keys"); key == oldKey {
			t.Errorf("restore %d still authorizes the saved identity's key", i)
		}
		guest, _ := strconv.ParseInt(run(t, rvm, "date +%s"), 10, 64)
		if d := time.Since(time.Unix(guest, 0)); d > 30*time.Second || d < -30*time.Second {
			t.Errorf("restore %d: guest clock off by %s", i, d)
		}
		if saved.Identity.HostKey == rvm.Identity().HostKey {
			t.Errorf("restore %d kept the saved host key", i)
		}
		if i == 0 {
			checkpointAfterRestore(t, rvm, cfg, dir, machine.MemoryFile(state))
		}
		rvm.Close()
	}
}

// checkpointAfterRestore checkpoints a restored VM, whose shadow of the
// restored memory is laid in the background, and restores the result: the
// checkpoint holds only the pages that changed (a delta over the restored
// memory), and the guest's memory comes back whole from the two files (a
// file on the guest's tmpfs lives in its memory only).
func checkpointAfterRestore(t *testing.T, vm *machine.VM, cfg machine.Config, dir, baseMemory string) {
	ctx := context.Background()
	run(t, vm, "echo in-memory-only > /dev/shm/marker")
	state := filepath.Join(dir, "after-restore.state")
	saved, err := vm.Checkpoint(ctx, machine.Checkpoint{NewDisk: filepath.Join(dir, "after-restore.qcow2"), StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	if !saved.MemoryDelta {
		t.Errorf("the checkpoint after a restore saved the memory whole, not the %d changed bytes", saved.MemoryChanged)
	}
	vm.Close()
	d := filepath.Join(dir, "restore-delta.qcow2")
	if err := (disk.QemuImg{Run: disk.Exec{}}).CreateOverlay(ctx, d, saved.Disk, "qcow2", 0); err != nil {
		t.Fatal(err)
	}
	rcfg := cfg
	rcfg.Disk, rcfg.Kernel, rcfg.Initrd, rcfg.Cmdline = d, saved.Kernel, saved.Initrd, saved.Cmdline
	rcfg.Restore = &machine.Restore{StateFile: state, Memory: []string{baseMemory, machine.MemoryFile(state)}, Identity: saved.Identity}
	rvm, err := machine.Start(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rvm.Close()
	if err := rvm.Comm().WaitForSSH(ctx); err != nil {
		t.Fatal(err)
	}
	if got := run(t, rvm, "cat /dev/shm/marker"); got != "in-memory-only" {
		t.Errorf("restored from the delta, the guest's tmpfs holds %q", got)
	}
}
