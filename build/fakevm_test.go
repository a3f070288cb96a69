package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine"
)

// fakeVM is a build VM without QEMU, for the pipeline's fast tests. It
// records what the build does to it in a journal and answers commands by
// rules: the first rule whose match is found in the command, or in a script
// the command runs (a file uploaded earlier whose path the command names),
// decides the outcome. A command no rule matches succeeds with no output.
//
// Checkpoint makes real qcow2 overlays (qemu-img), and the starter honours
// machine.Config.Restore (the state file must exist), for the layer cache's
// tests.
//
// It speaks the protocol customize's runner relies on: a command that starts
// with "printf '%s\n' MARKER;" prints MARKER first, as the shell would, so
// the runner knows the command started; a rebooting rule bumps the boot
// counter and ends the session with a *machine.RebootError, as machine's
// communicator does, so machine.Guest sees the reboot the way it sees a real
// one.
type fakeVM struct {
	cfg     machine.Config
	journal *journal
	rules   []rule
	// sshWait, if set, is how WaitForSSH behaves (for boot failures and
	// hangs); nil answers at once.
	sshWait func(ctx context.Context) error

	mu       sync.Mutex
	state    machine.State
	boot     int
	changed  chan struct{}
	uploads  map[string][]byte
	closed   int
	shutdown int
}

// rule scripts the fake's answer to a command.
type rule struct {
	match  string
	stdout string
	exit   int
	err    error // returned as the transport's error
	// hang blocks until ctx ends, as a command that never finishes does.
	hang bool
	// reboot ends the session because the guest rebooted.
	reboot bool
	// started, if set, is closed when a matching command starts (once).
	started chan struct{}
}

// defaultRules answer the commands every build sends whose output matters:
// generalize's first pass (which method; the builtin one then asks the
// guest to power off).
var defaultRules = []rule{
	{match: " goldsmith-generalize auto ", stdout: "goldsmith-customize:generalize-method builtin " + BuildUser + "\n" +
		"generalized\ngoldsmith-customize:powering-off\n"},
}

func newFakeVM(cfg machine.Config, j *journal, rules []rule) *fakeVM {
	return &fakeVM{cfg: cfg, journal: j, rules: append(append([]rule{}, rules...), defaultRules...),
		boot: 1, changed: make(chan struct{}), uploads: map[string][]byte{}}
}

// setState changes the state and wakes waiters. v.mu must be held.
func (v *fakeVM) setState(s machine.State) {
	v.state = s
	close(v.changed)
	v.changed = make(chan struct{})
}

func (v *fakeVM) Status() machine.Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	return machine.Status{State: v.state, Boot: v.boot, Changed: v.changed}
}

func (v *fakeVM) usable() error {
	switch v.Status().State {
	case machine.StateClosed:
		return machine.ErrClosed
	case machine.StateStopped:
		return machine.ErrPoweredOff
	}
	return nil
}

func (v *fakeVM) WaitForSSH(ctx context.Context) error {
	if err := v.usable(); err != nil {
		return err
	}
	if v.sshWait != nil {
		return v.sshWait(ctx)
	}
	return nil
}

func (v *fakeVM) Upload(ctx context.Context, r io.Reader, remotePath string, mode fs.FileMode) error {
	if err := v.usable(); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.uploads[remotePath] = b
	v.mu.Unlock()
	v.journal.add("upload " + remotePath)
	return nil
}

// script is what command runs: the command itself and every uploaded file
// it names. name is how the journal calls it: "script PATH: FIRST LINE" for
// a command that runs an uploaded script (its random part as *), else the
// command's first line.
func (v *fakeVM) script(command string) (script, name, rest string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	script = command
	// A step's script written from a here-document (customize's
	// writeInline) counts as uploaded.
	if m := inlineScript.FindStringSubmatch(command); m != nil {
		body := command[len(m[0]):]
		if i := strings.Index(body, "\n"+m[2]+"\n"); i >= 0 {
			v.uploads[m[1]] = []byte(body[:i+1])
			command = body[i+len(m[2])+2:]
		}
	}
	rest = command
	name, _, _ = strings.Cut(command, "\n")
	// customize's generalize script comes as a here-document after a
	// long sudo line: name it by its mode.
	if _, rest, ok := strings.Cut(name, " goldsmith-generalize "); ok {
		mode, _, _ := strings.Cut(rest, " ")
		name = "generalize " + mode
	}
	for path, b := range v.uploads {
		if !strings.Contains(command, path) {
			continue
		}
		script += "\n" + string(b)
		first := ""
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && !strings.HasPrefix(l, "#!") {
				first = l
				break
			}
		}
		name = "script " + randomPart.ReplaceAllString(path, "-*") + ": " + first
	}
	return script, name, rest
}

// inlineScript is the line before a step's script in a here-document: the
// script's path and the delimiter.
var inlineScript = regexp.MustCompile(`^\(set -C && umask 077 && exec cat >'?([^' )]+)'?\) <<'(GOLDSMITH_SCRIPT_[0-9a-f]+)'[^\n]*\n`)

// randomPart is the random part of the runner's upload names
// (/tmp/goldsmith-<index>-<hex>.sh).
var randomPart = regexp.MustCompile(`-[0-9a-f]{12}`)

func (v *fakeVM) Run(ctx context.Context, command string, stdout, stderr io.Writer) (int, error) {
	if err := v.usable(); err != nil {
		return -1, err
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	if stdout == nil {
		stdout = io.Discard
	}
	script, name, command := v.script(command)
	v.journal.add("run " + name)
	if rest, ok := strings.CutPrefix(command, `printf '%s\n' `); ok {
		if marker, _, ok := strings.Cut(rest, ";"); ok {
			fmt.Fprintln(stdout, marker)
		}
	}
	for i := range v.rules {
		r := &v.rules[i]
		if !strings.Contains(script, r.match) {
			continue
		}
		if r.started != nil {
			v.mu.Lock()
			select {
			case <-r.started:
			default:
				close(r.started)
			}
			v.mu.Unlock()
		}
		io.WriteString(stdout, r.stdout)
		switch {
		case r.hang:
			<-ctx.Done()
			return -1, fmt.Errorf("command cancelled: %w", ctx.Err())
		case r.reboot:
			v.mu.Lock()
			v.boot++
			boot := v.boot
			v.setState(machine.StateRunning)
			v.mu.Unlock()
			v.journal.add(fmt.Sprintf("reboot (boot %d)", boot))
			return -1, &machine.RebootError{Started: true, Boot: boot}
		case r.err != nil:
			return -1, r.err
		}
		return r.exit, nil
	}
	return 0, nil
}

func (v *fakeVM) Shutdown(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.shutdown++
	if v.state == machine.StateClosed {
		return errors.New("machine: shutdown: VM is closed")
	}
	v.setState(machine.StateStopped)
	v.journal.add("shutdown")
	return nil
}

// WaitPowerOff: the fake guest powers off as it said it would.
func (v *fakeVM) WaitPowerOff(ctx context.Context, grace time.Duration) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.state == machine.StateClosed {
		return errors.New("machine: power-off: VM is closed")
	}
	v.setState(machine.StateStopped)
	v.journal.add("power-off")
	return nil
}

// Close records whether the VM's disk still existed: the VM must be gone
// before the work dir under it is removed.
func (v *fakeVM) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed++
	if v.state != machine.StateClosed {
		v.setState(machine.StateClosed)
	}
	what := "close"
	if _, err := os.Stat(v.cfg.Disk); err != nil {
		what += " (disk already gone)"
	}
	v.journal.add(what)
	return nil
}

// Checkpoint freezes the fake's disk as machine.VM does: a real qcow2
// overlay over the current disk becomes the VM's disk; the state file, if
// asked for, holds a line naming the boot.
func (v *fakeVM) Checkpoint(ctx context.Context, c machine.Checkpoint) (machine.Saved, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.state != machine.StateRunning {
		return machine.Saved{}, fmt.Errorf("machine: checkpoint: the VM is %s", v.state)
	}
	old, format := v.cfg.Disk, v.cfg.DiskFormat
	if err := (disk.QemuImg{Run: disk.Exec{}}).CreateOverlay(ctx, c.NewDisk, old, format, 0); err != nil {
		return machine.Saved{}, fmt.Errorf("machine: checkpoint: freeze the disk: %w", err)
	}
	v.cfg.Disk, v.cfg.DiskFormat = c.NewDisk, "qcow2"
	saved := machine.Saved{Disk: old, Identity: machine.Identity{User: v.cfg.User}}
	if c.StateFile != "" {
		if err := os.WriteFile(c.StateFile, []byte(fmt.Sprintf("fake state, boot %d\n", v.boot)), 0o644); err != nil {
			return machine.Saved{}, fmt.Errorf("machine: checkpoint: %w", err)
		}
		saved.StateFile = c.StateFile
	}
	v.journal.add("checkpoint " + filepath.Base(c.NewDisk))
	return saved, nil
}

func (v *fakeVM) Disk() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cfg.Disk
}

func (v *fakeVM) Accel() machine.Accel { return machine.AccelTCG }
func (v *fakeVM) SSHAddr() string      { return "127.0.0.1:40022" }
func (v *fakeVM) ConsoleTail() string  { return "fake console: login:\n" }

func (v *fakeVM) ClientKeyFile(dir string) (string, error) {
	p := filepath.Join(dir, "client-key")
	return p, os.WriteFile(p, []byte("fake key\n"), 0o600)
}

func (v *fakeVM) counts() (closed, shutdown int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.closed, v.shutdown
}

// journal is the ordered record of what a fake build did.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, s)
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string{}, j.entries...)
}

// has says whether some entry contains s.
func (j *journal) has(s string) bool {
	for _, e := range j.all() {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

func (j *journal) String() string { return strings.Join(j.all(), "\n") }

// fakeStarter starts fake VMs with the given rules and keeps the last one.
type fakeStarter struct {
	journal *journal
	rules   []rule
	sshWait func(ctx context.Context) error
	err     error // StartVM fails with it

	mu sync.Mutex
	vm *fakeVM
}

func (s *fakeStarter) start(ctx context.Context, cfg machine.Config) (VM, error) {
	if r := cfg.Restore; r != nil {
		s.journal.add("start VM from " + filepath.Base(r.StateFile))
		if _, err := os.Stat(r.StateFile); err != nil {
			return nil, fmt.Errorf("machine: restore %s: %w", r.StateFile, err)
		}
	} else {
		s.journal.add("start VM")
	}
	if s.err != nil {
		return nil, s.err
	}
	vm := newFakeVM(cfg, s.journal, s.rules)
	vm.sshWait = s.sshWait
	s.mu.Lock()
	s.vm = vm
	s.mu.Unlock()
	return vm, nil
}

func (s *fakeStarter) last() *fakeVM {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vm
}

// hangUntilDone is an sshWait for a guest that never answers.
func hangUntilDone(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("waiting for SSH: %w", ctx.Err())
}

// waitClosed waits (briefly) for ch, for tests that act when a fake
// command starts.
func waitClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// TestFakeVMCheckpoint: the fake checkpoints and restores as machine.VM
// does, so the layer cache can be tested on it: the VM moves to a real
// overlay over its frozen disk, and a restore needs the saved state.
func TestFakeVMCheckpoint(t *testing.T) {
	base := baseDisk(t)
	dir := t.TempDir()
	first := filepath.Join(dir, "build-disk.qcow2")
	ctx := context.Background()
	qi := disk.QemuImg{Run: disk.Exec{}}
	if err := qi.CreateOverlay(ctx, first, base.Disk, base.DiskFormat, 0); err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	st := &fakeStarter{journal: j}
	vm, err := st.start(ctx, machine.Config{Disk: first, DiskFormat: "qcow2", User: BuildUser})
	if err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(dir, "layer-1.qcow2")
	state := filepath.Join(dir, "layer-1.state")
	saved, err := vm.Checkpoint(ctx, machine.Checkpoint{NewDisk: layer, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	info, err := qi.Info(ctx, layer, "qcow2")
	if err != nil {
		t.Fatal(err)
	}
	if saved.Disk != first || saved.StateFile != state || info.FullBackingFilename != first || vm.Disk() != layer {
		t.Errorf("saved %+v, new disk backed by %q, VM on %q", saved, info.FullBackingFilename, vm.Disk())
	}
	vm.Close()
	if _, err := vm.Checkpoint(ctx, machine.Checkpoint{NewDisk: filepath.Join(dir, "late.qcow2")}); err == nil {
		t.Error("a closed VM checkpointed")
	}
	if _, err := st.start(ctx, machine.Config{Disk: layer, Restore: &machine.Restore{StateFile: state}}); err != nil {
		t.Errorf("restore: %v", err)
	}
	if _, err := st.start(ctx, machine.Config{Disk: layer, Restore: &machine.Restore{StateFile: filepath.Join(dir, "none")}}); err == nil {
		t.Error("restored from a missing state")
	}
	want := "start VM\ncheckpoint layer-1.qcow2\nclose\nstart VM from layer-1.state\nstart VM from none"
	if got := j.String(); got != want {
		t.Errorf("journal:\n%s\nwant\n%s", got, want)
	}
}
