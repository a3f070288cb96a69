// Package disktest boots disk images in QEMU for tests and waits for a line
// on the serial console.
package disktest

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
)

// Boot describes one test boot.
type Boot struct {
	Disk      string // image file
	Format    string // qemu format name: raw, qcow2, vpc
	Kernel    string // optional: direct kernel boot
	Initrd    string
	Append    string
	MemoryMiB int           // 0: 1024
	Timeout   time.Duration // hard deadline; 0: 120 s
	Snapshot  bool          // -snapshot: never write to Disk
	ExtraArgs []string
	WaitFor   []string // any of these substrings ends the wait successfully
}

// Result is what a boot produced.
type Result struct {
	Matched string        // the WaitFor string seen
	Elapsed time.Duration // from starting QEMU to the match
	Serial  string        // the serial console output so far
}

// HaveQEMU reports whether qemu-system-x86_64 is installed.
func HaveQEMU() bool {
	_, err := exec.LookPath("qemu-system-x86_64")
	return err == nil
}

// Run starts QEMU (TCG, q35, 2 vCPUs, -no-reboot, serial to a file), waits
// until the serial output contains one of b.WaitFor or the deadline
// passes, and kills QEMU in t.Cleanup whatever happens.
func Run(t testing.TB, b Boot) (Result, error) {
	t.Helper()
	if b.MemoryMiB == 0 {
		b.MemoryMiB = 1024
	}
	if b.Timeout == 0 {
		b.Timeout = 120 * time.Second
	}
	serial := filepath.Join(t.TempDir(), "serial.log")
	drive := fmt.Sprintf("file=%s,format=%s,if=virtio", b.Disk, b.Format)
	if b.Snapshot {
		drive += ",snapshot=on"
	}
	args := []string{
		"-accel", "tcg", "-M", "q35", "-smp", "2", "-m", fmt.Sprint(b.MemoryMiB),
		"-nographic", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + serial,
		"-drive", drive,
		"-nic", "user,model=virtio-net-pci",
	}
	if b.Kernel != "" {
		args = append(args, "-kernel", b.Kernel, "-initrd", b.Initrd, "-append", b.Append)
	}
	args = append(args, b.ExtraArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), b.Timeout)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		return Result{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			out, _ := os.ReadFile(serial)
			t.Logf("serial console (%s):\n%s", b.Disk, tail(string(out), 6000))
			if stderr.Len() > 0 {
				t.Logf("qemu stderr: %s", stderr.String())
			}
		}
	})
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		out, _ := os.ReadFile(serial)
		for _, w := range b.WaitFor {
			if strings.Contains(string(out), w) {
				return Result{Matched: w, Elapsed: time.Since(start), Serial: string(out)}, nil
			}
		}
		select {
		case <-tick.C:
		case err := <-exited:
			exited <- err
			out, _ := os.ReadFile(serial)
			return Result{Elapsed: time.Since(start), Serial: string(out)}, fmt.Errorf("qemu exited (%v) before any of %q appeared", err, b.WaitFor)
		case <-ctx.Done():
			return Result{Elapsed: time.Since(start), Serial: string(out)}, fmt.Errorf("none of %q on the serial console within %v", b.WaitFor, b.Timeout)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
