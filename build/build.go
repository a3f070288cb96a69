// Package build runs one image build the way AIB does: resolve the source
// image, boot a build VM on a copy-on-write overlay of it, run the
// customizers over SSH, validate, generalize, power off, and write one output
// per distribute target, with the customization log and a manifest.
package build

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/layer"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/source"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Phase is the part of a run that is going on, named as AIB's runSubState
// names it, plus Generalizing, which AIB reports as part of Customizing.
// This is the one vocabulary of phases: the service records a run's phase
// with it, and the API renders it as runSubState.
type Phase string

const (
	// PhaseQueued: the run waits for a worker. The service reports it; the
	// engine never enters it.
	PhaseQueued      Phase = "Queued"
	PhaseBuilding    Phase = "Building"
	PhaseCustomizing Phase = "Customizing"
	// PhaseOptimizing is AIB's optimize step (apiVersions with the
	// optimize property); goldsmith has no optimizer and never enters it.
	PhaseOptimizing   Phase = "Optimizing"
	PhaseValidating   Phase = "Validating"
	PhaseGeneralizing Phase = "Generalizing"
	PhaseDistributing Phase = "Distributing"
)

// RunSubState is the AIB runSubState a phase is reported as.
func (p Phase) RunSubState() string {
	if p == PhaseGeneralizing {
		return string(PhaseCustomizing)
	}
	return string(p)
}

// Progress is what a run reports as it goes.
type Progress struct {
	Phase   Phase
	Message string
	// The customizer or validator running, when one is.
	Step, Steps int
	StepName    string
	StepType    template.CustomizerType
	Elapsed     time.Duration
}

// Images resolves a template's source to a base image (source.Resolver).
type Images interface {
	Resolve(ctx context.Context, src template.Source) (source.Image, error)
}

// ImageTool is the part of qemu-img a build uses (disk.QemuImg).
type ImageTool interface {
	CreateOverlay(ctx context.Context, path, backing, backingFormat string, size int64) error
	Convert(ctx context.Context, src, srcFormat, dst string, opt disk.ConvertOptions) error
}

// Builder runs builds. Its fields are its dependencies.
type Builder struct {
	Images  Images
	Disks   ImageTool
	StartVM VMStarter
	// Fetcher downloads scripts and files (with its cache).
	Fetcher *customize.Fetcher
	// CacheDir keeps the KVM probe's answer.
	CacheDir string
	// Accel forces kvm or tcg; empty probes.
	Accel machine.Accel
	// Network is the build VMs' network; empty: machine.NetworkIsolated.
	Network machine.Network
	Logger  *slog.Logger
	// ReadyTimeout and RebootTimeout pass through to the customizers
	// (0: their defaults).
	ReadyTimeout, RebootTimeout time.Duration
	// Layers is the layer cache; nil: none. A request uses it only with
	// Request.LayerCache.
	Layers *layer.Cache
}

// Request is one build.
type Request struct {
	Template *template.Template
	// WorkDir is scratch space for this run; it is removed when the run ends.
	WorkDir string
	// OutputDir receives one disk per distribute target, customization.log
	// and manifest.json. It must not exist or be empty.
	OutputDir string
	// ManagedFormat is the disk format for managedImage and sharedImage
	// targets: qcow2 (default) or raw. VHD targets are always fixed VHDs.
	ManagedFormat string
	// Log receives the customization log as it is written (besides the file),
	// without the serial console unless LiveConsole is set.
	Log         io.Writer
	LiveConsole bool
	// Progress is called on every phase and step change.
	Progress func(Progress)
	// Timeout overrides the template's buildTimeoutInMinutes when positive
	// (tests use seconds).
	Timeout time.Duration
	// OnAbort is called when errorHandling says abort and a customizer or
	// validator failed: the build VM is kept running and OnAbort says how
	// to reach it; the run's cleanup waits until OnAbort returns.
	OnAbort func(ctx context.Context, a Abort)
	// LayerCache restores the VM from the longest cached prefix of
	// unchanged customizers and saves a layer after each step (see package
	// layer). AIB builds afresh every time: goldsmith build turns it on by
	// default, the service only for templates that opt in.
	LayerCache bool
}

// Abort describes a build VM kept for inspection.
type Abort struct {
	SSHCommand string // a ready-to-run ssh command line
	KeyFile    string
	Reason     error
}

// Output is one distribute target's artifact.
type Output struct {
	RunOutputName string                  `json:"runOutputName"`
	Type          template.DistributeType `json:"type"`
	Path          string                  `json:"path"`
	Format        string                  `json:"format"` // qcow2, raw or vhd
	SHA256        string                  `json:"sha256"`
	Size          int64                   `json:"size"`
}

// Result is a finished build.
type Result struct {
	Outputs  []Output
	Manifest *Manifest
	LogPath  string
}

// run is one build's state, shared by its steps.
type run struct {
	b      *Builder
	req    Request
	tmpl   *template.Template
	logger *slog.Logger
	log    *logWriter
	start  time.Time

	mu         sync.Mutex
	phase      Phase
	phaseStart time.Time
	current    *customize.Step
	manifest   *Manifest

	base    source.Image
	layers  *layers
	endErr  error // how the run ended, for the cleanups
	overlay string
	vm      VM
	outputs []Output
}

// Run builds req.Template. On failure the error's message is what AIB's
// lastRunStatus.message would say; no VM, overlay or temp file outlives it.
func (b *Builder) Run(ctx context.Context, req Request) (*Result, error) {
	if req.Template == nil {
		return nil, fmt.Errorf("build: no template")
	}
	if req.ManagedFormat == "" {
		req.ManagedFormat = "qcow2"
	}
	if req.ManagedFormat != "qcow2" && req.ManagedFormat != "raw" {
		return nil, fmt.Errorf("build: managed image format must be qcow2 or raw, not %q", req.ManagedFormat)
	}
	if err := prepareOutputDir(req.OutputDir); err != nil {
		return nil, err
	}
	logger := b.Logger
	if logger == nil {
		logger = nopLogger()
	}
	logPath := filepath.Join(req.OutputDir, "customization.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("build: create log: %w", err)
	}
	defer logFile.Close()
	r := &run{
		b: b, req: req, tmpl: req.Template, logger: logger, start: time.Now(),
		log:      newLogWriter(logFile, req.Log),
		manifest: newManifest(req.Template),
	}
	timeout := time.Duration(req.Template.Properties.EffectiveTimeoutMinutes()) * time.Minute
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()

	r.logf("goldsmith build: template apiVersion %s, timeout %s", r.tmpl.APIVersion, timeout)
	err = runSteps(ctx, r, r.steps())
	r.mu.Lock()
	if r.phase != "" {
		r.manifest.phase(r.phase, time.Since(r.phaseStart))
	}
	r.mu.Unlock()
	r.manifest.finish(r, err)
	if werr := r.manifest.write(filepath.Join(req.OutputDir, "manifest.json")); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		r.logf("build failed: %v", err)
		return &Result{Manifest: r.manifest, LogPath: logPath}, err
	}
	r.logf("build succeeded in %s", time.Since(r.start).Round(time.Second))
	return &Result{Outputs: r.outputs, Manifest: r.manifest, LogPath: logPath}, nil
}

func prepareOutputDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("build: no output directory")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return fmt.Errorf("build: output directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("build: output directory %s is not empty", dir)
	}
	return nil
}

// steps is the pipeline.
func (r *run) steps() []step {
	return []step{
		&resolveSource{},
		&fetchArtifacts{},
		&lookUpLayers{},
		&prepareDisk{},
		&bootVM{},
		&growDisk{},
		&saveBaseLayer{},
		&customizeStep{},
		&validateStep{},
		&generalize{},
		&distribute{},
	}
}

// setPhase enters a phase, recording how long the previous one took.
func (r *run) setPhase(p Phase, msg string) {
	r.mu.Lock()
	if r.phase != "" && r.phase != p {
		r.manifest.phase(r.phase, time.Since(r.phaseStart))
	}
	if r.phase != p {
		r.phaseStart = time.Now()
	}
	r.phase = p
	r.current = nil
	r.mu.Unlock()
	r.logf("phase %s: %s", p, msg)
	r.report(Progress{Phase: p, Message: msg})
}

func (r *run) report(p Progress) {
	p.Elapsed = time.Since(r.start)
	if r.req.Progress != nil {
		r.req.Progress(p)
	}
}

func (r *run) logf(format string, args ...any) {
	r.log.Notef(format, args...)
}

// where says what was going on, for timeout and cancel messages.
func (r *run) where(stepName string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.current; c != nil {
		what := fmt.Sprintf("%s %d/%d %q (%s)", c.Kind, c.Index, c.Total, c.Name, c.Type)
		if c.Done && c.Err == nil {
			return fmt.Sprintf("phase %s was running, after %s", r.phase, what)
		}
		return fmt.Sprintf("phase %s was running %s", r.phase, what)
	}
	if r.phase == "" {
		return "the build was starting (" + stepName + ")"
	}
	return fmt.Sprintf("phase %s was running (%s)", r.phase, stepName)
}
