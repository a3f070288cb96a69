package machine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
)

// Identity is what reaches a guest's SSH: the build user, its private key,
// and the host key the client pins. A saved VM state carries the identity of
// the VM that saved it; a VM restored from it replaces that identity with its
// own before anything else runs (see Restore).
type Identity struct {
	User         string `json:"user"`
	ClientKeyPEM []byte `json:"clientKey"`
	HostKey      string `json:"hostKey"` // authorized_keys format
}

// Identity returns the VM's build identity.
func (v *VM) Identity() Identity {
	return Identity{User: v.cfg.User, ClientKeyPEM: v.clientKeyPEM, HostKey: string(ssh.MarshalAuthorizedKey(v.hostPub))}
}

// Restore starts a VM from a saved state instead of booting it.
type Restore struct {
	// StateFile is the guest's memory and device state (Checkpoint's
	// StateFile). Config.Disk must be an overlay over the disk frozen with
	// it, and Config's CPUs, memory, accelerator, CPU model and boot mode
	// must equal those of the VM that saved it: QEMU refuses, or worse,
	// misreads a state saved with another device line.
	StateFile string
	// Memory lists the files the guest's memory is made of, oldest first:
	// the first whole, each next one a delta (Saved.MemoryDelta) over the
	// ones before it. Empty: StateFile's own memory file, whole.
	Memory []string
	// Identity reaches the restored guest; it is replaced at once by the new
	// VM's own, so two VMs restored from one state share no key.
	Identity Identity
}

// Checkpoint describes one checkpoint of a running VM.
type Checkpoint struct {
	// NewDisk is the qcow2 overlay QEMU creates over the current disk, which
	// is frozen from then on: the VM writes to NewDisk, and after a guest
	// reboot QEMU is started on NewDisk.
	NewDisk string
	// StateFile, when set, receives the guest's memory and device state at
	// the same instant, so the pair can be restored later (Restore).
	StateFile string
}

// MemoryFile is where a checkpoint saves the guest's memory for stateFile.
func MemoryFile(stateFile string) string { return stateFile + ramSuffix }

// Saved is the outcome of a checkpoint.
type Saved struct {
	Disk      string // the frozen disk (the VM's disk before the checkpoint)
	StateFile string // empty without a state
	// Kernel, Initrd and Cmdline are the direct kernel boot of the QEMU
	// process that saved the state (empty: it booted through firmware); a
	// restore must start QEMU the same way.
	Kernel, Initrd, Cmdline string
	Identity                Identity
	// MemoryDelta: the memory file holds only the pages that changed since
	// this VM's previous checkpoint, or since its restore; a restore must
	// lay it over those (Restore.Memory). MemoryChanged is how many bytes
	// that is.
	MemoryDelta   bool
	MemoryChanged int64
	Took          time.Duration
}

// Checkpoint pauses the guest, freezes its disk (and, with StateFile, its
// memory) at that instant, and lets it run on. The guest notices nothing but
// the pause. It is the base of the build's layer cache and booted-VM
// snapshots.
func (v *VM) Checkpoint(ctx context.Context, c Checkpoint) (Saved, error) {
	start := time.Now()
	v.mu.Lock()
	inst, state, frozen := v.inst, v.state, v.cfg.Disk
	boot := v.instBoot
	v.mu.Unlock()
	if state != StateRunning || inst == nil || !inst.alive() {
		return Saved{}, fmt.Errorf("machine: checkpoint: the VM is %s", state)
	}
	if c.NewDisk == "" {
		return Saved{}, errors.New("machine: checkpoint: no new disk")
	}
	q := inst.qmp
	if _, err := q.execute(ctx, "stop", nil); err != nil {
		return Saved{}, fmt.Errorf("machine: checkpoint: pause: %w", err)
	}
	resumed := false
	resume := func() error {
		if resumed {
			return nil
		}
		resumed = true
		// A paused guest would stall the build for good: resume even when
		// ctx has ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, err := q.execute(rctx, "cont", nil)
		return err
	}
	defer resume()

	if _, err := q.execute(ctx, "blockdev-snapshot-sync", map[string]any{
		"device": driveID, "snapshot-file": c.NewDisk, "format": "qcow2", "mode": "absolute-paths",
	}); err != nil {
		return Saved{}, fmt.Errorf("machine: checkpoint: freeze the disk: %w", err)
	}
	v.mu.Lock()
	v.cfg.Disk, v.cfg.DiskFormat = c.NewDisk, "qcow2"
	v.mu.Unlock()

	saved := Saved{Disk: frozen, Kernel: boot.Kernel, Initrd: boot.Initrd, Cmdline: boot.Cmdline, Identity: v.Identity()}
	if c.StateFile != "" {
		if err := saveState(ctx, v.log, q, c.StateFile); err != nil {
			return Saved{}, fmt.Errorf("machine: checkpoint: %w", err)
		}
		if v.ramFile != "" {
			// The memory is not in the state: save its file, while the
			// guest is paused.
			if err := v.waitShadow(); err != nil {
				v.log.Warn("no shadow of the restored memory: saving it whole", "err", err)
				v.mu.Lock()
				v.shadowOf = nil
				v.mu.Unlock()
			}
			v.mu.Lock()
			haveShadow := v.shadowOf == inst
			v.shadowOf = nil
			v.mu.Unlock()
			delta, changed, err := saveMemory(ctx, v.ramFile, v.shadowFile(), haveShadow, MemoryFile(c.StateFile))
			if err != nil {
				os.Remove(c.StateFile)
				return Saved{}, fmt.Errorf("machine: checkpoint: save the guest's memory: %w", err)
			}
			v.mu.Lock()
			v.shadowOf = inst
			v.mu.Unlock()
			saved.MemoryDelta, saved.MemoryChanged = delta, changed
		}
		saved.StateFile = c.StateFile
	}
	if err := resume(); err != nil {
		return Saved{}, fmt.Errorf("machine: checkpoint: resume: %w", err)
	}
	saved.Took = time.Since(start)
	v.log.Info("checkpoint", "frozen", frozen, "state", c.StateFile, "took", saved.Took.Round(time.Millisecond))
	return saved, nil
}

// saveState migrates the paused guest into a file. The file appears only
// when it is complete.
func saveState(ctx context.Context, log *slog.Logger, q *qmpConn, path string) error {
	tmp := path + ".partial"
	defer os.Remove(tmp)
	if _, err := q.execute(ctx, "migrate", map[string]any{"uri": "exec:cat > " + shellquote.Quote(tmp)}); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	stats, err := waitMigration(ctx, q)
	if err != nil {
		_, _ = q.execute(context.WithoutCancel(ctx), "migrate_cancel", nil)
		return fmt.Errorf("save state: %w", err)
	}
	log.Debug("state saved", "stats", string(stats))
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// waitMigration polls a migration (outgoing or incoming) until it ends.
func waitMigration(ctx context.Context, q *qmpConn) (json.RawMessage, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		raw, err := q.execute(ctx, "query-migrate", nil)
		if err != nil {
			return nil, err
		}
		var m struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("query-migrate: %w", err)
		}
		switch m.Status {
		case "completed":
			return raw, nil
		case "failed", "cancelled":
			return nil, fmt.Errorf("migration %s: %s", m.Status, m.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// loadState feeds a saved state into a QEMU started with -incoming defer and
// -S, and starts the guest.
func loadState(ctx context.Context, q *qmpConn, path string) error {
	if _, err := q.execute(ctx, "migrate-incoming", map[string]any{"uri": "exec:cat " + shellquote.Quote(path)}); err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		raw, err := q.execute(ctx, "query-status", nil)
		if err != nil {
			return fmt.Errorf("load state: %w", err)
		}
		var s struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(raw, &s)
		if s.Status != "inmigrate" {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("load state: %w", ctx.Err())
		case <-t.C:
		}
	}
	if raw, err := q.execute(ctx, "query-migrate", nil); err == nil {
		var m struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if json.Unmarshal(raw, &m) == nil && m.Status == "failed" {
			return fmt.Errorf("load state: %s", m.ErrorDesc)
		}
	}
	if _, err := q.execute(ctx, "cont", nil); err != nil {
		return fmt.Errorf("load state: start the guest: %w", err)
	}
	return nil
}

// adopt takes over a restored guest: it logs in with the identity the state
// was saved with, and replaces it by this VM's own (authorized key and host
// key), sets the guest's clock, which stopped when the state was saved, and
// stirs fresh host randomness into the guest's pool (vmgenid also tells a
// Linux guest to reseed).
func (v *VM) adopt(ctx context.Context, old Identity) error {
	signer, err := ssh.ParsePrivateKey(old.ClientKeyPEM)
	if err != nil {
		return fmt.Errorf("the saved identity's key: %w", err)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(old.HostKey))
	if err != nil {
		return fmt.Errorf("the saved identity's host key: %w", err)
	}
	if old.User != v.cfg.User {
		return fmt.Errorf("the state was saved for user %q, not %q", old.User, v.cfg.User)
	}
	// The adopt script reads the boot_id itself, in the same session.
	c := newComm(commConfig{User: old.User, Signer: signer, HostKey: hostKey, Addr: v.sshAddr, Machine: v, Logger: v.log, NoBootID: true})
	defer c.close()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitForSSH(wctx); err != nil {
		return fmt.Errorf("reaching the restored guest: %w", err)
	}
	seed := make([]byte, 64)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	var in bytes.Buffer
	now := time.Now()
	fmt.Fprintf(&in, "%d.%09d\n", now.Unix(), now.Nanosecond())
	in.Write(ssh.MarshalAuthorizedKey(v.signer.PublicKey()))
	fmt.Fprintf(&in, "%s\n", hex.EncodeToString(seed))
	in.Write(ssh.MarshalAuthorizedKey(v.hostPub))
	in.Write(v.hostKeyPEM)
	var out bytes.Buffer
	code, err := c.run(wctx, adoptScript, &in, &out, &out)
	if err != nil {
		return fmt.Errorf("replacing the restored guest's identity: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("replacing the restored guest's identity: exit code %d: %s", code, strings.TrimSpace(out.String()))
	}
	bootID := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, adoptBootID); ok {
			bootID = strings.TrimSpace(rest)
		}
	}
	if bootID == "" {
		return fmt.Errorf("replacing the restored guest's identity: no boot_id in its output: %s", strings.TrimSpace(out.String()))
	}
	// Keep the connection: its session keys are its own, and a handshake
	// costs about a second under emulation. New connections (after a
	// reboot) use the new identity.
	c.mu.Lock()
	client, boot := c.client, c.clientBoot
	c.client = nil
	c.mu.Unlock()
	v.comm.mu.Lock()
	v.comm.client, v.comm.clientBoot, v.comm.bootID = client, boot, bootID
	v.comm.mu.Unlock()
	return nil
}

// adoptBootID precedes the guest's boot_id in adoptScript's output.
const adoptBootID = "goldsmith-boot-id "

// adoptScript reads, from stdin: the time (seconds.nanoseconds since the
// epoch), the new authorized_keys line, a hex seed, the new host public key
// and the new PEM host key. The user's own key it writes itself; the rest
// runs as root, in one sudo that reads the rest of stdin itself (the time
// is its argument; the seed stays out of sudo's log), with shell builtins
// wherever they do: every
// process costs tens of milliseconds under emulation (more in a QEMU just
// started: its translation cache is empty), sudo hundreds. sshd is told to
// reload so new connections see the new host key; the session running this
// script survives the reload. No connection comes in while the files are
// written, so they are written in place. It prints the guest's boot_id
// (adoptBootID), which the connection did not read.
const adoptScript = `set -eu
IFS= read -r id </proc/sys/kernel/random/boot_id
printf '` + adoptBootID + `%s\n' "$id"
IFS= read -r now
IFS= read -r authkey
umask 077
printf '%s\n' "$authkey" >"$HOME/.ssh/authorized_keys"
sudo -n sh -c '
set -eu
now=$1
IFS= read -r seed
IFS= read -r hostpub
hostkey=
while IFS= read -r l; do hostkey="$hostkey$l
"; done
date -u -s "@$now" >/dev/null
printf "%s" "$seed" >/dev/urandom
umask 077
printf "%s" "$hostkey" >/etc/ssh/ssh_host_ed25519_key
umask 022
printf "%s\n" "$hostpub" >/etc/ssh/ssh_host_ed25519_key.pub
if [ -r /run/sshd.pid ]; then read -r pid </run/sshd.pid; kill -HUP "$pid"; else systemctl reload ssh; fi
' goldsmith-adopt "$now"
`

// Disk is the disk the VM writes to now (it changes at every checkpoint).
func (v *VM) Disk() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cfg.Disk
}

// shmDir is where a VM's directory goes when it can: on tmpfs, so the
// guest's memory can be a file there (see qemuInvocation.RAMFile).
const shmDir = "/dev/shm"

// vmDir makes a VM's private directory (QMP sockets, fw_cfg files, boot
// files) and names its memory file, which is empty when there is no tmpfs.
func vmDir() (dir, ramFile string, err error) {
	if memoryOnTmpfs() {
		if dir, err := os.MkdirTemp(shmDir, "goldsmith-vm-"); err == nil {
			return dir, filepath.Join(dir, "ram"), nil
		}
	}
	dir, err = os.MkdirTemp("", "goldsmith-vm-")
	return dir, "", err
}

func memoryOnTmpfs() bool {
	var st syscall.Statfs_t
	return syscall.Statfs(shmDir, &st) == nil && st.Type == tmpfsMagic && syscall.Access(shmDir, 2) == nil
}

const tmpfsMagic = 0x01021994

// StateFormat names how this host saves a VM's memory with its state; a
// state can only be restored where the format is the same.
func StateFormat() string {
	if memoryOnTmpfs() {
		return "memory-file-1"
	}
	return "migration-1"
}

// prepareRAM gives a QEMU process its memory file: a copy of the saved one
// for a restore, else a new, empty one (QEMU creates it), so a restart
// after a guest reboot starts from zeroed memory like a real reboot.
func (v *VM) prepareRAM(ctx context.Context, restore bool) error {
	if v.ramFile == "" {
		return nil
	}
	_ = v.waitShadow() // an earlier attempt's
	if err := os.Remove(v.ramFile); err != nil && !os.IsNotExist(err) {
		return err
	}
	if !restore {
		return nil
	}
	files := v.cfg.Restore.Memory
	if len(files) == 0 {
		files = []string{MemoryFile(v.cfg.Restore.StateFile)}
	}
	if err := loadMemory(ctx, v.ramFile, files); err != nil {
		return fmt.Errorf("restore the guest's memory: %w", err)
	}
	// The next checkpoint saves only what changed from here, so it needs
	// the memory as restored: laid from the same files, in the background
	// (it is a second copy of hundreds of MiB, and the guest is not
	// waiting for it).
	done := make(chan struct{})
	v.mu.Lock()
	v.shadowDone, v.shadowErr = done, nil
	v.mu.Unlock()
	go func() {
		defer close(done)
		if err := loadMemory(v.superCtx, v.shadowFile(), files); err != nil {
			os.Remove(v.shadowFile())
			v.mu.Lock()
			v.shadowErr = fmt.Errorf("shadow copy of the restored memory: %w", err)
			v.mu.Unlock()
		}
	}()
	return nil
}

// waitShadow waits for a shadow being laid in the background, if any, and
// returns its error.
func (v *VM) waitShadow() error {
	v.mu.Lock()
	done := v.shadowDone
	v.mu.Unlock()
	if done == nil {
		return nil
	}
	<-done
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.shadowErr
}

// shadowFile holds the guest's memory as of its last checkpoint or restore
// (see saveMemory); shadowOf names the QEMU process it is valid for.
func (v *VM) shadowFile() string { return v.ramFile + ".shadow" }

// ramSuffix names a saved state's memory file beside the state file.
const ramSuffix = ".ram"

// sweepStaleVMDirs removes VM directories on tmpfs that no process uses: a
// goldsmith killed with its VMs leaves their memory files behind, and tmpfs
// is memory. Directories younger than a minute are left alone (a VM may be
// starting).
func sweepStaleVMDirs(log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(shmDir, "goldsmith-vm-*"))
	nets, _ := filepath.Glob(filepath.Join(shmDir, netDirPrefix+"*"))
	dirs = append(dirs, nets...)
	if len(dirs) == 0 {
		return
	}
	var cmdlines []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil {
			cmdlines = append(cmdlines, string(b))
		}
	}
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		used := false
		for _, c := range cmdlines {
			if strings.Contains(c, d) {
				used = true
				break
			}
		}
		if !used {
			log.Info("removing a build VM's directory left by a process that died", "dir", d)
			os.RemoveAll(d)
		}
	}
}
