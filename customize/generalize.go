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
	// Packages are the packages installed when generalizing began (dpkg's
	// database; none on images without dpkg).
	Packages []Package
}

// Package is an installed package.
type Package struct {
	Name, Version string
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
// Before anything else it lists the installed packages (Packages): after
// Generalize nobody can log in to look.
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
	poweroff := ""
	if opts.PowerOff {
		poweroff = "poweroff"
	}
	// pass runs the script as root: "auto" lists the packages, picks the
	// method (and does the builtin steps and the user's removal when the
	// image has neither a DeprovisioningScript nor waagent), "user" only
	// removes the user. The script reaches root's shell as a here-document
	// in the same session (no upload, and sudo logs a short command line);
	// root keeps it in a file under /run while it runs, so that the
	// session's end (the build user's removal) cannot cut it short.
	pass := func(mode string) (int, error) {
		return r.runGeneralize(ctx, generalizeCommand(mode, buildUser, poweroff), out)
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
	res.Packages = out.packages
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

// generalizeCommand runs generalizeScript as root in one session: the
// here-document becomes a file under /run (root's own tmpfs; /tmp where
// there is none), which the script removes once it has started.
func generalizeCommand(mode, user, poweroff string) string {
	return "sudo -n /bin/sh -c " + shellquote.Quote(`d=/run; [ -d "$d" ] && [ -w "$d" ] || d=/tmp; f="$d/goldsmith-generalize.$$"; `+
		`(umask 077 && cat >"$f") && exec /bin/sh "$f" "$@"`) +
		" goldsmith-generalize " + mode + " " + shellquote.Quote(user) + " " + poweroff +
		" <<'" + generalizeEOF + "'\n" + generalizeScript + generalizeEOF + "\n"
}

// generalizeEOF ends the here-document; generalizeScript has no such line.
const generalizeEOF = "GOLDSMITH_GENERALIZE_EOF"

// generalizeScript runs as root: "sh script auto USER [poweroff]" lists the
// installed packages (markerPackage), says which method the image wants
// (markerMethod) and, when it is the builtin one, does every builtin step
// and removes USER; "sh script user USER [poweroff]" only removes USER
// (after the image's own deprovisioning). USER "" is the user who ran sudo.
// With poweroff, a successful script ends by asking systemd to power off
// (markerPowerOff).
//
// Every process costs tens of milliseconds under emulation, and this runs
// at the end of every build: the script uses shell builtins wherever they
// do the job (reading /etc/passwd, truncating files, filtering lines) and
// one rm per step.
const generalizeScript = `trap '' HUP PIPE
rm -f "$0"
mode=$1
user=${2:-$SUDO_USER}
poweroff=$3
if [ "$mode" = auto ]; then
	if command -v dpkg-query >/dev/null 2>&1; then
		dpkg-query -W -f='` + markerPackage + ` ${Package} ${Version}\n' 2>/dev/null
	fi
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
failed=
step() { echo "==> $*"; }
fail() { echo "error: $*"; failed="$failed; $*"; }
# removed PATH...: one rm for all of them, then a line for each.
removed() {
	rm -rf "$@" || { fail "cannot remove $*"; return; }
	for f; do echo "removed $f"; done
}

if [ "$mode" = all ]; then
	step "removing SSH host keys"
	set -- /etc/ssh/ssh_host_*
	[ -e "$1" ] && removed "$@"
	if [ ! -e /usr/local/lib/goldsmith/agent.sh ] && ! command -v cloud-init >/dev/null 2>&1 &&
		[ ! -e /usr/lib/systemd/system/sshd-keygen@.service ] && [ -d /etc/ssh ]; then
		echo "warning: nothing in this image regenerates SSH host keys at boot (no goldsmith agent, cloud-init or sshd-keygen); sshd will not start in VMs made from it"
	fi

	step "resetting the machine id"
	if [ -e /etc/machine-id ]; then
		: >/etc/machine-id && echo "emptied /etc/machine-id (systemd makes a new one at first boot)" || fail "cannot empty /etc/machine-id"
	fi
	if [ -e /var/lib/dbus/machine-id ] || [ -L /var/lib/dbus/machine-id ]; then
		removed /var/lib/dbus/machine-id
	fi

	step "cleaning cloud-init state"
	if command -v cloud-init >/dev/null 2>&1; then
		cloud-init clean --logs && echo "ran cloud-init clean --logs" || fail "cloud-init clean --logs failed"
	else
		echo "no cloud-init"
	fi

	step "cleaning apt lists and caches"
	if command -v apt-get >/dev/null 2>&1; then
		# What apt-get clean removes (downloaded packages, the binary
		# caches) and the lists, in one rm: apt-get itself costs more.
		set -- /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/* /var/cache/apt/*.bin /var/lib/apt/lists/*
		for f; do shift; [ -e "$f" ] && set -- "$@" "$f"; done
		if [ $# -eq 0 ]; then
			echo "apt's lists and caches are empty"
		elif rm -rf "$@"; then
			echo "removed $# files from /var/cache/apt and /var/lib/apt/lists"
		else
			fail "cannot clean apt's lists and caches"
		fi
	else
		echo "no apt"
	fi

	step "removing goldsmith's temporary files"
	set -- /tmp/goldsmith-*
	if [ -e "$1" ]; then removed "$@"; else echo "none left"; fi

	step "removing shell histories"
	for h in /root /home/*; do
		for n in .bash_history .zsh_history .sh_history .ash_history .history .python_history .lesshst .viminfo .wget-hsts; do
			if [ -f "$h/$n" ]; then removed "$h/$n"; fi
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
		# Rotated logs go; the others are emptied in place, so their
		# owners and modes stay. One find; the shell does the rest.
		logs=$(find /var/log -path /var/log/journal -prune -o -type f -print) || fail "cannot list /var/log"
		set --
		t=0
		while IFS= read -r f; do
			case "$f" in
			"") ;;
			*.gz|*.xz|*.bz2|*.zst|*.[0-9]|*.old) set -- "$@" "$f" ;;
			*) if : >"$f"; then t=$((t + 1)); else fail "cannot truncate $f"; fi ;;
			esac
		done <<EOF
$logs
EOF
		[ $# -gt 0 ] && removed "$@"
		echo "truncated $t files"
	fi
fi

step "removing the build user${user:+ $user}"
# lookup sets uid and home from /etc/passwd (a build user is a local one).
lookup() {
	uid=
	home=
	[ -n "$user" ] || return 0
	while IFS=: read -r n _ u _ _ h _; do
		if [ "$n" = "$user" ]; then uid=$u; home=$h; return 0; fi
	done </etc/passwd
}
lookup
if [ -z "$user" ] || [ "$user" = root ]; then
	echo "no build user to remove"
elif [ -z "$uid" ]; then
	echo "no user $user (already removed)"
elif [ "$uid" -lt 1000 ]; then
	echo "warning: not removing $user: uid $uid is a system account"
else
	# Sudoers files that name the user: a file with nothing else in it
	# goes; the others lose the user's lines.
	named=$(grep -l "^[[:space:]]*$user[[:space:]]" /etc/sudoers.d/* 2>/dev/null)
	set -f
	gone=
	for f in $named; do
		others=
		while IFS= read -r l || [ -n "$l" ]; do
			set -- $l
			case "${1-}" in ""|"#"*|"$user") ;; *) others=1 ;; esac
		done <"$f"
		if [ -n "$others" ]; then
			sed -i "/^[[:space:]]*$user[[:space:]]/d" "$f" && echo "removed $user's lines from $f" || fail "cannot edit $f"
		else
			gone="$gone $f"
		fi
	done
	set -- $gone
	set +f
	if rm -f "$@" "/var/lib/sudo/lectured/$user"; then
		for f; do echo "removed $f"; done
	else
		fail "cannot remove $*"
	fi
	echo ` + markerUserDel + `
	if command -v userdel >/dev/null 2>&1; then
		# -f: the user is logged in (this very session); userdel says so and goes on.
		msg=$(userdel -f -r "$user" 2>&1)
		while IFS= read -r l; do
			case "$l" in ""|*"mail spool"*|*"currently used by process"*) ;; *) echo "$l" ;; esac
		done <<EOF
$msg
EOF
	elif command -v deluser >/dev/null 2>&1; then
		deluser --remove-home "$user"
	fi
	if [ -n "$home" ] && [ "$home" != / ] && [ -d "$home" ]; then rm -rf "$home"; fi
	removedhome=$home
	lookup
	if [ -n "$uid" ]; then
		fail "user $user still exists"
	else
		echo "removed user $user${removedhome:+ and $removedhome}"
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
