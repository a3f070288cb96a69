package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
)

// Cmd describes one run of an external program.
type Cmd struct {
	Name  string
	Args  []string
	Stdin io.Reader
	Env   []string // extra KEY=VALUE pairs added to the inherited environment

	// LogStderr also logs each line of standard error at debug level as it
	// comes, for long programs whose progress a build log should show.
	LogStderr bool

	// PrivateMounts runs the program in a new, private mount namespace, so
	// every mount it makes (mmdebstrap mounts /proc, /sys and /dev into its
	// chroot) disappears with it, even when it is killed.
	PrivateMounts bool
}

// String renders the command line for logs and errors.
func (c Cmd) String() string { return shellquote.Join(append([]string{c.Name}, c.Args...)) }

// Runner runs external programs. Every tool wrapper in this package and in
// the catalog takes one, so tests can substitute a fake.
type Runner interface {
	// Run runs cmd to completion and returns its standard output. A failure
	// is a *CommandError carrying the tail of standard error.
	Run(ctx context.Context, cmd Cmd) ([]byte, error)
}

// Exec is the Runner that starts real processes. It logs each command line
// with log/slog, kills the whole process group when ctx is done, and keeps
// the last StderrTail bytes of standard error for the returned error.
type Exec struct {
	Log        *slog.Logger // nil: slog.Default()
	StderrTail int          // 0: 8 KiB
}

// CommandError reports a program that failed or could not start.
type CommandError struct {
	Cmd    string
	Err    error
	Stderr string // tail of the program's standard error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Cmd, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// Run implements Runner.
func (x Exec) Run(ctx context.Context, c Cmd) ([]byte, error) {
	log := x.Log
	if log == nil {
		log = slog.Default()
	}
	tail := x.StderrTail
	if tail <= 0 {
		tail = 8 << 10
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Stdin = c.Stdin
	if len(c.Env) > 0 {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if c.PrivateMounts {
		attr.Unshareflags = syscall.CLONE_NEWNS // Go makes / recursively private in the child
	}
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error {
		// The negative pid signals the whole process group: mmdebstrap's
		// apt and dpkg children must die with it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: tail}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if c.LogStderr {
		lw := &lineLogger{log: log, name: c.Name}
		defer lw.flush()
		cmd.Stderr = io.MultiWriter(stderr, lw)
	}

	start := time.Now()
	log.Info("run", "cmd", c.String())
	err := cmd.Run()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		log.Debug("run failed", "cmd", c.Name, "elapsed", time.Since(start).Round(time.Millisecond), "err", err)
		return stdout.Bytes(), &CommandError{Cmd: c.String(), Err: err, Stderr: stderr.String()}
	}
	log.Debug("run done", "cmd", c.Name, "elapsed", time.Since(start).Round(time.Millisecond))
	return stdout.Bytes(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max     int
	buf     []byte
	dropped bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if t.dropped {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}

// lineLogger logs whole lines written to it.
type lineLogger struct {
	log     *slog.Logger
	name    string
	partial []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(l.partial[:i])); line != "" {
			l.log.Debug(l.name, "stderr", line)
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	if line := strings.TrimSpace(string(l.partial)); line != "" {
		l.log.Debug(l.name, "stderr", line)
	}
}

// IsNotFound reports whether err says a program is not installed.
func IsNotFound(err error) bool { return errors.Is(err, exec.ErrNotFound) }
