package machine

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// staticStatus is a machine that stays running in its first boot.
type staticStatus struct{ sshStarted <-chan struct{} }

func (s staticStatus) Status() Status {
	return Status{State: StateRunning, Boot: 1, Changed: make(chan struct{}), SSHStarted: s.sshStarted}
}

// TestWaitForSSHAfterSSHStarted: no connection is made to the forwarded
// port before the guest's SSH server has started (on passt, one would keep
// passt spinning through the boot), and attempts begin as soon as it has.
func TestWaitForSSHAfterSSHStarted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close() // no SSH server here: every attempt fails
		}
	}()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	c := newComm(commConfig{User: "u", Signer: signer, HostKey: signer.PublicKey(), Addr: func() string { return l.Addr().String() },
		Machine: staticStatus{sshStarted: started}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.WaitForSSH(ctx) }()

	time.Sleep(500 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Fatalf("%d connections before the guest's SSH server started", n)
	}
	close(started)
	deadline := time.Now().Add(5 * time.Second)
	for conns.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := conns.Load(); n < 2 {
		t.Fatalf("%d connections within 5s of the SSH server starting, want attempts every %v", n, retryInterval)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("WaitForSSH succeeded without an SSH server")
	}
}

// TestSSHStartedMarkers: what guests print on their console when sshd
// starts, as QEMU hands it over (in pieces, with systemd's colours).
func TestSSHStartedMarkers(t *testing.T) {
	for _, c := range []struct {
		name   string
		writes []string
		want   bool
	}{
		{"Debian's status line", []string{"         Starting \x1b[0;1;39mssh.service\x1b[0m - OpenBSD Secure Shell server...\r\n"}, true},
		{"split across writes", []string{"Starting \x1b[0;1;39mss", "h.serv", "ice\x1b[0m - OpenBSD\r\n"}, true},
		{"RHEL's", []string{"[  OK  ] Started OpenSSH server daemon.\r\n"}, true},
		{"a login prompt", []string{"\r\nDebian GNU/Linux 12 debian ttyS0\r\n\r\ndebian login: "}, true},
		{"the boot before sshd", []string{"[  OK  ] Reached target network.target - Network.\r\n", "Starting systemd-logind.service...\r\n"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &markerWriter{markers: sshStartedMarkers, found: make(chan struct{})}
			for _, s := range c.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			if got := isClosed(w.found); got != c.want {
				t.Errorf("marker seen: %v, want %v", got, c.want)
			}
		})
	}
}
