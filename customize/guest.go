package customize

import (
	"context"
	"errors"
	"io"
	"io/fs"
)

// Guest is what the runner needs from a build VM. Implementations must be
// safe for the runner's sequential use; Run writes to stdout and stderr from
// any goroutine (the runner's writers are safe for that).
type Guest interface {
	// Run runs command through the guest user's shell (as SSH's exec does)
	// and returns its exit status. err is non-nil only when the command's
	// fate is unknown or it did not finish: the context ended, the transport
	// failed, or the guest went down (then err wraps ErrRebooted).
	Run(ctx context.Context, command string, stdout, stderr io.Writer) (exitCode int, err error)
	// Upload writes r to remotePath with the given permission bits,
	// replacing any file there.
	Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error
	// WaitReboot is called after a reboot was seen or announced; it returns
	// once SSH works again (AIB allows up to 20 minutes: the runner's ctx has
	// that deadline), and at once if it already works. The runner checks the
	// boot_id itself, so WaitReboot need not know whether the guest has gone
	// down yet.
	WaitReboot(ctx context.Context) error
}

// ErrRebooted is wrapped by Guest.Run and Guest.Upload errors when the
// session ended, or could not start, because the guest rebooted.
var ErrRebooted = errors.New("guest rebooted")
