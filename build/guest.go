package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/machine"
)

// vmGuest lets the customizers drive a build VM.
type vmGuest struct {
	vm   *machine.VM
	boot int // the boot the communicator last connected in
}

func newVMGuest(vm *machine.VM) *vmGuest {
	return &vmGuest{vm: vm, boot: vm.Status().Boot}
}

// mapErr turns machine's reboot signal into the customizers'.
func mapErr(err error) error {
	if errors.Is(err, machine.ErrRebooted) {
		return fmt.Errorf("%w: %w", customize.ErrRebooted, err)
	}
	return err
}

func (g *vmGuest) Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error) {
	code, err := g.vm.Comm().Run(ctx, command, stdout, stderr)
	return code, mapErr(err)
}

func (g *vmGuest) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	return mapErr(g.vm.Comm().Upload(ctx, r, remotePath, mode))
}

// WaitReboot waits for the guest to go down (if it has not yet) and for SSH
// to answer in the next boot.
func (g *vmGuest) WaitReboot(ctx context.Context) error {
	for {
		st := g.vm.Status()
		if st.Boot > g.boot {
			break
		}
		switch st.State {
		case machine.StateStopped:
			return fmt.Errorf("the guest powered off instead of rebooting")
		case machine.StateFailed:
			return fmt.Errorf("the build VM failed: %w", st.Err)
		case machine.StateClosed:
			return machine.ErrClosed
		}
		select {
		case <-st.Changed:
		case <-ctx.Done():
			return fmt.Errorf("the guest did not reboot: %w", ctx.Err())
		}
	}
	if err := g.vm.Comm().WaitForSSH(ctx); err != nil {
		return err
	}
	g.boot = g.vm.Status().Boot
	return nil
}
