package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/layer"
	"github.com/goldsmith-dev/goldsmith/machine"
)

// guestStepsVersion names the version of goldsmith's own in-guest steps
// that a layer contains (the guest agent, the disk grow, the identity
// replacement after a restore). Change it when they change: older layers
// are then never matched again.
const guestStepsVersion = "3"

// layers is a run's use of the layer cache (Builder.Layers): the key of the
// layer after each customizer, the layer the VM was restored from, and the
// layers this run made.
type layers struct {
	cache *layer.Cache
	// keys[i] is the layer after i customizers; keys[0] is the booted
	// source image with its disk grown.
	keys []string
	hit  *layer.Handle // the layer restored; nil: the source is booted
	// pending is the layer the VM writes now: its disk is the VM's disk.
	pending *layer.Pending
	// stale are reservations a failed checkpoint left in the VM's disk
	// chain: removed only once the VM is gone.
	stale []*layer.Pending
	made  []*layer.Handle // committed by this run
	off   bool            // no more layers this run
}

// restored is how many customizers the restored layer includes, or -1.
func (l *layers) restored() int {
	if l == nil || l.hit == nil {
		return -1
	}
	return l.hit.Meta.Step
}

// lookUpLayers computes the run's layer keys and finds the longest prefix
// of customizers the cache already has.
type lookUpLayers struct{}

func (*lookUpLayers) Name() string { return "look up the layer cache" }
func (*lookUpLayers) Run(ctx context.Context, r *run) error {
	if r.b.Layers == nil || !r.req.LayerCache || r.sourceValidationOnly() {
		return nil
	}
	keys, err := r.layerKeys(ctx)
	if err != nil {
		return err
	}
	l := &layers{cache: r.b.Layers, keys: keys}
	r.layers = l
	n := len(keys) - 1
	for i := n; i >= 0; i-- {
		h, err := l.cache.Acquire(keys[i])
		if err != nil {
			continue
		}
		l.hit = h
		break
	}
	r.manifest.Layers = &ManifestLayers{ReusedCustomizers: max(l.restored(), 0)}
	switch k := l.restored(); {
	case k < 0:
		r.logf("layer cache: no layer for this source and VM shape yet; booting the source image, and saving a layer after each step")
		l.pending = l.reserve(r, 0)
	case k == 0:
		r.manifest.Layers.Restored = l.hit.Meta.Key
		r.logf("layer cache: restoring the booted source image (layer %s); running all %d customizers", l.hit.Meta.Key[:12], n)
	default:
		r.manifest.Layers.Restored = l.hit.Meta.Key
		r.logf("layer cache: reusing customizers 1-%d of %d (layer %s, made %s); running %d", k, n, l.hit.Meta.Key[:12],
			l.hit.Meta.Created.Local().Format(time.DateTime), n-k)
	}
	return nil
}

// Cleanup drops the run's holds. A run that was canceled or timed out keeps
// none of the layers it made; one that failed keeps those of the
// customizers that succeeded, so a fixed script starts after them.
func (*lookUpLayers) Cleanup(r *run) {
	l := r.layers
	if l == nil {
		return
	}
	if l.pending != nil {
		l.pending.Discard()
	}
	for _, p := range l.stale {
		p.Discard()
	}
	interrupted := errors.Is(r.endErr, ErrCanceled) || errors.Is(r.endErr, ErrTimeout)
	for _, h := range l.made {
		if interrupted {
			h.Remove()
		} else {
			h.Release()
		}
	}
	if interrupted && len(l.made) > 0 {
		r.logf("layer cache: the run was interrupted: its %d layers were removed", len(l.made))
		r.manifest.Layers.Built = nil
	}
	if l.hit != nil {
		l.hit.Release()
	}
	if _, err := l.cache.Enforce(); err != nil {
		r.logger.Warn("layer cache: enforce size", "err", err)
	}
}

// layerKeys derives the key of the layer after each customizer. The first
// covers the source disk, its boot, the VM shape, the grown disk size, the
// build user, goldsmith's in-guest steps and the VM's network (a state saved
// on one back end must not be restored on another); each next one adds a
// customizer's full definition and the sha256 of what it downloads.
func (r *run) layerKeys(ctx context.Context) ([]string, error) {
	size, err := r.vmSize()
	if err != nil {
		return nil, err
	}
	accel := r.b.Accel
	if accel != machine.AccelKVM && accel != machine.AccelTCG {
		probe, err := machine.ProbeAccel(ctx, machine.ProbeConfig{CacheDir: r.b.CacheDir, Kernel: r.base.Kernel, Logger: r.logger})
		if err != nil {
			return nil, err
		}
		accel = probe.Accel
	}
	host, err := machine.HostKey(ctx)
	if err != nil {
		return nil, err
	}
	str := func(s string) []byte { return []byte(s) }
	keys := []string{layer.Key("",
		str("source"), str(r.base.DiskSHA256), str(r.base.Kernel), str(r.base.Initrd), str(r.base.Cmdline),
		str(string(accel)), str(machine.CPUModelFor(accel)), str(host), str(strconv.Itoa(size.CPUs)), str(strconv.Itoa(size.MemoryMiB)),
		str(strconv.FormatInt(r.diskSize(), 10)), str(BuildUser), str(guestStepsVersion), str(machine.StateFormat()),
		str(machine.NetworkKey(r.b.Network)))}
	for _, c := range r.tmpl.Properties.Customize {
		def, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		digest, err := r.b.Fetcher.Digest(ctx, c)
		if err != nil {
			return nil, err
		}
		keys = append(keys, layer.Key(keys[len(keys)-1], def, str(digest)))
	}
	return keys, nil
}

// reserve reserves layer i for the VM to write, or turns layers off for
// the rest of the run when another build makes it or it exists already (a
// layer's ancestors must all be in the cache).
func (l *layers) reserve(r *run, i int) *layer.Pending {
	if l.off || i >= len(l.keys) {
		return nil
	}
	p, err := l.cache.Reserve(l.keys[i])
	if err != nil {
		l.off = true
		if !errors.Is(err, layer.ErrBusy) && !errors.Is(err, fs.ErrExist) {
			r.logf("layer cache: %v; no more layers this run", err)
		} else {
			r.logf("layer cache: layer %d: %v; no more layers this run", i, err)
		}
		return nil
	}
	return p
}

// nextDisk is the disk the VM writes to for the step after layer i-1: the
// reserved directory of layer i, or the run's work dir.
func (l *layers) nextDisk(r *run, i int) string {
	if p := l.reserve(r, i); p != nil {
		l.pending = p
		return p.DiskPath()
	}
	return filepath.Join(r.req.WorkDir, fmt.Sprintf("build-disk-%d.qcow2", i))
}

// checkpoint saves layer i (the VM's disk and state after i customizers)
// if this run is making it.
func (r *run) checkpoint(ctx context.Context, i int, what string) {
	l := r.layers
	if l == nil || l.pending == nil {
		return
	}
	p := l.pending
	l.pending = nil
	next := l.nextDisk(r, i+1)
	saved, err := r.vm.Checkpoint(ctx, machine.Checkpoint{NewDisk: next, StateFile: p.StatePath()})
	r.overlay = r.vm.Disk()
	if err != nil {
		r.logf("layer cache: could not save layer %d: %v; no more layers this run", i, err)
		l.off = true
		l.stale = append(l.stale, p)
		if l.pending != nil {
			l.stale = append(l.stale, l.pending)
			l.pending = nil
		}
		return
	}
	parent := ""
	if i > 0 {
		parent = l.keys[i-1]
	}
	h, err := p.Commit(layer.Meta{Parent: parent, Step: i, Description: what, SourceSHA256: r.base.DiskSHA256,
		DirectKernel: saved.Kernel != "", MemoryDelta: saved.MemoryDelta, Identity: saved.Identity})
	if err != nil {
		r.logf("layer cache: %v; no more layers this run", err)
		l.off = true
		l.stale = append(l.stale, p)
		return
	}
	l.made = append(l.made, h)
	r.manifest.Layers.Built = append(r.manifest.Layers.Built, ManifestLayer{Step: i, Key: h.Meta.Key, Seconds: saved.Took.Seconds()})
	memory := "memory saved whole"
	if saved.MemoryDelta {
		memory = fmt.Sprintf("%.1f MiB of memory changed", float64(saved.MemoryChanged)/(1<<20))
	}
	r.logf("layer cache: saved layer %d (%s) in %s (%s)", i, what, saved.Took.Round(10*time.Millisecond), memory)
}

// afterStep is the customizers' hook: a layer after each that succeeded.
func (r *run) afterStep(ctx context.Context, s customize.Step) error {
	r.checkpoint(ctx, s.Index, fmt.Sprintf("after customizer %d/%d %q (%s)", s.Index, s.Total, s.Name, s.Type))
	return nil
}

// saveBaseLayer saves layer 0, the booted source with its disk grown, when
// this run booted the source.
type saveBaseLayer struct{}

func (*saveBaseLayer) Name() string { return "save the booted source as a layer" }
func (*saveBaseLayer) Cleanup(*run) {}
func (*saveBaseLayer) Run(ctx context.Context, r *run) error {
	if r.layers.restored() < 0 {
		r.checkpoint(ctx, 0, "the booted source image")
	}
	return nil
}

// restoreVM starts the build VM from the restored layer's saved state and
// waits for SSH with the run's own identity.
func (r *run) restoreVM(ctx context.Context, cfg machine.Config) (VM, error) {
	h := r.layers.hit
	cfg.Restore = &machine.Restore{StateFile: h.StatePath(), Memory: h.MemoryFiles(), Identity: h.Meta.Identity}
	if !h.Meta.DirectKernel {
		cfg.Kernel, cfg.Initrd, cfg.Cmdline = "", "", ""
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	vm, err := r.b.StartVM(rctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := vm.WaitForSSH(rctx); err != nil {
		vm.Close()
		return nil, err
	}
	return vm, nil
}

// dropLayers gives up the restored layer (its restore failed) and makes the
// build disk over the source image; the run saves no layers.
func (r *run) dropLayers(ctx context.Context) error {
	l := r.layers
	if l.pending != nil {
		l.pending.Discard()
		l.pending = nil
	}
	l.hit.Release()
	// A layer that cannot be restored is broken: remove it, and what builds
	// on it, so the next run makes it again.
	if removed, err := l.cache.RemoveTree(l.hit.Meta.Key); err != nil {
		r.logf("layer cache: could not remove layer %s: %v", l.hit.Meta.Key[:12], err)
	} else if len(removed) > 0 {
		r.logf("layer cache: removed layer %s (and %d that build on it): it could not be restored", l.hit.Meta.Key[:12], len(removed)-1)
	}
	l.hit, l.off = nil, true
	r.manifest.Layers = &ManifestLayers{}
	if err := os.Remove(r.overlay); err != nil && !os.IsNotExist(err) {
		return err
	}
	return r.overlayOnSource(ctx)
}
