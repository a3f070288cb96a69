package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/template"
)

// BuildUser is the temporary user customizers run as, named as in AIB's
// build VMs so scripts that refer to it keep working.
const BuildUser = "packer"

// bootTimeout bounds the first boot to SSH; powerOffTimeout the power-off
// after generalize.
const (
	bootTimeout     = 10 * time.Minute
	powerOffTimeout = 3 * time.Minute
)

// selfPowerOffGrace is how long a guest that said it is powering off has
// before it is asked again from outside.
const selfPowerOffGrace = time.Minute

func isCanceled(err error) bool { return errors.Is(err, ErrCanceled) }

// resolveSource finds the base image in the catalog.
type resolveSource struct{}

func (*resolveSource) Name() string { return "resolve source" }
func (*resolveSource) Cleanup(*run) {}
func (*resolveSource) Run(ctx context.Context, r *run) error {
	r.setPhase(PhaseBuilding, "resolving the source image")
	src := r.tmpl.Properties.Source
	base, err := r.b.Images.Resolve(ctx, src)
	if err != nil {
		return err
	}
	r.base = base
	r.manifest.OSType = base.OSType
	r.manifest.Source.URN = base.URN
	r.manifest.Source.SHA256 = base.DiskSHA256
	r.manifest.Source.SubstituteFor = base.SubstituteFor
	if i := strings.LastIndex(base.URN, ":"); i >= 0 {
		r.manifest.Source.ExactVersion = base.URN[i+1:]
	}
	msg := fmt.Sprintf("source %s", base.URN)
	if base.SubstituteFor != "" {
		msg += fmt.Sprintf(" (a local substitute for %s)", base.SubstituteFor)
	}
	r.logf("%s, disk sha256 %s", msg, base.DiskSHA256)
	return nil
}

// fetchArtifacts downloads and verifies every script and file before the VM
// starts, as AIB does at submission: a bad checksum costs no build time and
// nothing runs in the guest.
type fetchArtifacts struct{}

func (*fetchArtifacts) Name() string { return "download scripts and files" }
func (*fetchArtifacts) Cleanup(*run) {}
func (*fetchArtifacts) Run(ctx context.Context, r *run) error {
	all := append([]template.Customizer{}, r.tmpl.Properties.Customize...)
	if v := r.tmpl.Properties.Validate; v != nil {
		all = append(all, v.InVMValidations...)
	}
	if len(all) == 0 {
		return nil
	}
	r.logf("downloading and verifying the scripts and files of %d customizers and validators", len(all))
	return r.b.Fetcher.Prefetch(ctx, all)
}

// prepareDisk makes the copy-on-write overlay the build VM writes to.
type prepareDisk struct{}

func (*prepareDisk) Name() string { return "prepare the build disk" }
func (*prepareDisk) Run(ctx context.Context, r *run) error {
	if err := os.MkdirAll(r.req.WorkDir, 0o755); err != nil {
		return err
	}
	size := int64(r.tmpl.Properties.VMProfile.OSDiskSizeGB) << 30
	if size > 0 && size < r.base.VirtualSize {
		return fmt.Errorf("osDiskSizeGB %d is smaller than the source image (%d GiB); disks can only grow",
			r.tmpl.Properties.VMProfile.OSDiskSizeGB, (r.base.VirtualSize+(1<<30)-1)>>30)
	}
	if l := r.layers; l != nil && l.hit != nil {
		// The layer's disk has the grown size already.
		r.overlay = l.nextDisk(r, l.hit.Meta.Step+1)
		if err := r.b.Disks.CreateOverlay(ctx, r.overlay, l.hit.DiskPath(), "qcow2", 0); err != nil {
			return fmt.Errorf("create overlay: %w", err)
		}
		return nil
	}
	return r.overlayOnSource(ctx)
}

// overlayOnSource makes the build disk over the source image, grown to
// osDiskSizeGB: the reserved directory of layer 0 when saving layers.
func (r *run) overlayOnSource(ctx context.Context) error {
	r.overlay = filepath.Join(r.req.WorkDir, "build-disk.qcow2")
	if l := r.layers; l != nil && l.pending != nil {
		r.overlay = l.pending.DiskPath()
	}
	size := r.diskSize()
	if size <= r.base.VirtualSize {
		size = 0
	}
	if err := r.b.Disks.CreateOverlay(ctx, r.overlay, r.base.Disk, r.base.DiskFormat, size); err != nil {
		return fmt.Errorf("create overlay: %w", err)
	}
	if size > 0 {
		r.logf("build disk grown to %d GiB (osDiskSizeGB)", size>>30)
	}
	return nil
}

// diskSize is the build disk's virtual size.
func (r *run) diskSize() int64 {
	return max(int64(r.tmpl.Properties.VMProfile.OSDiskSizeGB)<<30, r.base.VirtualSize)
}

// vmSize is the build VM's vCPUs and memory for the template's vmSize.
func (r *run) vmSize() (machine.Size, error) {
	host, err := machine.HostResources()
	if err != nil {
		return machine.Size{}, err
	}
	size, err := machine.SizeFor(r.tmpl.Properties.VMProfile.EffectiveVMSize(), host)
	if err != nil {
		return machine.Size{}, fmt.Errorf("vmSize: %w", err)
	}
	return size, nil
}

// Cleanup removes the work dir: the overlay and everything derived from it.
func (*prepareDisk) Cleanup(r *run) {
	if err := os.RemoveAll(r.req.WorkDir); err != nil {
		r.logger.Warn("remove work dir", "dir", r.req.WorkDir, "err", err)
	}
}

// bootVM starts the build VM and waits for SSH.
type bootVM struct{}

func (*bootVM) Name() string { return "boot the build VM" }
func (*bootVM) Run(ctx context.Context, r *run) error {
	vmSize := r.tmpl.Properties.VMProfile.EffectiveVMSize()
	size, err := r.vmSize()
	if err != nil {
		return err
	}
	console := r.log.fileOnly("[console] ")
	if r.req.LiveConsole {
		console = r.log.prefixed("[console] ")
	}
	cfg := machine.Config{
		Disk: r.overlay, DiskFormat: "qcow2",
		Kernel: r.base.Kernel, Initrd: r.base.Initrd, Cmdline: r.base.Cmdline,
		CPUs: size.CPUs, MemoryMiB: size.MemoryMiB,
		Accel: r.b.Accel, CacheDir: r.b.CacheDir, Network: r.b.Network,
		Console: console, User: BuildUser, Logger: r.logger,
		// A supervisor that dies mid-run (goldsmith serve, kill -9) finds
		// the VM by this file at its next start and stops it.
		PIDFile: filepath.Join(r.req.WorkDir, "qemu.pid"),
	}
	start := time.Now()
	if l := r.layers; l != nil && l.hit != nil {
		vm, err := r.restoreVM(ctx, cfg)
		if err == nil {
			r.vm = vm
			r.manifest.Accel = string(vm.Accel())
			r.logf("build VM restored from layer %s in %s (%s, %d vCPUs, %d MiB for %s, %s)", l.hit.Meta.Key[:12],
				time.Since(start).Round(100*time.Millisecond), vm.Accel(), size.CPUs, size.MemoryMiB, vmSize, vm.SSHAddr())
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		r.logf("layer cache: restoring layer %s failed: %v; booting the source image instead", l.hit.Meta.Key[:12], err)
		if err := r.dropLayers(ctx); err != nil {
			return err
		}
		cfg.Disk = r.overlay
	}
	vm, err := r.b.StartVM(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start the build VM: %w", err)
	}
	r.vm = vm
	r.manifest.Accel = string(vm.Accel())
	r.logf("build VM started (%s, %d vCPUs, %d MiB for %s, %s); waiting for SSH", vm.Accel(), size.CPUs, size.MemoryMiB, vmSize, vm.SSHAddr())
	wctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if err := vm.WaitForSSH(wctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the build VM did not answer SSH within %s: %w; last console lines:\n%s", bootTimeout, err, lastLines(vm.ConsoleTail(), 15))
	}
	r.logf("SSH is up after %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (*bootVM) Cleanup(r *run) {
	if r.vm == nil {
		return
	}
	if err := r.vm.Close(); err != nil {
		r.logger.Warn("close VM", "err", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// growDisk grows the root partition and filesystem into a disk enlarged by
// osDiskSizeGB, online, from inside the guest.
type growDisk struct{}

func (*growDisk) Name() string { return "grow the root filesystem" }
func (*growDisk) Cleanup(*run) {}
func (*growDisk) Run(ctx context.Context, r *run) error {
	if int64(r.tmpl.Properties.VMProfile.OSDiskSizeGB)<<30 <= r.base.VirtualSize || r.layers.restored() >= 0 {
		return nil
	}
	out := r.log.prefixed("[grow-disk] ")
	defer out.Flush()
	code, err := r.vm.Run(ctx, growScript, out, out)
	if err != nil {
		return fmt.Errorf("grow the root filesystem: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("grow the root filesystem: exit code %d (see the log)", code)
	}
	return nil
}

// growScript finds the root filesystem's partition and grows it and the
// filesystem to the end of the disk.
const growScript = `set -eu
root=$(findmnt -n -o SOURCE /)
disk=/dev/$(lsblk -n -o PKNAME "$root" | head -n1)
part=$(cat /sys/class/block/$(basename "$root")/partition)
echo "growing partition $part of $disk ($root)"
echo ", +" | sudo sfdisk --no-reread --no-tell-kernel -N "$part" "$disk"
sudo partx -u "$disk"
sudo resize2fs "$root"
df -h /`

// customizeStep runs the template's customizers.
type customizeStep struct{}

func (*customizeStep) Name() string { return "customize" }
func (*customizeStep) Cleanup(*run) {}
func (*customizeStep) Run(ctx context.Context, r *run) error {
	if r.sourceValidationOnly() {
		r.logf("validate.sourceValidationOnly is set: the source image is validated as it is; no customization, no generalization, no outputs")
		return nil
	}
	cs := r.tmpl.Properties.Customize
	r.setPhase(PhaseCustomizing, fmt.Sprintf("%d customizers", len(cs)))
	opts := r.customizeOptions()
	if r.layers != nil {
		opts.Skip = max(r.layers.restored(), 0)
		opts.AfterStep = r.afterStep
	}
	steps, err := customize.Run(ctx, machine.NewGuest(r.vm), cs, opts)
	r.manifest.Steps = manifestSteps(steps)
	if err != nil {
		return r.maybeAbort(ctx, "onCustomizerError", err)
	}
	return nil
}

func (r *run) customizeOptions() customize.Options {
	return customize.Options{
		Log:           r.log,
		Fetcher:       r.b.Fetcher,
		ReadyTimeout:  r.b.ReadyTimeout,
		RebootTimeout: r.b.RebootTimeout,
		Progress: func(s customize.Step) {
			r.mu.Lock()
			cur := s
			r.current = &cur
			phase := r.phase
			r.mu.Unlock()
			r.report(Progress{Phase: phase, Step: s.Index, Steps: s.Total, StepName: s.Name, StepType: s.Type,
				Message: stepMessage(s)})
		},
	}
}

func stepMessage(s customize.Step) string {
	switch {
	case !s.Done:
		return fmt.Sprintf("%s %d/%d %q (%s)", s.Kind, s.Index, s.Total, s.Name, s.Type)
	case s.Err != nil:
		return s.Err.Error()
	}
	return fmt.Sprintf("%s %d/%d %q done in %s", s.Kind, s.Index, s.Total, s.Name, s.Duration().Round(100*time.Millisecond))
}

// maybeAbort keeps the build VM for inspection when errorHandling says so.
func (r *run) maybeAbort(ctx context.Context, field string, err error) error {
	eh := r.tmpl.Properties.ErrorHandling
	abort := eh != nil && ((field == "onCustomizerError" && eh.OnCustomizerError == "abort") ||
		(field == "onValidationError" && eh.OnValidationError == "abort"))
	if !abort || r.req.OnAbort == nil || ctx.Err() != nil {
		return err
	}
	key, kerr := r.vm.ClientKeyFile(r.req.WorkDir)
	if kerr != nil {
		r.logf("errorHandling.%s is abort, but the VM's key could not be saved: %v", field, kerr)
		return err
	}
	host, port := splitHostPort(r.vm.SSHAddr())
	a := Abort{
		KeyFile: key, Reason: err,
		SSHCommand: fmt.Sprintf("ssh -i %s -p %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null %s@%s", key, port, BuildUser, host),
	}
	r.logf("errorHandling.%s is abort: the build VM is kept running for inspection: %s", field, a.SSHCommand)
	r.req.OnAbort(ctx, a)
	return err
}

func splitHostPort(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return addr, "22"
	}
	return addr[:i], addr[i+1:]
}

func (r *run) sourceValidationOnly() bool {
	v := r.tmpl.Properties.Validate
	return v != nil && v.SourceValidationOnly
}

// validateStep runs validate.inVMValidations.
type validateStep struct{}

func (*validateStep) Name() string { return "validate" }
func (*validateStep) Cleanup(*run) {}
func (*validateStep) Run(ctx context.Context, r *run) error {
	v := r.tmpl.Properties.Validate
	if v == nil || len(v.InVMValidations) == 0 {
		return nil
	}
	r.setPhase(PhaseValidating, fmt.Sprintf("%d validators", len(v.InVMValidations)))
	steps, err := customize.Validate(ctx, machine.NewGuest(r.vm), v.InVMValidations, r.customizeOptions())
	r.manifest.Validators = manifestSteps(steps)
	if err == nil {
		return nil
	}
	if v.ContinueDistributeOnFailure && ctx.Err() == nil {
		r.logf("validation failed, and continueDistributeOnFailure is set: distributing anyway: %v", err)
		r.manifest.Message = "validation failed: " + err.Error()
		return nil
	}
	return r.maybeAbort(ctx, "onValidationError", err)
}

// generalize deprovisions the guest and powers it off.
type generalize struct{}

func (*generalize) Name() string { return "generalize" }
func (*generalize) Cleanup(*run) {}
func (*generalize) Run(ctx context.Context, r *run) error {
	if r.sourceValidationOnly() {
		return nil
	}
	r.setPhase(PhaseGeneralizing, "deprovisioning and powering off")
	opts := r.customizeOptions()
	opts.PowerOff = true
	res, err := customize.Generalize(ctx, machine.NewGuest(r.vm), BuildUser, opts)
	if err != nil {
		return err
	}
	r.manifest.Generalize = string(res.Method)
	for _, p := range res.Packages {
		r.manifest.Packages = append(r.manifest.Packages, ManifestPackage{Name: p.Name, Version: p.Version})
	}
	r.logf("%d packages installed", len(r.manifest.Packages))
	sctx, cancel := context.WithTimeout(ctx, powerOffTimeout)
	defer cancel()
	// The guest's own orderly power-off, as the power button starts it;
	// asking from outside costs another session and sudo in the guest.
	if res.PoweringOff {
		err = r.vm.WaitPowerOff(sctx, selfPowerOffGrace)
	} else {
		err = r.vm.Shutdown(sctx)
	}
	if err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	r.logf("the build VM is powered off")
	return nil
}
