package customize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
)

// readyScript waits (until $1 seconds have passed) for cloud-init to finish
// and for the apt/dpkg locks to be free, printing what it waits for.
// systemd's job queue says both whether the boot is still under way (the
// boot's targets have jobs) and whether apt-daily runs (a running oneshot
// service has its start job); systemctl falls back to sudo -n on images
// without D-Bus. cloud-init status and /proc/locks are readable by anyone.
// A lock is held when /proc/locks lists the lock file's inode (apt and dpkg
// take fcntl or OFD locks). It always exits 0; running out of time is
// reported in words. A ready guest costs two processes (every exec is slow
// under emulation): systemctl and one stat; /proc/locks is read by the
// shell itself.
const readyScript = `limit=$1
start=
last=
locks="/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock"
while :; do
	busy=
	jobs=$(systemctl list-jobs --no-legend 2>/dev/null) || jobs=$(sudo -n systemctl list-jobs --no-legend 2>/dev/null)
	case "$jobs" in *multi-user.target*|*graphical.target*|*cloud-init.target*|*cloud-config.target*) booting=1 ;; *) booting= ;; esac
	ci=
	if command -v cloud-init >/dev/null 2>&1; then
		ci=$(cloud-init status 2>/dev/null | sed -n 's/^status: *//p' | head -n 1)
		case "$ci" in
		running) busy="cloud-init (running)" ;;
		"not run"|"not started") [ -n "$booting" ] && busy="cloud-init (not started yet)" ;;
		esac
	fi
	case "$jobs" in *apt-daily.service*|*apt-daily-upgrade.service*) busy="$busy${busy:+, }apt-daily" ;; esac
	present=
	for f in $locks; do [ -e "$f" ] && present="$present $f"; done
	if [ -n "$present" ]; then
		held=
		while read -r _ _ _ _ _ dev _; do
			held="$held ${dev##*:} "
		done </proc/locks
		set -- $(stat -c '%i %n' $present 2>/dev/null)
		while [ $# -ge 2 ]; do
			case "$held" in *" $1 "*) busy="$busy${busy:+, }lock $2" ;; esac
			shift 2
		done
	fi
	if [ -z "$busy" ]; then
		[ -n "$last" ] && echo "ready after $(( $(date +%s) - start ))s"
		[ "$ci" = error ] && echo "note: cloud-init finished with errors (see cloud-init status --long)"
		exit 0
	fi
	now=$(date +%s)
	[ -n "$start" ] || start=$now
	if [ "$busy" != "$last" ]; then
		echo "waiting for: $busy"
		last=$busy
	fi
	if [ $((now - start)) -ge "$limit" ]; then
		echo "still busy after ${limit}s: $busy; continuing anyway"
		exit 0
	fi
	sleep 0.1
done
`

// WaitReady waits, up to timeout (0: DefaultReadyTimeout), for cloud-init to
// finish if the guest has it and for apt/dpkg locks to be free, so the first
// customizer does not meet a locked dpkg (unattended-upgrades at first boot).
// Running out of time is logged and is not an error; a failure to run the
// check at all is. Run and Validate call it before their first step and
// after each reboot unless Options.ReadyTimeout is negative.
func WaitReady(ctx context.Context, g Guest, opts Options) error {
	return newRunner(g, opts).waitReady(ctx)
}

func (r *runner) waitReady(ctx context.Context) error {
	limit := r.opts.ReadyTimeout
	if limit <= 0 {
		limit = DefaultReadyTimeout
	}
	secs := int((limit + time.Second - 1) / time.Second)
	out := newStepOutput(r.log, "wait-ready")
	w := out.stream()
	// A grace of 30 s over the script's own limit covers a slow guest.
	wctx, cancel := context.WithTimeout(ctx, limit+30*time.Second)
	defer cancel()
	cmd := fmt.Sprintf("sh -c %s wait-ready %d", shellquote.Quote(readyScript), secs)
	var code int
	for attempt := 0; ; attempt++ {
		var err error
		code, err = r.g.Run(wctx, cmd, w, io.Discard)
		w.Flush()
		if errors.Is(err, ErrRebooted) && attempt < maxStepRestarts {
			// cloud-init may reboot the guest itself (power_state, package
			// upgrades): wait for it and look again.
			out.note("the guest rebooted while goldsmith waited for it to be ready; waiting for it to come back")
			rctx, rcancel := context.WithTimeout(ctx, r.opts.rebootTimeout())
			err = r.g.WaitReboot(rctx)
			rcancel()
			if err != nil {
				return fmt.Errorf("waiting for the guest to come back after a reboot: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for cloud-init and apt/dpkg locks: %w", err)
		}
		break
	}
	if code != 0 {
		out.note(fmt.Sprintf("the readiness check exited %d; continuing", code))
	}
	return nil
}
