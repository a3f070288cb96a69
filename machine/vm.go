package machine

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/goldsmith-dev/goldsmith/bootconfig"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine/guestagent"
)

// RestartBoot says how QEMU boots the disk again after a guest reboot.
type RestartBoot int

const (
	// RestartFromBootConfig reads the kernel, initrd and command line the
	// disk's own GRUB would boot from the disk (quiescent once QEMU has
	// exited) and boots them directly: what a customizer installed still
	// runs, without the slow BIOS and GRUB path under TCG. When they cannot
	// be determined, it falls back to RestartFromDisk. The default.
	RestartFromBootConfig RestartBoot = iota
	// RestartFromDisk boots through the disk's own bootloader (no -kernel),
	// so a kernel a customizer installed is the one that runs.
	RestartFromDisk
	// RestartWithKernel reuses Config.Kernel/Initrd/Cmdline: only for disks
	// without a bootloader (bare filesystem images).
	RestartWithKernel
)

// KernelBoot is a direct kernel boot: QEMU's -kernel, -initrd, -append.
type KernelBoot struct {
	Kernel, Initrd, Cmdline string
	Entry                   string // the boot menu entry it comes from, for the log
}

// BootConfigReader reads what the disk's own bootloader would boot,
// extracting the kernel and initrd into dir. An error means it cannot be
// determined with confidence.
type BootConfigReader func(ctx context.Context, disk, format, dir string) (KernelBoot, error)

// ReadGrubBootConfig is the default BootConfigReader (package bootconfig).
func ReadGrubBootConfig(ctx context.Context, disk, format, dir string) (KernelBoot, error) {
	b, err := bootconfig.Read(ctx, disk, format, dir)
	if err != nil {
		return KernelBoot{}, err
	}
	return KernelBoot{Kernel: b.Kernel, Initrd: b.Initrd, Cmdline: b.Cmdline, Entry: b.Entry}, nil
}

// TCGCPUModel is the default emulated CPU: QEMU's qemu64 plus the
// x86-64-v2 features (distributions such as RHEL 9 require them). "max" was
// 15-20% slower to boot in back-to-back runs here (it enables 5-level paging
// and much more for TCG to emulate). An Intel model (Nehalem) keeps the TSC
// as the guest's clocksource with several vCPUs, where this AMD one falls
// back to the HPET, but it booted 10-20% slower still: Linux turns on its
// Intel mitigations (page table isolation among them), which cost more
// under emulation than the HPET's clock reads.
const TCGCPUModel = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"

// CPUModelFor is the CPU model a build VM gets under accel.
func CPUModelFor(accel Accel) string {
	if accel == AccelKVM {
		return "host"
	}
	return TCGCPUModel
}

// DefaultUser is the temporary build user's name when Config.User is empty.
const DefaultUser = "goldsmith"

// FwCfgItem is an extra QEMU fw_cfg item for the guest (name like opt/x/y).
type FwCfgItem struct {
	Name string
	Data []byte
}

// Config describes a build VM.
type Config struct {
	// Disk is the image to run, qcow2 or raw. The VM writes to it; the
	// caller owns it (normally a copy-on-write overlay of a cached base).
	Disk       string
	DiskFormat string // "qcow2" or "raw"; empty: detected

	// Optional direct kernel boot for the first boot.
	Kernel, Initrd, Cmdline string
	// RestartBoot is how QEMU boots after a guest reboot.
	RestartBoot RestartBoot
	// ReadBootConfig serves RestartFromBootConfig; default ReadGrubBootConfig.
	ReadBootConfig BootConfigReader

	CPUs      int    // default 2
	MemoryMiB int    // default 2048
	Accel     Accel  // default AccelAuto
	CPUModel  string // default TCGCPUModel under TCG, "host" under KVM
	// CacheDir keeps the accelerator probe's answer (AccelAuto).
	CacheDir string

	Console io.Writer // receives the serial console; may be nil
	User    string    // temporary build user; default DefaultUser
	FwCfg   []FwCfgItem

	// PIDFile, when set, receives the running QEMU's pid at every start, so
	// that a supervisor that dies can have the process stopped later.
	// passt's goes next to it (NetPIDFile).
	PIDFile string

	// Network is the guest's network; default NetworkIsolated.
	Network Network
	// Passt is the passt program; default DefaultPasst.
	Passt string

	// Restore, when set, starts the VM from a saved state (see Restore)
	// instead of booting it.
	Restore *Restore

	QEMU   string // default DefaultQEMU
	Runner Runner // default HostRunner
	Logger *slog.Logger
}

// State is the VM's life-cycle state.
type State int

const (
	StateRunning   State = iota // QEMU runs (the guest may still be booting)
	StateRebooting              // the guest reset; QEMU is being started again
	StateStopped                // the guest powered off, or Shutdown stopped it
	StateFailed                 // QEMU exited unexpectedly or could not be restarted
	StateClosed                 // Close was called
)

func (s State) String() string {
	return [...]string{"running", "rebooting", "stopped", "failed", "closed"}[s]
}

// Status is a snapshot of the VM.
type Status struct {
	State State
	// Boot counts the guest's boots: 1 for the first, +1 at every reboot
	// (counted when the guest resets, before it is up again).
	Boot int
	Err  error // why, in StateFailed
	// KernelBoot says the current boot was started with direct kernel boot
	// (-kernel), not through the disk's bootloader.
	KernelBoot bool
	// Changed is closed at the next change of State or Boot.
	Changed <-chan struct{}
	// SSHStarted is closed once the running guest's console has shown its
	// SSH server starting (sshStartedMarkers), or sshStartedFallback after
	// its start for a guest that shows none; at once on QEMU's own network
	// and for a restored guest. SSH is not tried before: on passt, a
	// connection the guest does not answer yet keeps passt spinning for
	// the rest of the boot (measured here: passt at 65-95% of a core, the
	// guest's boot half as fast). nil means started.
	SSHStarted <-chan struct{}
}

// sshStartedFallback: see Status.SSHStarted. A cold boot here shows its
// marker within ~25 s under TCG.
const sshStartedFallback = 45 * time.Second

// sshStartedMarkers are what systemd prints on the console when a guest's
// SSH server has started (Debian's and Ubuntu's ssh.service, RHEL's and
// SUSE's sshd.service), or a login prompt, which comes after.
var sshStartedMarkers = [][]byte{
	[]byte("ssh.service"), []byte("sshd.service"), []byte("OpenBSD Secure Shell server"),
	[]byte("OpenSSH server daemon"), []byte(" login: "),
}

// VM is a running QEMU build VM. Its zero value is not usable; see Start.
type VM struct {
	cfg      Config
	log      *slog.Logger
	dir      string // per-VM temp dir: QMP sockets, fw_cfg files
	accel    Accel
	fwcfg    []fwCfgFile
	console  tailBuffer
	conOut   io.Writer
	comm     *Comm
	superCtx context.Context
	cancel   context.CancelFunc

	mu       sync.Mutex
	inst     *instance
	port     int
	boot     int
	state    State
	err      error
	changed  chan struct{}
	stopping bool
	closing  bool
	// restart is the direct kernel boot of the next restart, if any (set
	// by supervise before it relaunches QEMU).
	restart *KernelBoot
	// ramFile backs the guest's memory ("" : anonymous memory).
	ramFile string
	// netDir holds passt's sockets; passtUser is who passt runs as ("":
	// this process's user); dns are the guest's DNS servers (NetworkIsolated).
	netDir, passtUser string
	dns               []string
	// shadowOf is the QEMU process whose memory shadowFile holds as of its
	// last checkpoint or restore (nil: none).
	shadowOf *instance
	// shadowDone, when not nil, is closed once the shadow of a restore,
	// laid in the background (see prepareRAM), is there or failed
	// (shadowErr); a checkpoint waits for it.
	shadowDone chan struct{}
	shadowErr  error

	clientKeyPEM []byte // the build user's private key, for ClientKeyFile
	signer       ssh.Signer
	hostPub      ssh.PublicKey
	hostKeyPEM   []byte
	instBoot     bootArgs // how the running QEMU process booted

	superDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// instance is one QEMU process of the VM (a new one after every reboot).
type instance struct {
	proc Process
	net  *netProcess // passt, with NetworkIsolated
	qmp  *qmpConn
	// exited is closed once QEMU has exited and its passt is gone.
	exited chan struct{}
	// sshStarted: see Status.SSHStarted.
	sshStarted chan struct{}
	waitErr    error
	stderr     tailBuffer

	mu     sync.Mutex
	reason string // SHUTDOWN event reason: guest-reset, guest-shutdown, ...
}

func (in *instance) shutdownReason() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.reason
}

func (in *instance) alive() bool {
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// Start boots a VM. ctx bounds the start only (the accelerator probe and
// QEMU's launch); the VM lives until Shutdown or Close, and the caller must
// call Close on every path.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	if cfg.Disk == "" {
		return nil, errors.New("machine: Config.Disk is required")
	}
	if cfg.Kernel == "" && cfg.RestartBoot == RestartWithKernel {
		return nil, errors.New("machine: RestartWithKernel needs Config.Kernel")
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 2
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 2048
	}
	if cfg.Accel == "" {
		cfg.Accel = AccelAuto
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if cfg.QEMU == "" {
		cfg.QEMU = DefaultQEMU
	}
	if cfg.Network == "" {
		cfg.Network = NetworkIsolated
	}
	if cfg.Passt == "" {
		cfg.Passt = DefaultPasst
	}
	if cfg.Runner == nil {
		cfg.Runner = HostRunner{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if _, err := os.Stat(cfg.Disk); err != nil {
		return nil, fmt.Errorf("machine: disk: %w", err)
	}
	if cfg.DiskFormat == "" {
		f, err := disk.DetectFormat(cfg.Disk)
		if err != nil {
			return nil, fmt.Errorf("machine: %w", err)
		}
		cfg.DiskFormat = f
	}
	switch cfg.Network {
	case NetworkIsolated:
		if _, err := exec.LookPath(cfg.Passt); err != nil {
			return nil, fmt.Errorf("machine: %w", errNoPasst)
		}
	case NetworkSlirp:
		log.Warn("THE BUILD VM IS NOT ISOLATED FROM THIS HOST: on the slirp network its guest reaches every service listening on this host's 127.0.0.1 through 10.0.2.2")
	default:
		return nil, fmt.Errorf("machine: unknown network %q (want %s or %s)", cfg.Network, NetworkIsolated, NetworkSlirp)
	}
	accel := cfg.Accel
	switch accel {
	case AccelKVM, AccelTCG:
	case AccelAuto:
		r, err := ProbeAccel(ctx, ProbeConfig{QEMU: cfg.QEMU, Runner: cfg.Runner, CacheDir: cfg.CacheDir, Kernel: cfg.Kernel, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("machine: %w", err)
		}
		accel = r.Accel
	default:
		return nil, fmt.Errorf("machine: unknown accelerator %q (want kvm, tcg or auto)", accel)
	}
	if cfg.CPUModel == "" {
		cfg.CPUModel = CPUModelFor(accel)
	}

	sweepStaleVMDirs(log)
	dir, ramFile, err := vmDir()
	if err != nil {
		return nil, fmt.Errorf("machine: temp dir: %w", err)
	}
	superCtx, cancel := context.WithCancel(context.Background())
	v := &VM{
		cfg: cfg, log: log, dir: dir, accel: accel,
		superCtx: superCtx, cancel: cancel, ramFile: ramFile,
		changed: make(chan struct{}),
	}
	v.conOut = io.Writer(&v.console)
	if cfg.Console != nil {
		v.conOut = io.MultiWriter(cfg.Console, &v.console)
	}
	fail := func(err error) (*VM, error) {
		cancel()
		os.RemoveAll(dir)
		if v.netDir != "" {
			os.RemoveAll(v.netDir)
		}
		return nil, fmt.Errorf("machine: %w", err)
	}

	if cfg.Network == NetworkIsolated {
		if v.netDir, v.passtUser, err = netSocketDir(filepath.Dir(dir)); err != nil {
			return fail(fmt.Errorf("passt's directory: %w", err))
		}
		v.dns = guestResolvers(resolvConfs)
		if len(v.dns) == 0 {
			log.Warn("no non-loopback DNS resolver in this host's resolv.conf: the build VM gets no DNS server")
		}
	}
	signer, hostPub, err := v.writeIdentity()
	if err != nil {
		return fail(err)
	}
	for i, it := range cfg.FwCfg {
		p := filepath.Join(dir, fmt.Sprintf("fwcfg-%d", i))
		if err := os.WriteFile(p, it.Data, 0o600); err != nil {
			return fail(err)
		}
		v.fwcfg = append(v.fwcfg, fwCfgFile{Name: it.Name, File: p})
	}

	v.boot = 1
	inst, err := v.launch(ctx, true)
	if err != nil {
		return fail(err)
	}
	v.inst = inst
	v.comm = newComm(commConfig{
		User: cfg.User, Signer: signer, HostKey: hostPub,
		Addr: v.sshAddr, Machine: v, Logger: log,
	})
	v.superDone = make(chan struct{})
	go v.supervise()
	if r := cfg.Restore; r != nil {
		start := time.Now()
		err := loadState(ctx, inst.qmp, r.StateFile)
		if err == nil {
			err = v.adopt(ctx, r.Identity)
		}
		if err != nil {
			v.Close()
			return nil, fmt.Errorf("machine: restore %s: %w", r.StateFile, err)
		}
		log.Info("restored a saved VM state", "state", r.StateFile, "took", time.Since(start).Round(time.Millisecond))
	}
	return v, nil
}

// writeIdentity makes the per-VM SSH client key and host key and writes the
// guest agent's fw_cfg files.
func (v *VM) writeIdentity() (ssh.Signer, ssh.PublicKey, error) {
	_, clientKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(clientKey)
	if err != nil {
		return nil, nil, err
	}
	clientBlock, err := ssh.MarshalPrivateKey(clientKey, "goldsmith build VM")
	if err != nil {
		return nil, nil, err
	}
	v.clientKeyPEM = pem.EncodeToMemory(clientBlock)
	v.signer = signer
	hostPubRaw, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	hostPub, err := ssh.NewPublicKey(hostPubRaw)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(hostKey, "")
	if err != nil {
		return nil, nil, err
	}
	v.hostPub, v.hostKeyPEM = hostPub, pem.EncodeToMemory(block)
	items := []struct {
		item string
		data []byte
	}{
		{guestagent.ItemUser, []byte(v.cfg.User)},
		{guestagent.ItemAuthorizedKeys, ssh.MarshalAuthorizedKey(signer.PublicKey())},
		{guestagent.ItemHostKey, v.hostKeyPEM},
	}
	for _, it := range items {
		p := filepath.Join(v.dir, it.item)
		if err := os.WriteFile(p, it.data, 0o600); err != nil {
			return nil, nil, err
		}
		v.fwcfg = append(v.fwcfg, fwCfgFile{Name: guestagent.FwCfgName(it.item), File: p})
	}
	return signer, hostPub, nil
}

// ClientKeyFile writes the build user's private SSH key into dir (mode 0600)
// and returns its path, so a person can log in to a VM kept for inspection.
func (v *VM) ClientKeyFile(dir string) (string, error) {
	p := filepath.Join(dir, "build-vm-key")
	if err := os.WriteFile(p, v.clientKeyPEM, 0o600); err != nil {
		return "", fmt.Errorf("machine: write key: %w", err)
	}
	return p, nil
}

func (v *VM) sshAddr() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("127.0.0.1:%d", v.port)
}

// launch starts one QEMU process and connects to its QMP socket. The SSH
// port is kept across restarts if it is still free.
func (v *VM) launch(ctx context.Context, first bool) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v.mu.Lock()
	port, boot := v.port, v.boot
	v.mu.Unlock()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if port == 0 || attempt > 0 {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			port = p
		}
		inv := v.invocation(first, port, boot)
		if err := v.prepareRAM(ctx, inv.Incoming); err != nil {
			return nil, err
		}
		inst, err := v.startInstance(ctx, inv)
		if err == nil {
			v.mu.Lock()
			v.port = port
			v.instBoot = bootArgs{Kernel: inv.Kernel, Initrd: inv.Initrd, Cmdline: inv.Cmdline}
			if inv.Incoming && v.ramFile != "" {
				v.shadowOf = inst // prepareRAM made the shadow
			}
			v.mu.Unlock()
			return inst, nil
		}
		lastErr = err
		if !errors.Is(err, errPortBusy) {
			return nil, err
		}
	}
	return nil, lastErr
}

// invocation is the QEMU command line of one boot: the first boot uses
// direct kernel boot if configured, a restart after a guest reboot only with
// RestartWithKernel.
func (v *VM) invocation(first bool, port, boot int) qemuInvocation {
	v.mu.Lock()
	disk, format := v.cfg.Disk, v.cfg.DiskFormat
	v.mu.Unlock()
	inv := qemuInvocation{
		Accel: v.accel, CPUModel: v.cfg.CPUModel, CPUs: v.cfg.CPUs, MemoryMiB: v.cfg.MemoryMiB,
		Disk: disk, DiskFormat: format, Incoming: first && v.cfg.Restore != nil, RAMFile: v.ramFile,
		SSHPort: port, QMPSocket: filepath.Join(v.dir, fmt.Sprintf("qmp-%d.sock", boot)),
		FwCfg: v.fwcfg,
	}
	if v.netDir != "" {
		inv.NetSocket = filepath.Join(v.netDir, fmt.Sprintf("passt-%d.sock", boot))
	}
	if first || v.cfg.RestartBoot == RestartWithKernel {
		inv.Kernel, inv.Initrd, inv.Cmdline = v.cfg.Kernel, v.cfg.Initrd, v.cfg.Cmdline
	} else if v.restart != nil {
		inv.Kernel, inv.Initrd, inv.Cmdline = v.restart.Kernel, v.restart.Initrd, v.restart.Cmdline
	}
	return inv
}

var errPortBusy = errors.New("SSH forwarding port in use")

// NetPIDFile is where passt's pid is recorded for a VM whose QEMU's goes to
// qemuPIDFile (Config.PIDFile).
func NetPIDFile(qemuPIDFile string) string {
	return strings.TrimSuffix(qemuPIDFile, ".pid") + "-passt.pid"
}

func (v *VM) startInstance(ctx context.Context, inv qemuInvocation) (*instance, error) {
	inst := &instance{exited: make(chan struct{})}
	if inv.NetSocket != "" {
		// A socket left by the passt of an earlier attempt or boot.
		_ = os.Remove(inv.NetSocket)
		pidFile := ""
		if v.cfg.PIDFile != "" {
			pidFile = NetPIDFile(v.cfg.PIDFile)
		}
		start := time.Now()
		n, err := startPasst(ctx, v.cfg.Runner, v.cfg.Passt, passtConfig{
			Socket: inv.NetSocket, SSHPort: inv.SSHPort, DNS: v.dns, RunAs: v.passtUser}, pidFile)
		if err != nil {
			return nil, err
		}
		v.log.Info("started passt", "pid", n.proc.Pid(), "socket", inv.NetSocket, "took", time.Since(start).Round(time.Millisecond))
		inst.net = n
	}
	inst.sshStarted = make(chan struct{})
	console := v.conOut
	var marker *markerWriter
	if inst.net == nil || inv.Incoming {
		close(inst.sshStarted)
	} else {
		marker = &markerWriter{markers: sshStartedMarkers, found: make(chan struct{})}
		console = io.MultiWriter(v.conOut, marker)
	}
	cmd := Command{Path: v.cfg.QEMU, Args: inv.args(), Stdout: console, Stderr: &inst.stderr}
	v.log.Info("starting qemu", "cmd", cmd.String())
	proc, err := v.cfg.Runner.Start(cmd)
	if err != nil {
		if inst.net != nil {
			inst.net.stop()
		}
		return nil, err
	}
	inst.proc = proc
	if v.cfg.PIDFile != "" {
		if err := WritePIDFile(v.cfg.PIDFile, proc.Pid()); err != nil {
			v.log.Warn("write pid file", "path", v.cfg.PIDFile, "err", err)
		}
	}
	if marker != nil {
		go func() {
			t := time.NewTimer(sshStartedFallback)
			defer t.Stop()
			select {
			case <-marker.found:
			case <-t.C:
				v.log.Info("the guest's console has not shown its SSH server starting; trying SSH anyway", "after", sshStartedFallback)
			case <-inst.exited:
			}
			close(inst.sshStarted)
		}()
	}
	go func() {
		inst.waitErr = proc.Wait()
		if inst.net != nil {
			// Gone by itself (--one-off) once QEMU closed its socket.
			inst.net.stop()
		}
		close(inst.exited)
	}()
	onEvent := func(ev qmpEvent) {
		if ev.Event != "SHUTDOWN" {
			return
		}
		var d struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(ev.Data, &d)
		v.log.Info("qemu shutdown event", "reason", d.Reason, "pid", proc.Pid())
		inst.mu.Lock()
		inst.reason = d.Reason
		inst.mu.Unlock()
	}
	q, err := dialQMP(ctx, inv.QMPSocket, inst.alive, onEvent)
	if err != nil {
		_ = proc.Signal(syscall.SIGKILL)
		<-inst.exited
		msg := strings.TrimSpace(inst.stderr.String())
		if strings.Contains(msg, "host forwarding rule") {
			return nil, fmt.Errorf("%w: %s", errPortBusy, msg)
		}
		return nil, fmt.Errorf("starting qemu: %w: %s", err, msg)
	}
	inst.qmp = q
	// QEMU's default migration bandwidth cap is meant for networks; a
	// checkpoint writes to a local file. Set it at start: set just before
	// a migration, it does not apply to that migration's first pass.
	if _, err := q.execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(64) << 30}); err != nil {
		v.log.Warn("migration bandwidth", "err", err)
	}
	if inv.RAMFile != "" {
		// Memory in the shared file is not migrated: checkpoints copy the
		// file, restores map a copy.
		if _, err := q.execute(ctx, "migrate-set-capabilities", map[string]any{
			"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}}}); err != nil {
			_ = proc.Signal(syscall.SIGKILL)
			<-inst.exited
			return nil, fmt.Errorf("starting qemu: %w", err)
		}
	}
	return inst, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// setState changes the state and wakes waiters. v.mu must be held.
func (v *VM) setState(s State, err error) {
	v.state, v.err = s, err
	close(v.changed)
	v.changed = make(chan struct{})
}

// Status returns the VM's current state.
func (v *VM) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	kernel := v.cfg.Kernel != ""
	if v.boot > 1 {
		kernel = v.cfg.RestartBoot == RestartWithKernel || v.restart != nil
	}
	st := Status{State: v.state, Boot: v.boot, Err: v.err, KernelBoot: kernel, Changed: v.changed}
	if v.inst != nil {
		st.SSHStarted = v.inst.sshStarted
	}
	return st
}

// Accel is the accelerator the VM runs under.
func (v *VM) Accel() Accel { return v.accel }

// SSHAddr is the host address forwarded to the guest's port 22. It can
// change when QEMU is restarted after a reboot.
func (v *VM) SSHAddr() string { return v.sshAddr() }

// Comm is the VM's SSH communicator.
func (v *VM) Comm() *Comm { return v.comm }

// ConsoleTail returns the last 8 KiB of the serial console.
func (v *VM) ConsoleTail() string { return v.console.String() }

// supervise waits for each QEMU process to exit and decides what that
// means: a guest reset restarts QEMU on the same disk, a guest power-off
// stops the VM, anything else fails it.
func (v *VM) supervise() {
	defer close(v.superDone)
	for {
		v.mu.Lock()
		inst := v.inst
		v.mu.Unlock()
		<-inst.exited
		// QEMU closes the QMP socket as it exits; drain the last events.
		select {
		case <-inst.qmp.done:
		case <-time.After(2 * time.Second):
		}
		inst.qmp.close()
		reason := inst.shutdownReason()
		v.log.Info("qemu exited", "pid", inst.proc.Pid(), "reason", reason, "err", inst.waitErr)

		v.mu.Lock()
		switch {
		case v.closing:
			v.mu.Unlock()
			return
		case reason == "guest-shutdown" || v.stopping:
			v.setState(StateStopped, nil)
			v.mu.Unlock()
			return
		case reason != "guest-reset":
			v.setState(StateFailed, fmt.Errorf("qemu exited unexpectedly (%v, shutdown reason %q): %s",
				inst.waitErr, reason, strings.TrimSpace(inst.stderr.String())))
			v.mu.Unlock()
			return
		}
		v.boot++
		v.setState(StateRebooting, nil)
		v.mu.Unlock()

		v.log.Info("guest rebooted; starting qemu again", "boot", v.Status().Boot)
		v.readRestartBoot(v.superCtx)
		next, err := v.launch(v.superCtx, false)

		v.mu.Lock()
		if v.closing {
			v.mu.Unlock()
			if next != nil {
				_ = next.proc.Signal(syscall.SIGKILL)
				<-next.exited
				next.qmp.close()
			}
			return
		}
		if err != nil {
			v.setState(StateFailed, fmt.Errorf("restarting qemu after a guest reboot: %w", err))
			v.mu.Unlock()
			return
		}
		if v.stopping { // Shutdown was called while the guest rebooted
			v.mu.Unlock()
			_ = next.proc.Signal(syscall.SIGKILL)
			<-next.exited
			next.qmp.close()
			v.mu.Lock()
			v.setState(StateStopped, nil)
			v.mu.Unlock()
			return
		}
		v.inst = next
		v.setState(StateRunning, nil)
		v.mu.Unlock()
	}
}

// readRestartBoot decides how the next restart boots: with
// RestartFromBootConfig, from the boot configuration on the disk if it can
// be read, else through the disk's bootloader. QEMU has exited, so the disk
// is quiescent.
func (v *VM) readRestartBoot(ctx context.Context) {
	var next *KernelBoot
	if v.cfg.RestartBoot == RestartFromBootConfig {
		read := v.cfg.ReadBootConfig
		if read == nil {
			read = ReadGrubBootConfig
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		start := time.Now()
		v.mu.Lock()
		disk, format := v.cfg.Disk, v.cfg.DiskFormat
		v.mu.Unlock()
		b, err := read(ctx, disk, format, filepath.Join(v.dir, "boot"))
		cancel()
		if err != nil {
			v.log.Warn("cannot tell what the disk's bootloader would boot; restarting through it (BIOS and GRUB)", "err", err)
		} else {
			v.log.Info("restarting with direct kernel boot from the disk's boot configuration",
				"entry", b.Entry, "kernel", b.Kernel, "initrd", b.Initrd, "cmdline", b.Cmdline,
				"took", time.Since(start).Round(time.Millisecond))
			next = &b
		}
	}
	v.mu.Lock()
	v.restart = next
	v.mu.Unlock()
}

// waitStopped waits until QEMU has exited for good.
func (v *VM) waitStopped(ctx context.Context) error {
	for {
		st := v.Status()
		if st.State == StateStopped || st.State == StateFailed || st.State == StateClosed {
			return nil
		}
		select {
		case <-st.Changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Shutdown asks the guest to power off (sudo systemctl poweroff over SSH if
// connected, and ACPI power button through QMP) and waits for QEMU to exit.
// If the guest has not powered off when ctx ends (default deadline 3
// minutes), QEMU is killed and an error returned. A guest reboot during
// Shutdown ends the VM instead of restarting it.
func (v *VM) Shutdown(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
	}
	v.mu.Lock()
	state, inst := v.state, v.inst
	v.stopping = true
	v.mu.Unlock()
	switch state {
	case StateStopped:
		return nil
	case StateFailed:
		return fmt.Errorf("machine: shutdown: %w", v.Status().Err)
	case StateClosed:
		return errors.New("machine: shutdown: VM is closed")
	}
	start := time.Now()
	// Both ways, always: after generalize the build user (and its sudo) may
	// be gone while its SSH session still works, so the SSH request can fail
	// silently; the ACPI power button reaches systemd-logind regardless.
	if v.comm.requestPoweroff(ctx) {
		v.log.Info("asked the guest to power off over SSH")
	}
	if inst != nil && inst.alive() {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := inst.qmp.execute(qctx, "system_powerdown", nil)
		cancel()
		v.log.Info("asked the guest to power off through ACPI", "err", err)
	}
	if err := v.waitStopped(ctx); err != nil {
		v.mu.Lock()
		inst = v.inst
		v.mu.Unlock()
		_ = inst.proc.Signal(syscall.SIGKILL)
		<-inst.exited
		_ = v.waitStopped(context.Background())
		return fmt.Errorf("machine: guest did not power off within %s; qemu killed", time.Since(start).Round(time.Second))
	}
	if st := v.Status(); st.State == StateFailed {
		return fmt.Errorf("machine: shutdown: %w", st.Err)
	}
	v.log.Info("guest powered off", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// WaitPowerOff waits for a guest that was asked from inside to power off
// (customize.Options.PowerOff) to stop. If it has not within grace, it
// powers the guest off as Shutdown does. A reboot instead of the power-off
// ends the VM, as during Shutdown.
func (v *VM) WaitPowerOff(ctx context.Context, grace time.Duration) error {
	v.mu.Lock()
	v.stopping = true
	v.mu.Unlock()
	start := time.Now()
	gctx, cancel := context.WithTimeout(ctx, grace)
	err := v.waitStopped(gctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("machine: waiting for the guest to power off: %w", ctx.Err())
		}
		v.log.Warn("the guest did not power off on its own; asking it as Shutdown does", "waited", grace)
		return v.Shutdown(ctx)
	}
	if st := v.Status(); st.State == StateFailed {
		return fmt.Errorf("machine: power-off: %w", st.Err)
	}
	v.log.Info("guest powered off", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// closeGrace is how long Close lets QEMU exit on SIGTERM before SIGKILL.
const closeGrace = 3 * time.Second

// Close stops QEMU if it still runs (SIGTERM, SIGKILL after a grace
// period), reaps it, closes SSH and removes the VM's temp dir. It is
// idempotent and safe on every path.
func (v *VM) Close() error {
	v.closeOnce.Do(func() {
		v.mu.Lock()
		v.closing = true
		inst := v.inst
		if v.state != StateClosed {
			v.setState(StateClosed, nil)
		}
		v.mu.Unlock()
		v.cancel()
		v.comm.close()
		if inst != nil && inst.alive() {
			_ = inst.proc.Signal(syscall.SIGTERM)
			select {
			case <-inst.exited:
			case <-time.After(closeGrace):
				_ = inst.proc.Signal(syscall.SIGKILL)
				<-inst.exited
			}
		}
		if v.superDone != nil {
			<-v.superDone
		}
		_ = v.waitShadow()
		if err := os.RemoveAll(v.dir); err != nil {
			v.closeErr = fmt.Errorf("machine: removing %s: %w", v.dir, err)
		}
		if v.netDir != "" {
			if err := os.RemoveAll(v.netDir); err != nil && v.closeErr == nil {
				v.closeErr = fmt.Errorf("machine: removing %s: %w", v.netDir, err)
			}
		}
	})
	return v.closeErr
}
