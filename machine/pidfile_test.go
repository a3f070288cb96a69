package machine

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestKillRecorded starts real processes, records their pids as a build
// does, and checks that only the one working in the directory is killed.
func TestKillRecorded(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	start := func(cwd string) *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		cmd.Dir = cwd
		if err := cmd.Start(); err != nil {
			t.Skipf("cannot start sleep: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	ours, theirs := start(dir), start(elsewhere)
	if err := WritePIDFile(filepath.Join(dir, "qemu.pid"), ours.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// A recycled pid: recorded in dir, but the process is someone else's.
	if err := WritePIDFile(filepath.Join(dir, "old.pid"), theirs.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pid, err := ReadPIDFile(filepath.Join(dir, "qemu.pid")); err != nil || pid != ours.Process.Pid {
		t.Errorf("ReadPIDFile: %d %v, want %d", pid, err, ours.Process.Pid)
	}
	KillRecorded(dir)

	exited := make(chan error, 1)
	go func() { exited <- ours.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the process recorded in the directory still runs")
	}
	if ours.ProcessState.Success() {
		t.Error("the process exited normally; want killed")
	}
	if err := theirs.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process working elsewhere is gone: %v", err)
	}
}
