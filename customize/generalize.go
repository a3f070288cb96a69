package customize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
)

// DeprovisioningScriptPath is AIB's override for Linux: when a customizer
// writes this file, generalize runs it instead of the default command.
const DeprovisioningScriptPath = "/tmp/DeprovisioningScript.sh"

// DefaultDeprovisionCommand is AIB's default Linux deprovisioning command.
const DefaultDeprovisionCommand = "/usr/sbin/waagent -force -deprovision+user && export HISTSIZE=0 && sync"

// GeneralizeMethod says how the guest was generalized.
type GeneralizeMethod string

const (
	// GeneralizeScript: the image's /tmp/DeprovisioningScript.sh.
	GeneralizeScript GeneralizeMethod = "DeprovisioningScript"
	// GeneralizeWaagent: AIB's default, waagent -force -deprovision+user.
	GeneralizeWaagent GeneralizeMethod = "waagent"
	// GeneralizeBuiltin: goldsmith's explicit steps, for images without waagent.
	GeneralizeBuiltin GeneralizeMethod = "builtin"
)

// GeneralizeResult records what Generalize did.
type GeneralizeResult struct {
	Method     GeneralizeMethod
	Script     string // the DeprovisioningScript's content, for GeneralizeScript
	BuildUser  string // the user removed ("" if none was)
	Start, End time.Time
	Warnings   []string
	// PoweringOff: the guest said it is powering off (Options.PowerOff).
	PoweringOff bool
}

// Generalize deprovisions the guest as AIB does at the end of customization:
//
//   - if a customizer wrote /tmp/DeprovisioningScript.sh, it runs that (as
//     root) and logs its content, as AIB logs it to customization.log;
//   - else if the image has waagent, it runs AIB's default command
//     (DefaultDeprovisionCommand, waagent as root);
//   - else it does the same job in explicit, logged steps: SSH host keys
//     removed, /etc/machine-id emptied and /var/lib/dbus/machine-id removed,
//     cloud-init state cleaned, apt lists and caches removed, logs in
//     /var/log truncated (rotated ones deleted, the journal vacuumed),
//     shell histories removed.
//
// Then, in every case, it removes goldsmith's temporary build user (buildUser,
// or the session's user when ""), its home and its sudoers entries, and syncs.
// The session may end while the user is removed; that is expected. Root and
// system users (uid < 1000) are never removed. After Generalize nobody can
// log in: the guest powers itself off (Options.PowerOff) or the caller
// powers it off through the hypervisor.
//
// Every session and every sudo costs a fraction of a second under
// emulation, so one root script decides the method and, for the builtin
// one (goldsmith's own images), does everything in that same session.
func Generalize(ctx context.Context, g Guest, buildUser string, opts Options) (*GeneralizeResult, error) {
	r := newRunner(g, opts)
	res := &GeneralizeResult{Start: time.Now()}
	out := newStepOutput(r.log, "generalize")
	fail := func(code int, err error) (*GeneralizeResult, error) {
		res.End = time.Now()
		se := &StepError{Kind: KindGeneralize, Index: 1, Total: 1, Name: string(res.Method), ExitCode: code, Tail: out.lastLines(), Err: err}
		out.note(se.Error())
		return res, se
	}
	warn := func(s string) {
		res.Warnings = append(res.Warnings, s)
		out.note("warning: " + s)
	}
	path := r.uniquePath(0, "-generalize.sh")
	if err := g.Upload(ctx, strings.NewReader(generalizeScript), path, 0o755); err != nil {
		return fail(-1, fmt.Errorf("uploading the generalize script: %w", err))
	}
	poweroff := ""
	if opts.PowerOff {
		poweroff = "poweroff"
	}
	// pass runs the script as root: "auto" picks the method (and does the
	// builtin steps and the user's removal when the image has neither a
	// DeprovisioningScript nor waagent), "user" only removes the user.
	pass := func(mode string) (int, error) {
		return r.runGeneralize(ctx, "sudo -n /bin/sh "+shellquote.Quote(path)+" "+mode+" "+shellquote.Quote(buildUser)+" "+poweroff, out)
	}

	code, err := pass("auto")
	out.mu.Lock()
	method := out.method
	out.mu.Unlock()
	if len(method) < 2 {
		if err == nil {
			err = fmt.Errorf("exit code %d", code)
		}
		return fail(-1, fmt.Errorf("looking at the guest: %w", err))
	}
	buildUser = method[1]
	switch method[0] {
	case "script":
		res.Method = GeneralizeScript
		var content bytes.Buffer
		if _, err := g.Run(ctx, "cat "+DeprovisioningScriptPath, &content, io.Discard); err != nil {
			return fail(-1, fmt.Errorf("reading %s: %w", DeprovisioningScriptPath, err))
		}
		res.Script = content.String()
		out.note(DeprovisioningScriptPath + " was written by a customizer: it replaces the default deprovisioning command. Its content:")
		for _, l := range strings.Split(strings.TrimRight(res.Script, "\n"), "\n") {
			out.note("| " + l)
		}
		command := "sudo -n /bin/sh " + DeprovisioningScriptPath
		if strings.HasPrefix(res.Script, "#!") {
			command = "sudo -n sh -c 'chmod +x " + DeprovisioningScriptPath + " && exec " + DeprovisioningScriptPath + "'"
		}
		if err := r.deprovision(ctx, command, out, warn); err != nil {
			return fail(exitCode(err), errOnly(err))
		}
		code, err = pass("user")
	case "waagent":
		res.Method = GeneralizeWaagent
		wa := "/usr/sbin/waagent"
		if len(method) > 2 {
			wa = method[2]
		}
		command := "sudo -n " + shellquote.Quote(wa) + " -force -deprovision+user && export HISTSIZE=0 && sync"
		out.note("running AIB's default deprovisioning command: " + command)
		if err := r.deprovision(ctx, command, out, warn); err != nil {
			return fail(exitCode(err), errOnly(err))
		}
		code, err = pass("user")
	default:
		// The "auto" pass did the builtin steps already.
		res.Method = GeneralizeBuiltin
	}

	out.mu.Lock()
	userdel, poweringOff := out.userdel, out.poweroff
	out.mu.Unlock()
	switch {
	case err == nil && code == 0:
	case poweringOff && err != nil && code == -1 && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		// The guest asked to power off went down before the session's end
		// reached us: that is the end it was asked for.
	case userdel && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && code == -1:
		// Removing the logged-in user may end the session; the root script
		// ignores SIGHUP and finishes on its own.
		warn(fmt.Sprintf("the session ended while the build user was being removed (%v); the removal goes on in the guest", err))
	case res.Method == GeneralizeScript:
		// The image's own script may have removed the user or its sudo
		// rights already; that is its call.
		if err == nil {
			err = fmt.Errorf("exit code %d", code)
		}
		warn(fmt.Sprintf("could not remove the build user %s after %s: %v", buildUser, DeprovisioningScriptPath, err))
	case code > 0:
		return fail(code, nil)
	default:
		return fail(-1, err)
	}
	if userdel {
		res.BuildUser = buildUser
	}
	res.PoweringOff = poweringOff
	out.mu.Lock()
	res.Warnings = append(res.Warnings, out.warnings...)
	out.mu.Unlock()
	res.End = time.Now()
	out.note(fmt.Sprintf("done in %s (%s)", res.End.Sub(res.Start).Round(time.Millisecond), res.Method))
	return res, nil
}

// deprovision runs the image's own deprovisioning command; a reboot it
// causes is waited for.
func (r *runner) deprovision(ctx context.Context, command string, out *stepOutput, warn func(string)) error {
	code, err := r.runGeneralize(ctx, command, out)
	switch {
	case errors.Is(err, ErrRebooted):
		warn("the guest rebooted during deprovisioning; waiting for it to come back to remove the build user")
		rctx, cancel := context.WithTimeout(ctx, r.opts.rebootTimeout())
		err = r.g.WaitReboot(rctx)
		cancel()
		if err != nil {
			return exitError{-1, fmt.Errorf("the guest went down during deprovisioning and did not come back: %w", err)}
		}
		return nil
	case err != nil:
		return exitError{-1, err}
	case code != 0:
		return exitError{code, nil}
	}
	return nil
}

// exitError carries a failed command's exit code (and cause, if any) to
// the StepError.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return fmt.Sprintf("exit code %d: %v", e.code, e.err) }

func exitCode(err error) int {
	var e exitError
	if errors.As(err, &e) {
		return e.code
	}
	return -1
}

func errOnly(err error) error {
	var e exitError
	if errors.As(err, &e) {
		return e.err
	}
	return err
}

func (r *runner) runGeneralize(ctx context.Context, command string, out *stepOutput) (int, error) {
	stdout, stderr := out.stream(), out.stream()
	code, err := r.g.Run(ctx, command, stdout, stderr)
	stdout.Flush()
	stderr.Flush()
	return code, err
}

// generalizeScript runs as root: "sh script auto USER [poweroff]" says
// which method the image wants (markerMethod) and, when it is the builtin
// one, does every builtin step and removes USER; "sh script user USER
// [poweroff]" only removes USER (after the image's own deprovisioning).
// USER "" is the user who ran sudo. With poweroff, a successful script ends
// by asking systemd to power off (markerPowerOff).
const generalizeScript = `trap '' HUP PIPE
mode=$1
user=${2:-$SUDO_USER}
poweroff=$3
if [ "$mode" = auto ]; then
	if [ -f ` + DeprovisioningScriptPath + ` ]; then
		echo "` + markerMethod + ` script $user"; exit 0
	elif [ -x /usr/sbin/waagent ]; then
		echo "` + markerMethod + ` waagent $user /usr/sbin/waagent"; exit 0
	elif w=$(command -v waagent); then
		echo "` + markerMethod + ` waagent $user $w"; exit 0
	fi
	echo "` + markerMethod + ` builtin $user"
	echo "the image has no waagent and no ` + DeprovisioningScriptPath + `: generalizing with goldsmith's own steps"
	mode=all
fi
rm -f "$0"
failed=
step() { echo "==> $*"; }
fail() { echo "error: $*"; failed="$failed; $*"; }

if [ "$mode" = all ]; then
	step "removing SSH host keys"
	for f in /etc/ssh/ssh_host_*; do
		[ -e "$f" ] || continue
		rm -f "$f" && echo "removed $f" || fail "cannot remove $f"
	done
	if [ ! -e /usr/local/lib/goldsmith/agent.sh ] && ! command -v cloud-init >/dev/null 2>&1 &&
		[ ! -e /usr/lib/systemd/system/sshd-keygen@.service ] && [ -d /etc/ssh ]; then
		echo "warning: nothing in this image regenerates SSH host keys at boot (no goldsmith agent, cloud-init or sshd-keygen); sshd will not start in VMs made from it"
	fi

	step "resetting the machine id"
	if [ -e /etc/machine-id ]; then
		: >/etc/machine-id && echo "emptied /etc/machine-id (systemd makes a new one at first boot)" || fail "cannot empty /etc/machine-id"
	fi
	if [ -e /var/lib/dbus/machine-id ] || [ -L /var/lib/dbus/machine-id ]; then
		rm -f /var/lib/dbus/machine-id && echo "removed /var/lib/dbus/machine-id" || fail "cannot remove /var/lib/dbus/machine-id"
	fi

	step "cleaning cloud-init state"
	if command -v cloud-init >/dev/null 2>&1; then
		cloud-init clean --logs && echo "ran cloud-init clean --logs" || fail "cloud-init clean --logs failed"
	else
		echo "no cloud-init"
	fi

	step "cleaning apt lists and caches"
	if command -v apt-get >/dev/null 2>&1; then
		apt-get clean || fail "apt-get clean failed"
		rm -rf /var/lib/apt/lists/* && echo "removed /var/lib/apt/lists/*"
	else
		echo "no apt"
	fi

	step "removing goldsmith's temporary files"
	rm -f /tmp/goldsmith-* 2>/dev/null
	echo "removed /tmp/goldsmith-*"

	step "removing shell histories"
	for h in /root /home/*; do
		for n in .bash_history .zsh_history .sh_history .ash_history .history .python_history .lesshst .viminfo .wget-hsts; do
			if [ -f "$h/$n" ]; then rm -f "$h/$n" && echo "removed $h/$n"; fi
		done
	done

	step "truncating logs in /var/log"
	if command -v journalctl >/dev/null 2>&1 && [ -d /var/log/journal ]; then
		# One call where systemd allows it (v247 and later): each costs
		# a round with journald.
		{ journalctl --rotate --vacuum-time=1s >/dev/null 2>&1 ||
			{ journalctl --rotate >/dev/null 2>&1; journalctl --vacuum-time=1s >/dev/null 2>&1; }; } && echo "vacuumed the journal"
	fi
	if [ -d /var/log ]; then
		find /var/log -path /var/log/journal -prune -o -type f \( -name '*.gz' -o -name '*.xz' -o -name '*.[0-9]' -o -name '*.old' \) -print -exec rm -f {} + | sed 's/^/removed /'
		truncated=$(find /var/log -path /var/log/journal -prune -o -type f -exec truncate -s 0 {} + -print) || fail "cannot truncate logs"
		set -- $truncated
		echo "truncated $# files"
	fi
fi

step "sync"
sync

step "removing the build user${user:+ $user}"
uid=
[ -n "$user" ] && uid=$(id -u "$user" 2>/dev/null)
if [ -z "$user" ] || [ "$user" = root ]; then
	echo "no build user to remove"
elif [ -z "$uid" ]; then
	echo "no user $user (already removed)"
elif [ "$uid" -lt 1000 ]; then
	echo "warning: not removing $user: uid $uid is a system account"
else
	home=$(getent passwd "$user" | cut -d: -f6)
	for f in /etc/sudoers.d/*; do
		[ -f "$f" ] || continue
		grep -q "^[[:space:]]*$user[[:space:]]" "$f" || continue
		sed -i "/^[[:space:]]*$user[[:space:]]/d" "$f"
		if grep -qv '^[[:space:]]*\(#.*\)\{0,1\}$' "$f"; then
			echo "removed $user's lines from $f"
		else
			rm -f "$f" && echo "removed $f"
		fi
	done
	rm -f "/var/lib/sudo/lectured/$user"
	echo goldsmith-customize:removing-build-user
	if command -v userdel >/dev/null 2>&1; then
		# -f: the user is logged in (this very session); userdel says so and goes on.
		userdel -f -r "$user" 2>&1 | grep -v -e 'mail spool' -e 'currently used by process'
	elif command -v deluser >/dev/null 2>&1; then
		deluser --remove-home "$user"
	fi
	if [ -n "$home" ] && [ "$home" != / ] && [ -d "$home" ]; then rm -rf "$home"; fi
	if id "$user" >/dev/null 2>&1; then
		fail "user $user still exists"
	else
		echo "removed user $user${home:+ and $home}"
	fi
fi
sync
if [ -n "$failed" ]; then
	echo "generalize failed:$failed"
	exit 1
fi
echo "generalized"
if [ "$poweroff" = poweroff ] && command -v systemctl >/dev/null 2>&1 && systemctl poweroff --no-block >/dev/null 2>&1; then
	echo ` + markerPowerOff + `
fi
`
