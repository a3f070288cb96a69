package machine

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestGuestResolvers(t *testing.T) {
	td := func(n string) string { return filepath.Join("testdata", "resolv", n) }
	for _, c := range []struct {
		name  string
		files []string
		want  string
	}{
		{"non-loopback first file", []string{td("upstream.conf"), td("stub.conf")}, "10.255.255.53,192.0.2.53"},
		// systemd-resolved's stub: its upstreams are in the second file.
		{"loopback stub, upstream in the next file", []string{td("stub.conf"), td("upstream.conf")}, "10.255.255.53,192.0.2.53"},
		{"only loopback resolvers", []string{td("stub.conf"), td("loopback-only.conf")}, ""},
		{"missing files", []string{td("absent.conf")}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := strings.Join(guestResolvers(c.files), ","); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestNetworkKey(t *testing.T) {
	if NetworkKey("") != NetworkKey(NetworkIsolated) {
		t.Error("the default network's key differs from isolated's")
	}
	if NetworkKey(NetworkSlirp) == NetworkKey(NetworkIsolated) {
		t.Error("slirp and passt share a key: a state saved on one would be restored on the other")
	}
}

func TestQEMUNetdev(t *testing.T) {
	for _, c := range []struct {
		inv  qemuInvocation
		want string
	}{
		{qemuInvocation{SSHPort: 2222}, "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22"},
		{qemuInvocation{SSHPort: 2222, NetSocket: "/t/n,1.sock"}, "-netdev stream,id=n0,server=off,addr.type=unix,addr.path=/t/n,,1.sock"},
	} {
		if got := strings.Join(c.inv.args(), " "); !strings.Contains(got, c.want) {
			t.Errorf("args lack %q:\n%s", c.want, got)
		}
	}
}

func TestPasstArgs(t *testing.T) {
	for _, c := range []struct {
		pc         passtConfig
		want, lack []string
	}{
		{passtConfig{Socket: "/s", SSHPort: 2222, DNS: []string{"192.0.2.53"}, RunAs: "nobody"},
			[]string{"--no-map-gw", "--one-off", "--socket /s", "--tcp-ports 127.0.0.1/2222:22", "--address 10.0.2.15", "--gateway 10.0.2.2", "--dns 192.0.2.53", "--runas nobody"},
			[]string{"--dns none"}},
		{passtConfig{Socket: "/s", SSHPort: 2222},
			[]string{"--dns none"}, []string{"--runas"}},
	} {
		got := strings.Join(c.pc.args(), " ")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("passt args lack %q: %s", w, got)
			}
		}
		for _, l := range c.lack {
			if strings.Contains(got, l) {
				t.Errorf("passt args have %q: %s", l, got)
			}
		}
	}
}

// TestPasstProcess starts the real passt (no guest): its socket listens
// when startPasst returns, the SSH port is bound on 127.0.0.1, a busy port
// is reported as errPortBusy, and stop leaves no process or pid file.
func TestPasstProcess(t *testing.T) {
	needPasst(t)
	dir, runAs, err := netSocketDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "qemu-passt.pid")
	pc := passtConfig{Socket: filepath.Join(dir, "p.sock"), SSHPort: port, RunAs: runAs}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	n, err := startPasst(ctx, HostRunner{}, DefaultPasst, pc, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING passt up: %s", time.Since(start).Round(time.Millisecond))
	if !unixListening(pc.Socket) {
		t.Error("passt's socket does not listen")
	}
	if pid, marker, err := readPIDFile(pidFile); err != nil || pid != n.proc.Pid() || marker != pc.Socket {
		t.Errorf("pid file: %d %q %v; want %d %q", pid, marker, err, n.proc.Pid(), pc.Socket)
	}
	if _, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
		t.Error("the SSH port is free while passt runs: passt does not forward it")
	}

	// A second passt on the same port.
	pc2 := pc
	pc2.Socket = filepath.Join(dir, "p2.sock")
	if n2, err := startPasst(ctx, HostRunner{}, DefaultPasst, pc2, ""); !errors.Is(err, errPortBusy) {
		if n2 != nil {
			n2.stop()
		}
		t.Errorf("passt on a busy port: %v, want errPortBusy", err)
	}

	pid := n.proc.Pid()
	n.stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("passt %d still exists after stop: %v", pid, err)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
}

// TestKillRecordedMarker: a process whose command line names not the
// directory but the marker in its pid file (passt) is killed too.
func TestKillRecordedMarker(t *testing.T) {
	needPasst(t)
	dir, runAs, err := netSocketDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	pc := passtConfig{Socket: filepath.Join(dir, "p.sock"), SSHPort: port, RunAs: runAs}
	n, err := startPasst(context.Background(), HostRunner{}, DefaultPasst, pc, NetPIDFile(filepath.Join(work, "qemu.pid")))
	if err != nil {
		t.Fatal(err)
	}
	defer n.stop()
	KillRecorded(work)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("passt recorded in the work dir still runs")
	}
}

// TestStartWithoutPasst: the isolated network does not quietly become the
// unisolated one; without passt the VM does not start, and says why.
func TestStartWithoutPasst(t *testing.T) {
	d := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(d, make([]byte, 512), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []Network{"", NetworkIsolated} {
		_, err := Start(context.Background(), Config{Disk: d, DiskFormat: "raw", Accel: AccelTCG, Network: n, Passt: "/nonexistent/passt"})
		if !errors.Is(err, errNoPasst) || !strings.Contains(err.Error(), "--vm-network slirp") {
			t.Errorf("network %q without passt: %v, want errNoPasst", n, err)
		}
	}
	if _, err := Start(context.Background(), Config{Disk: d, DiskFormat: "raw", Network: "bridge"}); err == nil || !strings.Contains(err.Error(), "unknown network") {
		t.Errorf("unknown network: %v", err)
	}
}
