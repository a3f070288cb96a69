package machine

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
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
