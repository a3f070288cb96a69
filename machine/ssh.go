package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
)

var (
	// ErrRebooted: the guest rebooted; see RebootError.
	ErrRebooted = errors.New("guest rebooted")
	// ErrPoweredOff: the guest powered off.
	ErrPoweredOff = errors.New("guest powered off")
	// ErrNotConnected: WaitForSSH has not succeeded yet.
	ErrNotConnected = errors.New("not connected to the guest (call WaitForSSH)")
	// ErrClosed: the VM was closed.
	ErrClosed = errors.New("VM closed")
)

// RebootError reports that the guest rebooted under a command. Started
// says whether the command had started: true means its session ended
// because of the reboot (the usual "script reboots the machine" case);
// false means the reboot happened while no command ran and this one was not
// started. Either way: call WaitForSSH again, then continue.
// errors.Is(err, ErrRebooted) holds.
type RebootError struct {
	Started bool
	Boot    int   // the boot the guest is in now (or going to)
	Cause   error // how the session ended, if Started
}

func (e *RebootError) Error() string {
	if e.Started {
		return fmt.Sprintf("the command's session ended because the guest rebooted (now boot %d)", e.Boot)
	}
	return fmt.Sprintf("the guest rebooted since the last connection (now boot %d); command not started", e.Boot)
}

func (e *RebootError) Is(target error) bool { return target == ErrRebooted }
func (e *RebootError) Unwrap() error        { return e.Cause }

// machineStatus is what the communicator needs to know about the machine
// under it; *VM implements it.
type machineStatus interface {
	Status() Status
}

type commConfig struct {
	User    string
	Signer  ssh.Signer
	HostKey ssh.PublicKey // pinned; never InsecureIgnoreHostKey
	Addr    func() string
	Machine machineStatus
	Logger  *slog.Logger
	// NoBootID: a connection does not read the guest's boot_id; the
	// caller's first command does (a session costs a fraction of a second
	// under emulation).
	NoBootID bool
}

// Timeouts of the communicator.
const (
	attemptTimeout    = 20 * time.Second // one connection attempt, handshake and boot_id included
	retryInterval     = 100 * time.Millisecond
	sessionTimeout    = 30 * time.Second // opening a session on a live connection
	keepaliveInterval = 15 * time.Second
	keepaliveTimeout  = 60 * time.Second
	rebootGrace       = 2 * time.Minute // how long a dropped session may wait for the VM to report a reboot
)

// Comm is an SSH communicator to a build VM's guest. It is safe for
// concurrent use.
type Comm struct {
	cfg commConfig

	mu         sync.Mutex
	client     *ssh.Client
	clientBoot int
	bootID     string
	closed     bool
	// bannerMisses counts attempts whose server never spoke.
	bannerMisses int
}

func newComm(cfg commConfig) *Comm { return &Comm{cfg: cfg} }

// BootID is /proc/sys/kernel/random/boot_id of the guest as read at the last
// successful WaitForSSH; it changes with every boot.
func (c *Comm) BootID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bootID
}

func (c *Comm) status() Status {
	if c.cfg.Machine == nil {
		return Status{State: StateRunning, Boot: 1}
	}
	return c.cfg.Machine.Status()
}

// stateErr turns a machine state that can run nothing into an error.
func stateErr(st Status) error {
	switch st.State {
	case StateStopped:
		return ErrPoweredOff
	case StateFailed:
		return st.Err
	case StateClosed:
		return ErrClosed
	}
	return nil
}

// WaitForSSH waits until the guest accepts an SSH connection with the
// pinned host key and the build user's key, and runs a command on it. Every
// attempt has its own hard deadline (a handshake with a guest that is going
// down can otherwise hang for a minute). It returns early if the VM stops or
// fails. AIB allows a reboot 20 minutes; give ctx a deadline.
func (c *Comm) WaitForSSH(ctx context.Context) error {
	start := time.Now()
	var lastErr error
	for attempt := 1; ; attempt++ {
		st := c.status()
		if err := stateErr(st); err != nil {
			return fmt.Errorf("waiting for SSH: %w", err)
		}
		if st.State == StateRunning {
			c.mu.Lock()
			client, boot, closed := c.client, c.clientBoot, c.closed
			c.mu.Unlock()
			if closed {
				return fmt.Errorf("waiting for SSH: %w", ErrClosed)
			}
			if client != nil && boot == st.Boot && ping(client) == nil {
				return nil
			}
			if !isClosed(st.SSHStarted) {
				select {
				case <-ctx.Done():
					return fmt.Errorf("waiting for SSH: %w", ctx.Err())
				case <-st.Changed:
				case <-st.SSHStarted:
				}
				continue
			}
			client, id, err := c.dial(ctx)
			if err == nil {
				c.mu.Lock()
				old := c.client
				c.client, c.clientBoot, c.bootID = client, st.Boot, id
				c.bannerMisses = 0
				c.mu.Unlock()
				if old != nil {
					old.Close()
				}
				go keepalive(client)
				attrs := []any{"addr", c.cfg.Addr(), "boot", st.Boot, "attempts", attempt, "waited", time.Since(start).Round(time.Millisecond)}
				if id != "" {
					attrs = append(attrs, "boot_id", id)
				}
				c.cfg.Logger.Info("SSH connected", attrs...)
				return nil
			}
			lastErr = err
			c.cfg.Logger.Debug("SSH attempt failed", "attempt", attempt, "err", err)
		}
		t := time.NewTimer(retryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			if lastErr != nil {
				return fmt.Errorf("waiting for SSH (%d attempts, %s): %w (last error: %v)", attempt,
					time.Since(start).Round(time.Second), ctx.Err(), lastErr)
			}
			return fmt.Errorf("waiting for SSH: %w", ctx.Err())
		case <-st.Changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// isClosed tells whether ch is closed; a nil ch counts as closed.
func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// dial makes one connection attempt under a hard deadline and reads the
// guest's boot_id on it.
func (c *Comm) dial(ctx context.Context) (*ssh.Client, string, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	addr := c.cfg.Addr()
	var d net.Dialer
	conn, err := d.DialContext(actx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	dl, _ := actx.Deadline()
	_ = conn.SetDeadline(dl)
	// QEMU's user networking accepts the connection before the guest
	// listens, and then the attempt hangs: a guest whose sshd is up sends
	// its banner at once, so wait for that only briefly.
	c.mu.Lock()
	wait := bannerTimeout + time.Duration(c.bannerMisses)*time.Second
	c.mu.Unlock()
	_ = conn.SetReadDeadline(time.Now().Add(min(wait, attemptTimeout)))
	bc := &bannerConn{Conn: conn, deadline: dl}
	stop := context.AfterFunc(actx, func() { conn.Close() })
	cc, chans, reqs, err := ssh.NewClientConn(bc, addr, &ssh.ClientConfig{
		User:              c.cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(c.cfg.Signer)},
		HostKeyCallback:   ssh.FixedHostKey(c.cfg.HostKey),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           attemptTimeout,
	})
	if err != nil {
		stop()
		conn.Close()
		c.mu.Lock()
		if !bc.spoke {
			c.bannerMisses++
		}
		c.mu.Unlock()
		return nil, "", fmt.Errorf("SSH handshake: %w", err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	var id string
	if !c.cfg.NoBootID {
		id, err = output(client, "cat /proc/sys/kernel/random/boot_id")
	}
	if !stop() {
		client.Close()
		return nil, "", fmt.Errorf("SSH attempt: %w", actx.Err())
	}
	if err != nil {
		client.Close()
		return nil, "", fmt.Errorf("reading boot_id: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return client, strings.TrimSpace(id), nil
}

// bannerTimeout bounds the wait for the SSH server's first bytes; it grows
// by a second with every attempt that got none (a guest under heavy load
// can take longer to start sshd's session process).
const bannerTimeout = 2 * time.Second

// bannerConn lifts the short read deadline once the server has spoken.
type bannerConn struct {
	net.Conn
	deadline time.Time
	spoke    bool
}

func (c *bannerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.spoke {
		c.spoke = true
		_ = c.Conn.SetReadDeadline(c.deadline)
	}
	return n, err
}

// output runs a command and returns its stdout (no deadline of its own).
func output(client *ssh.Client, cmd string) (string, error) {
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	b, err := s.Output(cmd)
	return string(b), err
}

func ping(client *ssh.Client) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		client.Close()
		return errors.New("keepalive timed out")
	}
}

// keepalive closes a connection whose peer stops answering, so that sessions
// on it end instead of hanging.
func keepalive(client *ssh.Client) {
	closed := make(chan struct{})
	go func() { client.Wait(); close(closed) }()
	t := time.NewTicker(keepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-closed:
			return
		case <-t.C:
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		select {
		case <-closed:
			return
		case err := <-done:
			if err != nil {
				client.Close()
				return
			}
		case <-time.After(keepaliveTimeout):
			client.Close()
			return
		}
	}
}

// current returns the connection for a new command, or why there is none.
func (c *Comm) current() (*ssh.Client, int, error) {
	st := c.status()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, ErrClosed
	}
	if err := stateErr(st); err != nil {
		return nil, 0, err
	}
	if c.client != nil && st.Boot != c.clientBoot {
		return nil, 0, &RebootError{Started: false, Boot: st.Boot}
	}
	if c.client == nil {
		return nil, 0, ErrNotConnected
	}
	return c.client, c.clientBoot, nil
}

// Run runs a shell command in the guest as the build user, streaming its
// output to stdout and stderr (either may be nil). A command that exits
// normally returns its exit code and a nil error, whatever the code. A
// non-nil error means the command did not start or did not finish:
//   - the guest rebooted: errors.Is(err, ErrRebooted) (see RebootError);
//     call WaitForSSH and go on;
//   - the guest powered off: ErrPoweredOff;
//   - ctx ended: the remote command's whole process group is killed and
//     ctx's error is returned;
//   - the command was killed by a signal, or the connection was lost.
//
// The exit code is -1 whenever err is non-nil.
func (c *Comm) Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error) {
	return c.run(ctx, command, nil, stdout, stderr)
}

func (c *Comm) run(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	client, boot, err := c.current()
	if err != nil {
		return -1, err
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	sess, err := newSession(ctx, client)
	if err != nil {
		return c.judge(ctx, client, boot, fmt.Errorf("opening a session: %w", err), false)
	}
	defer sess.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	pg := &pgidWriter{w: stderr}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, pg
	// The session's shell is a process group leader (sshd calls setsid for
	// it), so its PID names the group of everything the command starts.
	if err := sess.Start("echo " + pgidMarker + "$$ >&2\n" + command); err != nil {
		return c.judge(ctx, client, boot, fmt.Errorf("starting the command: %w", err), false)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		c.kill(client, pg.pgid())
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		return -1, fmt.Errorf("command cancelled: %w", ctx.Err())
	}
	if err == nil {
		return 0, nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) && ee.Signal() == "" {
		return ee.ExitStatus(), nil
	}
	if errors.As(err, &ee) {
		err = fmt.Errorf("command killed by signal %s", ee.Signal())
	} else {
		err = fmt.Errorf("command session ended abnormally: %w", err)
	}
	return c.judge(ctx, client, boot, err, true)
}

// kill kills a remote process group (as root if sudo allows, to reach
// processes started with sudo), on a new session with its own deadline.
func (c *Comm) kill(client *ssh.Client, pgid int) {
	if pgid <= 1 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := newSession(ctx, client)
	if err != nil {
		return
	}
	defer s.Close()
	g := strconv.Itoa(pgid)
	done := make(chan error, 1)
	go func() { done <- s.Run("sudo -n kill -KILL -- -" + g + " 2>/dev/null || kill -KILL -- -" + g) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.cfg.Logger.Info("killed the remote command's process group", "pgid", pgid, "err", err)
}

// judge decides what an abnormal end of a session means: a reboot or a
// power-off of the guest (reported by the VM), or a real failure.
func (c *Comm) judge(ctx context.Context, client *ssh.Client, boot int, cause error, started bool) (int, error) {
	if c.cfg.Machine == nil {
		return -1, cause
	}
	grace := time.NewTimer(rebootGrace)
	defer grace.Stop()
	probed := false
	for {
		st := c.status()
		if st.Boot != boot {
			return -1, &RebootError{Started: started, Boot: st.Boot, Cause: cause}
		}
		if err := stateErr(st); err != nil {
			return -1, fmt.Errorf("%w (%v)", err, cause)
		}
		if !probed {
			probed = true
			if down, err := goingDown(client); err == nil && !down {
				return -1, cause // the guest is up and not shutting down: a real failure
			}
		}
		select {
		case <-st.Changed:
		case <-ctx.Done():
			return -1, fmt.Errorf("%w (%v)", ctx.Err(), cause)
		case <-grace.C:
			return -1, fmt.Errorf("connection to the guest lost: %w", cause)
		}
	}
}

// goingDown asks systemd whether the guest is shutting down.
func goingDown(client *ssh.Client) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := newSession(ctx, client)
	if err != nil {
		return false, err
	}
	defer s.Close()
	type res struct {
		out []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var b bytes.Buffer
		s.Stdout = &b
		err := s.Run("systemctl is-system-running 2>/dev/null; true")
		ch <- res{b.Bytes(), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return false, r.err
		}
		return strings.TrimSpace(string(r.out)) == "stopping", nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func newSession(ctx context.Context, client *ssh.Client) (*ssh.Session, error) {
	type res struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := client.NewSession()
		ch <- res{s, err}
	}()
	abandon := func() {
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
	}
	t := time.NewTimer(sessionTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-t.C:
		abandon()
		return nil, errors.New("opening an SSH session timed out")
	case <-ctx.Done():
		abandon()
		return nil, ctx.Err()
	}
}

const pgidMarker = "goldsmith-pgid="

// pgidWriter strips the first stderr line, written by the command wrapper,
// and remembers the process group it names.
type pgidWriter struct {
	w    io.Writer
	mu   sync.Mutex
	head []byte
	done bool
	id   int
}

func (p *pgidWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return p.w.Write(b)
	}
	p.head = append(p.head, b...)
	i := bytes.IndexByte(p.head, '\n')
	if i < 0 && len(p.head) < 64 {
		p.mu.Unlock()
		return len(b), nil
	}
	p.done = true
	rest := p.head
	if i >= 0 && bytes.HasPrefix(p.head, []byte(pgidMarker)) {
		p.id, _ = strconv.Atoi(string(p.head[len(pgidMarker):i]))
		rest = p.head[i+1:]
	}
	p.head = nil
	p.mu.Unlock()
	if len(rest) > 0 {
		if _, err := p.w.Write(rest); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (p *pgidWriter) pgid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

// Upload writes r to remotePath in the guest with the given mode, as the
// build user (write to a temporary name, then rename).
func (c *Comm) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	tmp := shellquote.Quote(remotePath + ".goldsmith-upload")
	cmd := fmt.Sprintf("umask 077 && cat > %s && chmod %o %s && mv -f %s %s",
		tmp, mode.Perm(), tmp, tmp, shellquote.Quote(remotePath))
	var stderr bytes.Buffer
	code, err := c.run(ctx, cmd, r, nil, &stderr)
	if err != nil {
		return fmt.Errorf("upload to %s: %w", remotePath, err)
	}
	if code != 0 {
		return fmt.Errorf("upload to %s: exit status %d: %s", remotePath, code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Download copies remotePath from the guest into w.
func (c *Comm) Download(ctx context.Context, remotePath string, w io.Writer) error {
	var stderr bytes.Buffer
	code, err := c.run(ctx, "cat -- "+shellquote.Quote(remotePath), nil, w, &stderr)
	if err != nil {
		return fmt.Errorf("download of %s: %w", remotePath, err)
	}
	if code != 0 {
		return fmt.Errorf("download of %s: exit status %d: %s", remotePath, code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// requestPoweroff asks the guest over SSH to power off, without waiting for
// an answer (the session dies with the guest). It reports whether the
// request could be sent.
func (c *Comm) requestPoweroff(ctx context.Context) bool {
	client, _, err := c.current()
	if err != nil {
		return false
	}
	s, err := newSession(ctx, client)
	if err != nil {
		return false
	}
	if err := s.Start("sudo -n systemctl poweroff || sudo -n poweroff"); err != nil {
		s.Close()
		return false
	}
	go func() { s.Wait(); s.Close() }()
	return true
}

func (c *Comm) close() {
	c.mu.Lock()
	client := c.client
	c.client, c.closed = nil, true
	c.mu.Unlock()
	if client != nil {
		client.Close()
	}
}
