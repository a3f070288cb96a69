package machine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/template"
)

// statusVM is a GuestVM whose status the test moves by hand; its commands
// fail with err.
type statusVM struct {
	mu      sync.Mutex
	st      Status
	changed chan struct{}
	err     error
	ssh     int // WaitForSSH calls
}

func newStatusVM() *statusVM {
	v := &statusVM{changed: make(chan struct{})}
	v.st = Status{State: StateRunning, Boot: 1}
	return v
}

func (v *statusVM) set(s State, boot int, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.st.State, v.st.Boot, v.st.Err = s, boot, err
	close(v.changed)
	v.changed = make(chan struct{})
}

func (v *statusVM) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.st
	st.Changed = v.changed
	return st
}

func (v *statusVM) Run(context.Context, string, io.Writer, io.Writer) (int, error) { return 0, v.err }
func (v *statusVM) Upload(context.Context, io.Reader, string, fs.FileMode) error   { return v.err }
func (v *statusVM) WaitForSSH(context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ssh++
	return nil
}

// TestGuestErrors: machine's reboot errors reach the customizers as
// customize.ErrRebooted, with machine's detail kept; others pass unchanged.
func TestGuestErrors(t *testing.T) {
	other := errors.New("transport broke")
	for _, tc := range []struct {
		err          error
		rebooted     bool
		machineError bool
	}{
		{err: &RebootError{Started: true, Boot: 2}, rebooted: true, machineError: true},
		{err: other},
		{err: nil},
	} {
		vm := newStatusVM()
		vm.err = tc.err
		g := NewGuest(vm)
		_, runErr := g.Run(context.Background(), "true", io.Discard, io.Discard)
		upErr := g.Upload(context.Background(), strings.NewReader(""), "/tmp/x", 0o644)
		for _, err := range []error{runErr, upErr} {
			if got := errors.Is(err, customize.ErrRebooted); got != tc.rebooted {
				t.Errorf("%v: customize.ErrRebooted %v, want %v", tc.err, got, tc.rebooted)
			}
			var re *RebootError
			if got := errors.As(err, &re); got != tc.machineError {
				t.Errorf("%v: *RebootError kept %v, want %v", tc.err, got, tc.machineError)
			}
			if tc.err == nil && err != nil || tc.err == other && err != other {
				t.Errorf("%v: got %v", tc.err, err)
			}
		}
	}
}

// TestGuestWaitReboot: WaitReboot waits for the boot counter to move past
// the boot the Guest last saw (not only for SSH to answer, which the boot
// going down may still do), and gives up on a VM that stopped instead.
func TestGuestWaitReboot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		move    func(v *statusVM)
		wantErr string
		boot    int
	}{
		{name: "rebooted", move: func(v *statusVM) { v.set(StateRebooting, 2, nil); v.set(StateRunning, 2, nil) }, boot: 2},
		{name: "powered off", move: func(v *statusVM) { v.set(StateStopped, 1, nil) }, wantErr: "powered off instead of rebooting"},
		{name: "failed", move: func(v *statusVM) { v.set(StateFailed, 1, errors.New("qemu died")) }, wantErr: "qemu died"},
		{name: "closed", move: func(v *statusVM) { v.set(StateClosed, 1, nil) }, wantErr: ErrClosed.Error()},
		{name: "never", move: func(*statusVM) {}, wantErr: "did not reboot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := newStatusVM()
			g := NewGuest(vm)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- g.WaitReboot(ctx) }()
			time.Sleep(10 * time.Millisecond) // let it block on the first status
			tc.move(vm)
			err := <-done
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if g.boot != tc.boot || vm.ssh != 1 {
					t.Errorf("boot %d (want %d), WaitForSSH calls %d (want 1)", g.boot, tc.boot, vm.ssh)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if vm.ssh != 0 {
				t.Errorf("WaitForSSH called %d times after a failed reboot", vm.ssh)
			}
		})
	}
}

// TestGuestCustomize runs a Shell script, a File, a reboot and generalize
// through Guest in a real QEMU VM (TCG), then reads the powered-off disk to
// check the generalize.
func TestGuestCustomize(t *testing.T) {
	needQEMU(t)
	if _, err := exec.LookPath("debugfs"); err != nil {
		t.Skip("debugfs not installed")
	}
	fx := getFixture(t)
	disk := fx.overlay(t)
	var console bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	vm, err := Start(ctx, Config{
		Disk: disk, Kernel: fx.Kernel, Initrd: fx.Initrd, Cmdline: fx.Cmdline,
		RestartBoot: RestartWithKernel, Accel: AccelTCG, CPUs: 2, MemoryMiB: 1024,
		Console: &syncWriter{w: &console}, Logger: testLogger(t),
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
	waitSSH(t, vm, "first boot")
	g := NewGuest(vm)

	script := []byte("#!/bin/bash\nset -euo pipefail\necho \"setup as $(id -un) on $(uname -r)\"\necho built | sudo tee /etc/goldsmith-built\n")
	motd := []byte("built by goldsmith\n")
	files := map[string][]byte{"/setup.sh": script, "/motd": motd}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	sum := sha256.Sum256(script)
	shell := func(name string, inline ...string) template.Customizer {
		return template.Customizer{Type: template.CustomizeShell, Name: name, Inline: inline}
	}
	var log syncWriter
	log.w = new(bytes.Buffer)
	logText := func() string { log.mu.Lock(); defer log.mu.Unlock(); return log.w.String() }
	steps, err := customize.Run(ctx, g, []template.Customizer{
		{Type: template.CustomizeShell, Name: "setup-os", ScriptURI: srv.URL + "/setup.sh", SHA256Checksum: hex.EncodeToString(sum[:])},
		{Type: template.CustomizeFile, Name: "motd", SourceURI: srv.URL + "/motd", Destination: "/tmp/motd"},
		shell("install-motd", "sudo cp /tmp/motd /etc/motd", "cat /proc/sys/kernel/random/boot_id | sudo tee /var/boot-before"),
		shell("reboot", "sudo systemctl reboot"),
		shell("after-reboot", "test -f /etc/motd", "! cmp -s /proc/sys/kernel/random/boot_id /var/boot-before", "echo rebooted-ok"),
	}, customize.Options{Log: &log, ReadyTimeout: 2 * time.Minute})
	t.Logf("customize log:\n%s", logText())
	if err != nil {
		t.Fatal(err)
	}
	if !steps[3].Rebooted || !strings.Contains(logText(), "[after-reboot] rebooted-ok") {
		t.Errorf("reboot step %+v", steps[3])
	}
	if st := vm.Status(); st.Boot != 2 || g.boot != 2 {
		t.Errorf("after one reboot: VM boot %d, guest's boot %d; want 2", st.Boot, g.boot)
	}

	log.w = new(bytes.Buffer)
	res, err := customize.Generalize(ctx, g, "", customize.Options{Log: &log})
	t.Logf("generalize log:\n%s", logText())
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != customize.GeneralizeBuiltin || res.BuildUser != DefaultUser {
		t.Errorf("result %+v", res)
	}
	downCtx, downCancel := context.WithTimeout(ctx, time.Minute)
	defer downCancel()
	if err := vm.Shutdown(downCtx); err != nil {
		t.Logf("shutdown: %v", err) // qemu killed after sync: the disk is still consistent enough to read
	}
	vm.Close()

	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", disk, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	debugfs := func(req string) string {
		out, _ := exec.Command("debugfs", "-R", req, raw).CombinedOutput()
		return string(out)
	}
	for _, c := range []struct {
		req, want string
		present   bool
	}{
		{"cat /etc/goldsmith-built", "built", true},
		{"cat /etc/motd", "built by goldsmith", true},
		{"stat /etc/machine-id", "Size: 0", true},
		{"ls /etc/ssh", "ssh_host_", false},
		{"ls /home", DefaultUser, false},
		{"cat /etc/passwd", DefaultUser + ":", false},
		{"ls /etc/sudoers.d", "goldsmith", false},
	} {
		if got := debugfs(c.req); strings.Contains(got, c.want) != c.present {
			t.Errorf("%s: want %q present=%v, got %q", c.req, c.want, c.present, got)
		}
	}
}
