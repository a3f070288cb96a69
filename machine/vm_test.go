package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLogger sends the package's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startFixtureVM boots the fixture under TCG with direct kernel boot, also
// after reboots (the fixture has no bootloader).
func startFixtureVM(t *testing.T, console *bytes.Buffer) *VM {
	t.Helper()
	fx := getFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := Start(ctx, Config{
		Disk:        fx.overlay(t),
		Kernel:      fx.Kernel,
		Initrd:      fx.Initrd,
		Cmdline:     fx.Cmdline,
		RestartBoot: RestartWithKernel,
		Accel:       AccelTCG,
		CPUs:        2,
		MemoryMiB:   1024,
		Console:     &syncWriter{w: console},
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func waitSSH(t *testing.T, v *VM, what string) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := v.Comm().WaitForSSH(ctx); err != nil {
		t.Fatalf("%s: %v\nconsole:\n%s", what, err, v.ConsoleTail())
	}
	d := time.Since(start)
	t.Logf("TIMING %s: %s", what, d.Round(time.Millisecond))
	return d
}

func run(t *testing.T, v *VM, cmd string) (string, string, int) {
	t.Helper()
	return runFor(t, v, 2*time.Minute, cmd)
}

func runFor(t *testing.T, v *VM, limit time.Duration, cmd string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out, errb bytes.Buffer
	start := time.Now()
	code, err := v.Comm().Run(ctx, cmd, &out, &errb)
	if err != nil {
		t.Fatalf("run %q: %v (stderr %q)", cmd, err, errb.String())
	}
	t.Logf("TIMING command %q: %s", cmd, time.Since(start).Round(time.Millisecond))
	return out.String(), errb.String(), code
}

// qemuProcesses lists processes whose command line mentions dir.
func qemuProcesses(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(dir)) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

func TestVMCommandsRebootCancel(t *testing.T) {
	needQEMU(t)
	var console bytes.Buffer
	bootStart := time.Now()
	v := startFixtureVM(t, &console)
	waitSSH(t, v, "boot → SSH")
	t.Logf("TIMING start+boot → SSH: %s", time.Since(bootStart).Round(time.Millisecond))
	c := v.Comm()
	firstBoot := c.BootID()
	if len(firstBoot) != 36 {
		t.Fatalf("boot_id %q", firstBoot)
	}

	// Output, stderr and exit codes.
	out, errOut, code := run(t, v, "echo hello; echo oops >&2; whoami")
	if code != 0 || out != "hello\n"+DefaultUser+"\n" || errOut != "oops\n" {
		t.Fatalf("got code %d stdout %q stderr %q", code, out, errOut)
	}
	if _, _, code := run(t, v, "exit 3"); code != 3 {
		t.Fatalf("exit 3: got %d", code)
	}
	// sudo without a password.
	if out, _, code := run(t, v, "sudo -n id -u"); code != 0 || out != "0\n" {
		t.Fatalf("sudo: code %d out %q", code, out)
	}

	// Upload and read back.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	payload := bytes.Repeat([]byte("goldsmith\x00\xff\n"), 100000) // 1.2 MB, binary-safe
	start := time.Now()
	if err := c.Upload(ctx, bytes.NewReader(payload), "/tmp/up load.bin", 0o640); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING upload %d bytes: %s", len(payload), time.Since(start).Round(time.Millisecond))
	var back bytes.Buffer
	if err := c.Download(ctx, "/tmp/up load.bin", &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Bytes(), payload) {
		t.Fatalf("downloaded %d bytes, differ from the upload", back.Len())
	}
	if out, _, _ := run(t, v, "stat -c %a '/tmp/up load.bin'"); out != "640\n" {
		t.Fatalf("mode %q", out)
	}
	if err := c.Download(ctx, "/nonexistent", &back); err == nil {
		t.Fatal("download of a missing file succeeded")
	}

	// A reboot in the middle of a command.
	pid1 := v.inst.proc.Pid()
	start = time.Now()
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer rcancel()
	code, err := c.Run(rctx, "echo rebooting; sudo systemctl reboot; sleep 600; echo not reached", nil, nil)
	var rerr *RebootError
	if !errors.Is(err, ErrRebooted) || !errors.As(err, &rerr) || !rerr.Started {
		t.Fatalf("reboot mid-command: code %d err %v", code, err)
	}
	t.Logf("reboot detected after %s: %v", time.Since(start).Round(time.Millisecond), err)
	waitSSH(t, v, "reboot → SSH (after detection)")
	t.Logf("TIMING reboot command → SSH: %s", time.Since(start).Round(time.Millisecond))
	if st := v.Status(); st.Boot != 2 || st.State != StateRunning {
		t.Fatalf("status after reboot: %+v", st)
	}
	if id := c.BootID(); id == firstBoot || len(id) != 36 {
		t.Fatalf("boot_id after reboot %q, before %q", id, firstBoot)
	}
	if pid2 := v.inst.proc.Pid(); pid2 == pid1 {
		t.Fatal("qemu was not restarted")
	}
	if _, err := os.Stat(filepath.Join("/proc", itoa(pid1))); err == nil {
		t.Fatalf("the first qemu (pid %d) still exists", pid1)
	}

	// A reboot while no command runs: the next command is refused as "not
	// started", and SSH comes back.
	secondBoot := c.BootID()
	if _, _, code := run(t, v, "sudo -n systemd-run --quiet --on-active=1 systemctl reboot"); code != 0 {
		t.Fatalf("scheduling a reboot: exit %d", code)
	}
	start = time.Now()
	for st := v.Status(); st.Boot < 3; st = v.Status() {
		select {
		case <-st.Changed:
		case <-time.After(2 * time.Minute):
			t.Fatal("the scheduled reboot did not happen")
		}
	}
	_, err = c.Run(context.Background(), "true", nil, nil)
	if !errors.As(err, &rerr) || rerr.Started || rerr.Boot != 3 {
		t.Fatalf("run after an idle reboot: %v", err)
	}
	waitSSH(t, v, "idle reboot → SSH")
	if id := c.BootID(); id == secondBoot || id == firstBoot {
		t.Fatalf("boot_id did not change: %s", id)
	}

	// Cancel during a long command: the remote process group dies.
	cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer ccancel()
	start = time.Now()
	_, err = c.Run(cctx, "sleep 4242 & sleep 4243; echo not reached", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled command: %v", err)
	}
	t.Logf("cancel returned after %s", time.Since(start).Round(time.Millisecond))
	if out, _, code := run(t, v, "pgrep -f 'sleep 424[23]' || true"); code != 0 || out != "" {
		t.Fatalf("remote processes survived the cancel: %q", out)
	}

	// Close without Shutdown: no qemu, no temp dir.
	dir := v.dir
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if ps := qemuProcesses(t, dir); len(ps) > 0 {
		t.Fatalf("processes outlived Close: %v", ps)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s not removed: %v", dir, err)
	}
	if _, err := c.Run(context.Background(), "true", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("run after Close: %v", err)
	}
}

func TestVMShutdown(t *testing.T) {
	needQEMU(t)
	var console bytes.Buffer
	v := startFixtureVM(t, &console)
	waitSSH(t, v, "boot → SSH")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := v.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING shutdown → qemu exit: %s", time.Since(start).Round(time.Millisecond))
	if st := v.Status(); st.State != StateStopped {
		t.Fatalf("state %v", st.State)
	}
	if _, err := v.Comm().Run(ctx, "true", nil, nil); !errors.Is(err, ErrPoweredOff) {
		t.Fatalf("run after power-off: %v", err)
	}
	dirs := []string{v.dir, v.netDir}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if ps := qemuProcesses(t, dir); len(ps) > 0 {
			t.Fatalf("processes outlived Close: %v", ps)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("temp dir %s not removed", dir)
		}
	}
}

func TestProbeAccel(t *testing.T) {
	needQEMU(t)
	ctx := context.Background()
	// The probe's methods must recognize a guest that runs: under TCG it always does.
	ok, reason, err := BootProbe(ctx, HostRunner{}, DefaultQEMU, AccelTCG, "", 20*time.Second)
	if err != nil || !ok {
		t.Fatalf("TCG firmware probe: ok=%v reason=%q err=%v", ok, reason, err)
	}
	fx := getFixture(t)
	start := time.Now()
	ok, reason, err = BootProbe(ctx, HostRunner{}, DefaultQEMU, AccelTCG, fx.Kernel, 60*time.Second)
	if err != nil || !ok {
		t.Fatalf("TCG kernel probe: ok=%v reason=%q err=%v", ok, reason, err)
	}
	t.Logf("TCG kernel probe took %s", time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	start = time.Now()
	r, err := ProbeAccel(ctx, ProbeConfig{CacheDir: dir, Kernel: fx.Kernel, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("probe: %+v in %s", r, time.Since(start).Round(time.Millisecond))
	if os.Getenv("GOLDSMITH_EXPECT_KVM") == "" && r.Accel != AccelTCG {
		t.Fatalf("expected tcg on this machine (nested KVM hangs), got %s", r.Accel)
	}
	if r.Cached {
		t.Fatal("first probe reported cached")
	}
	start = time.Now()
	r2, err := ProbeAccel(ctx, ProbeConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Cached || r2.Accel != r.Accel || r2.Key != r.Key {
		t.Fatalf("second probe: %+v", r2)
	}
	t.Logf("cached probe in %s", time.Since(start).Round(time.Millisecond))
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestIsolatedNetwork proves both halves of the default network's promise
// in a real build VM: a server bound to the host's 127.0.0.1 is out of the
// guest's reach (through 10.0.2.2, the guest's gateway and the host's own
// address), while `apt-get update` works (DNS and the outside network). A
// server on the host's non-loopback address is reached by the same probe,
// so the probe can tell reachable from not.
func TestIsolatedNetwork(t *testing.T) {
	needQEMU(t)
	token := strconv.FormatInt(time.Now().UnixNano(), 36)
	serve := func(l net.Listener) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "secret-"+token+"\n")
		}))
		s.Listener.Close()
		s.Listener = l
		s.Start()
		t.Cleanup(s.Close)
		return s
	}
	local, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(local)
	hostIP := hostAddress(t)
	public, err := net.Listen("tcp", hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	outside := serve(public)
	loopPort := local.Addr().(*net.TCPAddr).Port

	var console bytes.Buffer
	v := startFixtureVM(t, &console)
	waitSSH(t, v, "boot → SSH (passt)")
	gw, _, _ := run(t, v, "ip -4 route show default | awk '{print $3; exit}'")
	gw = strings.TrimSpace(gw)
	if gw == "" {
		t.Fatalf("the guest has no default route")
	}
	// One HTTP request per case over bash's /dev/tcp, 5 s at most, all at
	// once: each prints its index and the body's last line, or FAILED.
	cases := []struct {
		name      string
		host      string
		port      int
		reachable bool
	}{
		{"host loopback via 10.0.2.2", "10.0.2.2", loopPort, false},
		{"host loopback via the guest's gateway " + gw, gw, loopPort, false},
		{"host loopback port on the host's address", hostIP, loopPort, false},
		{"server on the host's address (control)", hostIP, outside.Listener.Addr().(*net.TCPAddr).Port, true},
	}
	var script strings.Builder
	for i, c := range cases {
		fmt.Fprintf(&script, `(r=$(timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null) && echo "%d $(echo "$r" | tail -1)" || echo "%d FAILED") & `, c.host, c.port, i, i)
	}
	script.WriteString("wait")
	out, _, _ := run(t, v, script.String())
	results := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		i, rest, _ := strings.Cut(line, " ")
		results[i] = rest
	}
	for i, c := range cases {
		got := results[strconv.Itoa(i)]
		if reached := got == "secret-"+token; reached != c.reachable {
			t.Errorf("%s (%s:%d): reached=%v, want %v; guest printed %q", c.name, c.host, c.port, reached, c.reachable, got)
		}
	}

	out, errOut, code := runFor(t, v, 5*time.Minute, "getent hosts deb.debian.org && sudo apt-get update 2>&1")
	if code != 0 || strings.Contains(out, "Err:") || strings.Contains(out, "Temporary failure") {
		t.Fatalf("apt-get update in the isolated VM: exit %d\n%s%s", code, out, errOut)
	}
	dir, netDir := v.dir, v.netDir
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, netDir} {
		if ps := qemuProcesses(t, d); len(ps) > 0 {
			t.Fatalf("processes (qemu, passt) outlived Close: %v", ps)
		}
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s not removed", d)
		}
	}
}

// hostAddress is a non-loopback IPv4 address of this host.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("the host has no non-loopback IPv4 address")
	return ""
}
