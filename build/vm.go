package build

import (
	"context"
	"io"
	"io/fs"
	"time"

	"github.com/goldsmith-dev/goldsmith/machine"
)

// VM is the build VM as the steps use it: *machine.VM in production, a fake
// in the package's fast tests. It satisfies machine.GuestVM, so the
// customizers reach it through machine.NewGuest either way.
type VM interface {
	// Run runs a command in the guest as the build user; err is non-nil
	// only when the command's fate is unknown (see machine.Comm.Run).
	Run(ctx context.Context, command string, stdout, stderr io.Writer) (exitCode int, err error)
	Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error
	// WaitForSSH returns once the guest answers SSH in its current boot.
	WaitForSSH(ctx context.Context) error
	// Status says whether the VM runs, and in which boot (reboot awareness).
	Status() machine.Status
	// Shutdown powers the guest off and waits for it.
	Shutdown(ctx context.Context) error
	// WaitPowerOff waits for a guest that powers itself off, falling back
	// to Shutdown after grace.
	WaitPowerOff(ctx context.Context, grace time.Duration) error
	// Close stops the VM whatever its state; it is idempotent.
	Close() error
	// Checkpoint freezes the disk the VM runs on (and, with a state file,
	// its memory) and moves the VM onto a new overlay over it: the layer
	// cache's layers. A VM is started from a saved state through
	// machine.Config.Restore.
	Checkpoint(ctx context.Context, c machine.Checkpoint) (machine.Saved, error)
	// Disk is the disk the VM writes to now (it moves at a checkpoint).
	Disk() string

	Accel() machine.Accel
	// SSHAddr and ClientKeyFile tell a user how to reach a VM kept for
	// inspection (errorHandling abort).
	SSHAddr() string
	ClientKeyFile(dir string) (string, error)
	// ConsoleTail is the end of the serial console, for boot failures.
	ConsoleTail() string
}

var _ VM = (*machine.VM)(nil)

// VMStarter starts build VMs (StartMachine in production).
type VMStarter func(ctx context.Context, cfg machine.Config) (VM, error)

// StartMachine is the production VMStarter: a QEMU VM (machine.Start).
func StartMachine(ctx context.Context, cfg machine.Config) (VM, error) {
	vm, err := machine.Start(ctx, cfg)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return vm, nil
}
