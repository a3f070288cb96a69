package customize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sandbox is a real Guest for tests: every command runs on this host with
// /bin/sh inside a bubblewrap sandbox whose /etc, /home, /root, /tmp, /var and
// /run are directories of a fake root the test can look at, with the host's
// /usr read-only and no network. Small stand-ins in /usr/local/bin play the
// parts of the guest that a sandbox cannot: sudo (the sandbox is already
// root), reboot and shutdown (they end the session as a guest going down
// does), and whatever a test adds (cloud-init, pwsh, waagent).
type sandbox struct {
	t     testing.TB
	root  string
	shims string

	bootID string // host file shown as /proc/sys/kernel/random/boot_id

	mu      sync.Mutex
	down    bool // the guest "rebooted" and is not back yet
	reboots int  // completed reboots
	calls   int  // Run and Upload calls
}

const sudoShim = `#!/bin/sh
# sudo stand-in: the sandbox already runs as root.
while [ $# -gt 0 ]; do
	case "$1" in
	-u|-g) shift 2 ;;
	--) shift; break ;;
	-*) shift ;;
	*) break ;;
	esac
done
exec "$@"
`

// rebootShim ends the session the way a rebooting guest does: the command's
// processes die mid-way and the transport reports a reboot.
const rebootShim = `#!/bin/sh
: >/run/goldsmith-test-reboot
kill -KILL 0
`

// shutdownShim: "shutdown -r now" reboots at once; "shutdown -r +N"
// schedules it, as logind does, and returns.
const shutdownShim = `#!/bin/sh
for a in "$@"; do
	case "$a" in
	now) exec reboot ;;
	+*) mkdir -p /run/systemd/shutdown && echo "$a" >/run/systemd/shutdown/scheduled; exit 0 ;;
	esac
done
exec reboot
`

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap is not installed")
	}
	dir := t.TempDir()
	s := &sandbox{t: t, root: filepath.Join(dir, "root"), shims: filepath.Join(dir, "shims"), bootID: filepath.Join(dir, "boot_id")}
	must(t, os.WriteFile(s.bootID, []byte("boot-0\n"), 0o444))
	for _, d := range []string{"etc/sudoers.d", "home/builder", "root", "run", "var/log", "var/lib/dpkg",
		"var/lib/apt/lists", "var/cache/apt/archives", "var/mail"} {
		must(t, os.MkdirAll(filepath.Join(s.root, d), 0o755))
	}
	must(t, os.Mkdir(filepath.Join(s.root, "tmp"), 0o755))
	must(t, os.Chmod(filepath.Join(s.root, "tmp"), 0o1777))
	must(t, os.MkdirAll(s.shims, 0o755))
	for _, f := range []string{"passwd", "group", "shadow", "gshadow", "login.defs", "nsswitch.conf"} {
		if b, err := os.ReadFile("/etc/" + f); err == nil {
			must(t, os.WriteFile(filepath.Join(s.root, "etc", f), b, 0o644))
		}
	}
	s.appendFile("etc/passwd", "builder:x:1000:1000::/home/builder:/bin/sh\n")
	s.appendFile("etc/group", "builder:x:1000:\n")
	s.appendFile("etc/shadow", "builder:!:19000::::::\n")
	s.appendFile("etc/gshadow", "builder:!::\n")
	s.shim("sudo", sudoShim)
	s.shim("reboot", rebootShim)
	s.shim("shutdown", shutdownShim)
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (s *sandbox) appendFile(rel, text string) {
	f, err := os.OpenFile(filepath.Join(s.root, rel), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	must(s.t, err)
	_, err = f.WriteString(text)
	must(s.t, err)
	must(s.t, f.Close())
}

// shim installs an executable at /usr/local/bin/name in the guest.
func (s *sandbox) shim(name, script string) {
	must(s.t, os.WriteFile(filepath.Join(s.shims, name), []byte(script), 0o755))
}

// path maps a guest path to the host.
func (s *sandbox) path(guest string) string { return filepath.Join(s.root, guest) }

func (s *sandbox) exists(guest string) bool {
	_, err := os.Lstat(s.path(guest))
	return err == nil
}

func (s *sandbox) read(guest string) string {
	b, err := os.ReadFile(s.path(guest))
	if err != nil {
		return ""
	}
	return string(b)
}

func (s *sandbox) write(guest, text string, mode fs.FileMode) {
	must(s.t, os.MkdirAll(filepath.Dir(s.path(guest)), 0o755))
	must(s.t, os.WriteFile(s.path(guest), []byte(text), mode))
}

func (s *sandbox) rebootCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reboots
}

func (s *sandbox) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if _, err := os.Stat(s.path("/run/systemd/shutdown/scheduled")); err == nil {
		s.down = true // a delayed "shutdown -r +N" fires now, before this call
	}
	if s.down {
		return fmt.Errorf("ssh: connect: the guest is booting: %w", ErrRebooted)
	}
	return nil
}

func (s *sandbox) Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error) {
	if err := s.enter(); err != nil {
		return -1, err
	}
	args := []string{
		"--ro-bind", "/usr", "/usr",
		"--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
		"--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
		"--ro-bind", s.shims, "/usr/local/bin",
		"--proc", "/proc", "--dev", "/dev", "--ro-bind", s.bootID, "/proc/sys/kernel/random/boot_id",
		"--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
		"--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"--setenv", "HOME", "/root", "--setenv", "LANG", "C",
	}
	for _, d := range []string{"etc", "home", "root", "tmp", "var", "run"} {
		args = append(args, "--bind", filepath.Join(s.root, d), "/"+d)
	}
	args = append(args, "--chdir", "/root", "/bin/sh", "-c", command)
	cmd := exec.CommandContext(ctx, "bwrap", args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if os.Remove(s.path("/run/goldsmith-test-reboot")) == nil {
		s.mu.Lock()
		s.down = true
		s.mu.Unlock()
		return -1, fmt.Errorf("ssh session ended without an exit status: %w", ErrRebooted)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil // as SSH reports exit-signal
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func (s *sandbox) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	if err := s.enter(); err != nil {
		return err
	}
	if !strings.HasPrefix(remotePath, "/") {
		return fmt.Errorf("upload: %s is not absolute", remotePath)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	p := s.path(remotePath)
	if err := os.WriteFile(p, b, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// WaitReboot "boots" the guest if it went down: /run is emptied, as a tmpfs
// is at boot, and the boot_id changes. A guest that is up returns at once.
func (s *sandbox) WaitReboot(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down {
		return nil
	}
	ents, _ := os.ReadDir(s.path("/run"))
	for _, e := range ents {
		os.RemoveAll(filepath.Join(s.path("/run"), e.Name()))
	}
	s.down = false
	s.reboots++
	return os.WriteFile(s.bootID, []byte(fmt.Sprintf("boot-%d\n", s.reboots)), 0o444)
}

// rebootBetween wraps a Guest and makes the guest reboot just before the
// failAt-th call (counting Run and Upload), as a reboot that comes a moment
// after a step's command exited: that call reports ErrRebooted and runs
// nothing.
type rebootBetween struct {
	*sandbox
	failAt int
	n      int
}

func (g *rebootBetween) hit() bool {
	g.n++
	if g.n == g.failAt {
		g.mu.Lock()
		g.down = true
		g.mu.Unlock()
	}
	return false
}

func (g *rebootBetween) Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error) {
	g.hit()
	return g.sandbox.Run(ctx, command, stdout, stderr)
}

func (g *rebootBetween) Upload(ctx context.Context, r io.Reader, p string, mode fs.FileMode) error {
	g.hit()
	return g.sandbox.Upload(ctx, r, p, mode)
}

func TestSandboxGuest(t *testing.T) {
	s := newSandbox(t)
	var out strings.Builder
	code, err := s.Run(context.Background(), "id -u; touch /tmp/x; exit 7", &out, &out)
	if err != nil || code != 7 || strings.TrimSpace(out.String()) != "0" || !s.exists("/tmp/x") {
		t.Fatalf("code %d err %v out %q", code, err, out.String())
	}
}
