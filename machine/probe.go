package machine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Accel is a QEMU accelerator.
type Accel string

const (
	AccelAuto Accel = "auto" // probe: KVM if a guest actually runs under it, else TCG
	AccelKVM  Accel = "kvm"
	AccelTCG  Accel = "tcg"
)

// DefaultQEMU is the emulator binary.
const DefaultQEMU = "qemu-system-x86_64"

// ProbeConfig configures ProbeAccel.
type ProbeConfig struct {
	QEMU     string // default DefaultQEMU
	Runner   Runner // default HostRunner
	CacheDir string // where the answer is kept; empty: no caching
	Kernel   string // optional kernel to boot under KVM (see ProbeAccel)
	Timeout  time.Duration
	Logger   *slog.Logger
}

// ProbeResult is ProbeAccel's answer.
type ProbeResult struct {
	Accel  Accel  `json:"accel"`
	Key    string `json:"key"`              // QEMU version + host kernel release
	Reason string `json:"reason,omitempty"` // why KVM was not chosen
	Cached bool   `json:"-"`
}

// Markers of a guest that got far enough. Firmware only (no disk, no NIC):
// SeaBIOS finishes POST with "No bootable device". A kernel without a root
// filesystem panics trying to mount it.
var (
	firmwareMarkers = [][]byte{[]byte("No bootable device"), []byte("Booting from")}
	kernelMarkers   = [][]byte{[]byte("Unable to mount root fs"), []byte("Kernel panic")}
)

// ProbeAccel decides between KVM and TCG by booting, never by the presence
// of /dev/kvm (nested KVM can exist and hang, or abort on MSRs). It starts
// QEMU with -accel kvm -cpu host (what a KVM build VM runs with) and
// chooses KVM only if the guest gets far within the timeout (default 8 s):
// with ProbeConfig.Kernel, that kernel must boot to its "no root
// filesystem" panic; without, SeaBIOS must finish POST. Seen here: the
// firmware alone sometimes completes POST under a nested KVM on which no
// kernel ever runs, so pass a kernel when there is one. The answer is
// cached in CacheDir keyed by the QEMU version and the host kernel release.
func ProbeAccel(ctx context.Context, pc ProbeConfig) (ProbeResult, error) {
	if pc.QEMU == "" {
		pc.QEMU = DefaultQEMU
	}
	if pc.Runner == nil {
		pc.Runner = HostRunner{}
	}
	if pc.Timeout == 0 {
		pc.Timeout = 8 * time.Second
	}
	log := pc.Logger
	if log == nil {
		log = slog.Default()
	}
	key, err := hostKey(ctx, pc.Runner, pc.QEMU)
	if err != nil {
		return ProbeResult{}, err
	}
	sum := sha256.Sum256([]byte(key))
	var cacheFile string
	if pc.CacheDir != "" {
		cacheFile = filepath.Join(pc.CacheDir, "accel-probe-"+hex.EncodeToString(sum[:8])+".json")
		if b, err := os.ReadFile(cacheFile); err == nil {
			var r ProbeResult
			if json.Unmarshal(b, &r) == nil && r.Key == key && (r.Accel == AccelKVM || r.Accel == AccelTCG) {
				r.Cached = true
				return r, nil
			}
		}
	}
	ok, reason, err := BootProbe(ctx, pc.Runner, pc.QEMU, AccelKVM, pc.Kernel, pc.Timeout)
	if err != nil {
		return ProbeResult{}, err
	}
	r := ProbeResult{Accel: AccelTCG, Key: key, Reason: reason}
	if ok {
		r = ProbeResult{Accel: AccelKVM, Key: key}
	}
	log.Info("accelerator probe", "accel", r.Accel, "reason", r.Reason, "key", key)
	if cacheFile != "" {
		if err := os.MkdirAll(pc.CacheDir, 0o755); err != nil {
			return r, fmt.Errorf("accelerator probe cache: %w", err)
		}
		b, _ := json.Marshal(r)
		tmp := cacheFile + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return r, fmt.Errorf("accelerator probe cache: %w", err)
		}
		if err := os.Rename(tmp, cacheFile); err != nil {
			return r, fmt.Errorf("accelerator probe cache: %w", err)
		}
	}
	return r, nil
}

// BootProbe boots QEMU with the given accelerator (and the CPU model a
// build VM would use with it), no disk and no NIC, and reports whether the
// guest gets far within timeout: the kernel, if given, to its panic for
// want of a root filesystem, else SeaBIOS through POST. ok=false comes with
// a reason (QEMU's error, or a timeout); err is for a QEMU that cannot be
// started at all, or ctx's end.
func BootProbe(ctx context.Context, r Runner, qemu string, accel Accel, kernel string, timeout time.Duration) (ok bool, reason string, err error) {
	cpu := CPUModelFor(accel)
	args := []string{
		"-accel", string(accel), "-cpu", cpu, "-machine", "q35", "-m", "256",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
	}
	markers := firmwareMarkers
	if kernel != "" {
		markers = kernelMarkers
		args = append(args, "-serial", "stdio", "-kernel", kernel, "-append", "console=ttyS0 panic=-1")
	} else {
		args = append(args, "-chardev", "stdio,id=fwlog", "-device", "isa-debugcon,iobase=0x402,chardev=fwlog")
	}
	out := &markerWriter{markers: markers, found: make(chan struct{})}
	var stderr tailBuffer
	proc, err := r.Start(Command{Path: qemu, Stdout: out, Stderr: &stderr, Args: args})
	if err != nil {
		return false, "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-out.found:
		ok = true
	case werr := <-exited:
		select {
		case <-out.found: // the kernel panicked and reset: qemu exits (-no-reboot)
			return true, "", nil
		default:
		}
		return false, fmt.Sprintf("qemu exited (%v): %s", werr, strings.TrimSpace(stderr.String())), nil
	case <-timer.C:
		reason = fmt.Sprintf("the guest made no progress within %s", timeout)
	case <-ctx.Done():
		_ = proc.Signal(syscall.SIGKILL)
		<-exited
		return false, "", fmt.Errorf("accelerator probe: %w", ctx.Err())
	}
	_ = proc.Signal(syscall.SIGKILL)
	<-exited
	return ok, reason, nil
}

// HostKey names this host's QEMU and kernel: what a saved VM state and the
// accelerator probe's answer are valid for.
func HostKey(ctx context.Context) (string, error) {
	return hostKey(ctx, HostRunner{}, DefaultQEMU)
}

func hostKey(ctx context.Context, r Runner, qemu string) (string, error) {
	version, err := qemuVersion(ctx, r, qemu)
	if err != nil {
		return "", err
	}
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return version + " / " + utsString(uts.Release[:]), nil
}

func qemuVersion(ctx context.Context, r Runner, qemu string) (string, error) {
	var out, errb bytes.Buffer
	p, err := r.Start(Command{Path: qemu, Args: []string{"--version"}, Stdout: &out, Stderr: &errb})
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = p.Signal(syscall.SIGKILL)
		<-done
		return "", ctx.Err()
	}
	if err != nil {
		return "", fmt.Errorf("%s --version: %w: %s", qemu, err, errb.String())
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	return strings.TrimSpace(line), nil
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// markerWriter closes found when any marker appears in what is written.
type markerWriter struct {
	mu      sync.Mutex
	buf     []byte
	markers [][]byte
	found   chan struct{}
	closed  bool
}

func (w *markerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for _, m := range w.markers {
		if bytes.Contains(w.buf, m) {
			w.closed = true
			close(w.found)
			return len(p), nil
		}
	}
	if len(w.buf) > 4096 {
		w.buf = w.buf[len(w.buf)-256:]
	}
	return len(p), nil
}

// tailBuffer keeps the last 8 KiB written to it (QEMU's stderr, for errors).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8192 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-8192:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
