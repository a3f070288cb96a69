// Package runner runs image templates' runs: it takes a queued run, builds
// its image with an Executor in the run's scratch directory under the
// template's build timeout, records the phases it goes through and its
// customization log, distributes the outputs, and ends the run as
// Succeeded, PartiallySucceeded, Failed (the build failed or timed out),
// Canceled or interrupted (its process stopped or died). It also retries a
// run's failed distribution from the build outputs kept for it.
//
// The run, its template and what a distribution publishes are package
// resource's documents: the runner reads and changes them through Records
// (resource.Service), in the transaction that also ends the run's job.
// Workers' heartbeats and the recovery of a dead worker's jobs are package
// jobs'. The API only queues and cancels runs' jobs (Queue); a process that
// builds (goldsmith serve, or a worker without the API) makes a Runner on
// the same store and queue.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Records is the resource model as runs read and change it; package
// resource's Service implements it. Methods taking a tx work in the
// runner's transaction, which also ends the run's job.
type Records interface {
	// Run reads a run and its template; the template is nil once deleted.
	Run(ctx context.Context, tx *store.Tx, runID string) (resource.Run, *resource.ImageTemplate, error)
	// Runs reads every run.
	Runs(ctx context.Context, tx *store.Tx) ([]resource.Run, error)
	// SetRunPhase records the phase (a runSubState) an active run is in.
	SetRunPhase(ctx context.Context, runID, subState string) error
	// PinSource returns the template a run of t builds, its source's
	// "latest" resolved to a version.
	PinSource(ctx context.Context, t resource.ImageTemplate) (*template.Template, error)
	// RunOutputs reads a template's runOutputs.
	RunOutputs(ctx context.Context, tx *store.Tx, templateID string) ([]resource.Resource, error)
	// Publish publishes one build output to its distribute target.
	Publish(ctx context.Context, t resource.ImageTemplate, r resource.Run, p resource.Publication) (resource.Published, error)
	// FetchStaged copies a template's staged file to the local file dst,
	// its sha256 verified.
	FetchStaged(ctx context.Context, f resource.StagedFile, dst string) error
	// EndRun records a run's end; ended is false when it had ended already.
	EndRun(ctx context.Context, tx *store.Tx, runID string, end resource.RunEnd) (ended bool, err error)
}

// Options configure a Runner.
type Options struct {
	Store    *store.Store
	Queue    *jobs.Queue
	Records  Records
	Executor Executor
	// DataDir is the data directory the runs' paths are relative to; runs'
	// scratch space is under work/, kept build outputs under kept/.
	DataDir string
	Logger  *slog.Logger
}

// Runner runs the runs a queue hands it.
type Runner struct {
	st      *store.Store
	q       *jobs.Queue
	records Records
	exec    Executor
	dataDir string
	log     *slog.Logger
}

// New makes a Runner and registers its job handlers on the queue; start
// the queue (jobs.Queue.Run) afterwards.
func New(opts Options) (*Runner, error) {
	if opts.Store == nil || opts.Queue == nil || opts.Records == nil || opts.Executor == nil || opts.DataDir == "" {
		return nil, errors.New("runner: Store, Queue, Records, Executor and DataDir are required")
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	for _, d := range []string{"work", "kept"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	r := &Runner{st: opts.Store, q: opts.Queue, records: opts.Records, exec: opts.Executor, dataDir: dir, log: opts.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.q.Handle(kindRun, runHandler{r})
	r.q.Handle(kindRedistribute, redistributeHandler{runHandler{r}})
	return r, nil
}

// abs turns a data-directory-relative path into an absolute one.
func (r *Runner) abs(rel string) string { return filepath.Join(r.dataDir, filepath.FromSlash(rel)) }

// rel turns an absolute path under the data directory into a relative one.
func (r *Runner) rel(abs string) string {
	p, err := filepath.Rel(r.dataDir, abs)
	if err != nil {
		return abs
	}
	return filepath.ToSlash(p)
}

// removeFiles removes data-directory-relative files and directories.
func (r *Runner) removeFiles(rel ...string) {
	for _, p := range rel {
		if p == "" {
			continue
		}
		if err := os.RemoveAll(r.abs(p)); err != nil {
			r.log.Warn("remove file", "path", p, "err", err)
		}
	}
}

// errBuildTimeout ends a build that ran past buildTimeoutInMinutes.
var errBuildTimeout = errors.New("build timeout")

// stopped tells whether a job's context ended because its process stops or
// lost the job: then the run is not ended here but reported interrupted
// (by the queue calling Interrupted).
func stopped(ctx context.Context) bool {
	cause := context.Cause(ctx)
	return errors.Is(cause, jobs.ErrStopping) || errors.Is(cause, jobs.ErrLeaseLost)
}

type runHandler struct{ r *Runner }

// Work runs one build: the Executor builds, then the outputs are distributed.
// Whatever goes wrong, the run ends with a message saying what (unless the
// process is stopping: then Interrupted reports it).
func (h runHandler) Work(ctx context.Context, job jobs.Job) error {
	err := h.work(ctx, job)
	if err == nil || stopped(ctx) {
		return err
	}
	var p payload
	if jerr := json.Unmarshal(job.Payload, &p); jerr != nil {
		return err
	}
	end := resource.RunEnd{State: resource.RunFailed, Message: "goldsmith failed to run the build: " + err.Error()}
	if errors.Is(context.Cause(ctx), jobs.ErrCanceled) {
		end = resource.RunEnd{State: resource.RunCanceled, Message: "The run was canceled."}
	}
	if ferr := h.r.finish(ctx, job, p.Run, end); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

// load reads a run job's run and template and opens the run's log. A run
// that is no longer active gives a nil log (nothing to do).
func (r *Runner) load(ctx context.Context, job jobs.Job) (resource.Run, resource.ImageTemplate, *os.File, error) {
	var p payload
	var run resource.Run
	var t resource.ImageTemplate
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return run, t, nil, fmt.Errorf("decode job: %w", err)
	}
	err := r.st.View(ctx, func(tx *store.Tx) error {
		var tp *resource.ImageTemplate
		var err error
		if run, tp, err = r.records.Run(ctx, tx, p.Run); err != nil {
			return err
		}
		if tp == nil {
			return fmt.Errorf("image template %s: %w", run.TemplateID, store.ErrNotFound)
		}
		t = *tp
		return nil
	})
	if err != nil {
		return run, t, nil, fmt.Errorf("load run %s: %w", p.Run, err)
	}
	if !run.Active() {
		return run, t, nil, nil
	}
	log, err := r.openLog(run)
	return run, t, log, err
}

func (h runHandler) work(ctx context.Context, job jobs.Job) error {
	r := h.r
	run, t, log, err := r.load(ctx, job)
	if err != nil || log == nil {
		return err
	}
	defer log.Close()
	workDir := r.abs(run.WorkDir)
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if !stopped(ctx) {
			machine.KillRecorded(workDir)
			_ = os.RemoveAll(workDir)
		}
	}()
	timeout := time.Duration(t.Template.Properties.EffectiveTimeoutMinutes()) * time.Minute
	bctx, cancel := context.WithTimeoutCause(ctx, timeout, errBuildTimeout)
	defer cancel()

	logf(log, "goldsmith: run %s (number %d) of image template %s started on %s", run.RunID, run.Number, t.ID, job.Owner)
	// The staged files come from the staging store, which every node
	// shares: the submission may have been another machine's.
	files := make(map[string]LocalFile, len(t.StagedFiles))
	for i, f := range t.StagedFiles {
		dst := filepath.Join(workDir, "files", fmt.Sprintf("%03d-%s", i, resource.SafeName(download.BaseName(f.URI))))
		if err := r.records.FetchStaged(ctx, f, dst); err != nil {
			logf(log, "goldsmith: %v", err)
			return err
		}
		files[f.URI] = LocalFile{Path: dst, SHA256: f.SHA256, Size: f.Size}
	}
	ph := &phases{r: r, ctx: context.WithoutCancel(ctx), runID: run.ID, log: log, last: string(build.PhaseQueued)}
	tmpl, err := r.records.PinSource(ctx, t)
	if err != nil {
		logf(log, "goldsmith: %v", err)
		return r.finish(ctx, job, run.ID, resource.RunEnd{State: resource.RunFailed, Message: err.Error()})
	}
	req := Request{RunID: run.RunID, TemplateID: t.ID, Template: tmpl, Files: files, WorkDir: workDir,
		ManifestPath: filepath.Join(filepath.Dir(r.abs(run.LogPath)), resource.ManifestName)}
	res, execErr := r.exec.Execute(resource.WithRunLocation(bctx, t.Location), req, log, ph.enter)
	if execErr == nil && bctx.Err() == nil {
		if ph.current() != string(build.PhaseDistributing) {
			ph.enter(build.PhaseDistributing, "publishing the outputs")
		}
		return r.distribute(bctx, job, run.ID, res, nil, log, false)
	}
	end, interrupted := ending(context.Cause(bctx), execErr, ph.current(), t.Template.Properties.EffectiveTimeoutMinutes())
	logf(log, "goldsmith: %s", end.logLine)
	if interrupted {
		return context.Cause(bctx) // the queue calls Interrupted
	}
	return r.finish(ctx, job, run.ID, end.RunEnd)
}

// phases records the phases a build goes through.
type phases struct {
	r     *Runner
	ctx   context.Context
	runID string
	log   io.Writer

	mu   sync.Mutex
	last string // a runSubState
}

// enter records that the build entered phase p; the Executor's progress.
func (ph *phases) enter(p build.Phase, detail string) {
	sub := p.RunSubState()
	ph.mu.Lock()
	ph.last = sub
	ph.mu.Unlock()
	if err := ph.r.records.SetRunPhase(ph.ctx, ph.runID, sub); err != nil {
		ph.r.log.Warn("record run phase", "run", ph.runID, "err", err)
	}
	logf(ph.log, "==> %s: %s", sub, detail)
}

func (ph *phases) current() string {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	return ph.last
}

// buildEnd is how a build that did not finish ends, and the log's last line.
type buildEnd struct {
	resource.RunEnd
	logLine string
}

// ending classifies a build that did not finish by its context's cause:
// canceled, timed out, interrupted (the process stops or lost the job: the
// run is not ended here), or failed with the Executor's error. phase is the
// runSubState it was in.
func ending(cause, execErr error, phase string, timeoutMinutes int) (end buildEnd, interrupted bool) {
	switch {
	case errors.Is(cause, jobs.ErrStopping), errors.Is(cause, jobs.ErrLeaseLost):
		return buildEnd{logLine: fmt.Sprintf("the run was interrupted: %v", cause)}, true
	case errors.Is(cause, jobs.ErrCanceled):
		return buildEnd{RunEnd: resource.RunEnd{State: resource.RunCanceled, Message: fmt.Sprintf("The run was canceled during %s.", phase)},
			logLine: "the run was canceled during " + phase}, false
	case errors.Is(cause, errBuildTimeout):
		msg := fmt.Sprintf("The build timed out after %d minutes (buildTimeoutInMinutes) during %s.", timeoutMinutes, phase)
		return buildEnd{RunEnd: resource.RunEnd{State: resource.RunFailed, Message: msg,
			Error: &resource.OperationError{Code: "BuildTimeout", Message: msg}}, logLine: msg}, false
	}
	if execErr == nil {
		execErr = cause
	}
	if execErr == nil {
		execErr = errors.New("the build ended without a result")
	}
	return buildEnd{RunEnd: resource.RunEnd{State: resource.RunFailed, Message: execErr.Error()},
		logLine: fmt.Sprintf("the run failed during %s: %v", phase, execErr)}, false
}

// Interrupted reports a run whose process died or stopped as Failed (or
// Canceled, if it was being canceled), stops the processes it left and
// removes its scratch files.
func (h runHandler) Interrupted(ctx context.Context, tx *store.Tx, job jobs.Job, cause error) (bool, error) {
	r := h.r
	var p payload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return false, err
	}
	run, _, err := r.records.Run(ctx, tx, p.Run)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	workDir := r.abs(run.WorkDir)
	machine.KillRecorded(workDir)
	if err := os.RemoveAll(workDir); err != nil {
		r.log.Warn("remove work directory", "dir", workDir, "err", err)
	}
	if !run.Active() {
		return false, nil
	}
	end := interruption(run, cause)
	if f, err := r.openLog(run); err == nil {
		logf(f, "goldsmith: %s", end.Message)
		f.Close()
	}
	_, err = r.records.EndRun(ctx, tx, run.ID, end)
	return false, err
}

// interruption is the end of a run whose process stopped (cause
// jobs.ErrStopping) or died.
func interruption(run resource.Run, cause error) resource.RunEnd {
	state, msg := resource.RunFailed, fmt.Sprintf("The run was interrupted during %s: the goldsmith server running it stopped unexpectedly (%v). Run the template again.", run.SubState, cause)
	if errors.Is(cause, jobs.ErrStopping) {
		msg = fmt.Sprintf("The run was interrupted during %s because the goldsmith server stopped. Run the template again.", run.SubState)
	}
	if run.State == resource.RunCanceling {
		state, msg = resource.RunCanceled, fmt.Sprintf("The run was canceled during %s.", run.SubState)
	}
	return resource.RunEnd{State: state, Message: msg, Error: &resource.OperationError{Code: "RunInterrupted", Message: msg}}
}

// finish ends a run and its job in one transaction.
func (r *Runner) finish(ctx context.Context, job jobs.Job, runID string, end resource.RunEnd) error {
	ctx = context.WithoutCancel(ctx)
	return r.st.Update(ctx, func(tx *store.Tx) error { return r.finishTx(ctx, tx, job, runID, end) })
}

// finishTx ends a run and its job in tx; a run that had ended only ends
// its job.
func (r *Runner) finishTx(ctx context.Context, tx *store.Tx, job jobs.Job, runID string, end resource.RunEnd) error {
	if _, err := r.records.EndRun(ctx, tx, runID, end); err != nil {
		return err
	}
	return r.q.Finish(ctx, tx, job)
}

// openLog opens the run's customization.log for appending.
func (r *Runner) openLog(run resource.Run) (*os.File, error) {
	p := r.abs(run.LogPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open run log: %w", err)
	}
	return f, nil
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}
