package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/goldsmith-dev/goldsmith/customize"
)

// Run runs command in the guest over SSH (Comm.Run).
func (v *VM) Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error) {
	return v.comm.Run(ctx, command, stdout, stderr)
}

// Upload writes r to remotePath in the guest over SSH (Comm.Upload).
func (v *VM) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	return v.comm.Upload(ctx, r, remotePath, mode)
}

// WaitForSSH waits until the guest answers SSH (Comm.WaitForSSH).
func (v *VM) WaitForSSH(ctx context.Context) error { return v.comm.WaitForSSH(ctx) }

// GuestVM is what a Guest needs of a VM: *VM, or a test's fake of it.
type GuestVM interface {
	Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error)
	Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error
	WaitForSSH(ctx context.Context) error
	Status() Status
}

// Guest lets the customizers (customize.Guest) drive a VM. It remembers the
// boot it last saw SSH in, so that WaitReboot waits for the next one rather
// than returning on the session of the boot that is going down.
type Guest struct {
	vm   GuestVM
	boot int
}

var _ customize.Guest = (*Guest)(nil)

// NewGuest adapts vm, which must already answer SSH, to customize.Guest.
func NewGuest(vm GuestVM) *Guest {
	return &Guest{vm: vm, boot: vm.Status().Boot}
}

// guestErr turns machine's reboot signal into the customizers'.
func guestErr(err error) error {
	if errors.Is(err, ErrRebooted) {
		return fmt.Errorf("%w: %w", customize.ErrRebooted, err)
	}
	return err
}

// Run implements customize.Guest.
func (g *Guest) Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error) {
	code, err := g.vm.Run(ctx, command, stdout, stderr)
	return code, guestErr(err)
}

// Upload implements customize.Guest.
func (g *Guest) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	return guestErr(g.vm.Upload(ctx, r, remotePath, mode))
}

// WaitReboot implements customize.Guest: it waits for the guest to go down
// (if it has not yet) and for SSH to answer in the next boot.
func (g *Guest) WaitReboot(ctx context.Context) error {
	for {
		st := g.vm.Status()
		if st.Boot > g.boot {
			break
		}
		switch st.State {
		case StateStopped:
			return fmt.Errorf("the guest powered off instead of rebooting")
		case StateFailed:
			return fmt.Errorf("the build VM failed: %w", st.Err)
		case StateClosed:
			return ErrClosed
		}
		select {
		case <-st.Changed:
		case <-ctx.Done():
			return fmt.Errorf("the guest did not reboot: %w", ctx.Err())
		}
	}
	if err := g.vm.WaitForSSH(ctx); err != nil {
		return err
	}
	g.boot = g.vm.Status().Boot
	return nil
}
