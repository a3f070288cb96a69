package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/queue"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
)

// runPayload is the payload of a run job.
type runPayload struct {
	Run string `json:"run"` // the run's id
}

// StartRun starts a run of a template (AIB's POST .../run): the run is
// queued and the returned operation reports its end. A template that is
// already running answers 409.
func (s *Service) StartRun(ctx context.Context, templateID string) (Operation, error) {
	var op Operation
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		r, err := s.startRunTx(ctx, tx, &t)
		if err != nil {
			return err
		}
		if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
			return err
		}
		_, err = tx.GetJSON(ctx, r.OperationID, &op)
		return err
	})
	return op, err
}

// startRunTx queues a run of t in tx and updates t (the caller stores it).
func (s *Service) startRunTx(ctx context.Context, tx *store.Tx, t *ImageTemplate) (Run, error) {
	switch {
	case t.ProvisioningState == StateCreating:
		return Run{}, conflict("Conflict", "The image template '%s' is still being created; run it when its provisioningState is Succeeded.", t.Name)
	case t.ProvisioningState == StateDeleting:
		return Run{}, conflict("Conflict", "The image template '%s' is being deleted.", t.Name)
	case t.ProvisioningState != StateSucceeded || t.Template == nil:
		msg := ""
		if t.ProvisioningError != nil {
			msg = ": " + t.ProvisioningError.Message
		}
		return Run{}, badRequest("InvalidTemplateState", "The image template '%s' cannot run: its provisioningState is %s%s", t.Name, t.ProvisioningState, msg)
	case t.ActiveRun != "":
		return Run{}, conflict("Conflict", "The image template '%s' is already running (run %s); wait for it to end or cancel it.", t.Name, t.ActiveRun)
	}
	pid, err := parseID(t.ID)
	if err != nil {
		return Run{}, err
	}
	op, err := newOperation(ctx, tx, pid.Subscription, "Microsoft.VirtualMachineImages", t.Location, t.ID, "run")
	if err != nil {
		return Run{}, err
	}
	runID := newGUID()
	t.Runs++
	r := Run{ID: t.ID + "/runs/" + runID, RunID: runID, Number: t.Runs, TemplateID: t.ID, State: RunRunning, SubState: string(build.PhaseQueued),
		StartTime: tx.Now(), OperationID: op.ID,
		LogPath: path.Join(s.stagingDir(t.ExactStagingResourceGroup), "packerlogs", runID, "customization.log"),
		WorkDir: path.Join("work", runID)}
	r.JobID, err = s.q.Enqueue(ctx, tx, queue.NewJob{Kind: jobRun, Ref: r.ID, Payload: runPayload{Run: r.ID}})
	if err != nil {
		return Run{}, err
	}
	if err := tx.CreateJSON(ctx, r.ID, TypeRun, r); err != nil {
		return Run{}, err
	}
	// A run replaces the previous run's outputs, as in AIB: their kept
	// build outputs go too.
	if err := s.dropKept(ctx, tx, t.ID); err != nil {
		return Run{}, err
	}
	outs, err := tx.List(ctx, store.Query{Type: TypeRunOutput, Scope: t.ID})
	if err != nil {
		return Run{}, err
	}
	for _, o := range outs {
		if err := tx.Delete(ctx, o.ID); err != nil {
			return Run{}, err
		}
	}
	t.ActiveRun = r.RunID
	t.LastRunStatus = &LastRunStatus{StartTime: r.StartTime, RunState: RunRunning, RunSubState: string(build.PhaseQueued)}
	return r, nil
}

// CancelRun asks the template's run in progress to stop (AIB's POST
// .../cancel). A queued run ends Canceled at once; a running one moves to
// Canceling and ends Canceled when its build has stopped, which the
// returned operation reports.
func (s *Service) CancelRun(ctx context.Context, templateID string) (Operation, error) {
	var op Operation
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		if t.ActiveRun == "" {
			return conflict("Conflict", "The image template '%s' has no run in progress to cancel.", t.Name)
		}
		var r Run
		if _, err := tx.GetJSON(ctx, t.ID+"/runs/"+t.ActiveRun, &r); err != nil {
			return err
		}
		if r.CancelOperationID == "" {
			pid, err := parseID(t.ID)
			if err != nil {
				return err
			}
			cop, err := newOperation(ctx, tx, pid.Subscription, "Microsoft.VirtualMachineImages", t.Location, t.ID, "cancel")
			if err != nil {
				return err
			}
			r.CancelOperationID = cop.ID
			if err := tx.PutJSON(ctx, r.ID, TypeRun, r); err != nil {
				return err
			}
			if err := s.cancelRunTx(ctx, tx, &t, "the run was canceled"); err != nil {
				return err
			}
			if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
				return err
			}
		}
		_, err := tx.GetJSON(ctx, r.CancelOperationID, &op)
		return err
	})
	return op, err
}

// cancelRunTx asks t's active run to stop, in tx; t is updated (the caller
// stores it). A run whose job had not started ends here.
func (s *Service) cancelRunTx(ctx context.Context, tx *store.Tx, t *ImageTemplate, why string) error {
	var r Run
	if _, err := tx.GetJSON(ctx, t.ID+"/runs/"+t.ActiveRun, &r); err != nil {
		return err
	}
	state, err := s.q.Cancel(ctx, tx, r.JobID)
	if err != nil {
		return err
	}
	if state == queue.Running {
		r.State = RunCanceling
		if err := tx.PutJSON(ctx, r.ID, TypeRun, r); err != nil {
			return err
		}
		if t.LastRunStatus != nil {
			t.LastRunStatus.RunState = RunCanceling
		}
		return nil
	}
	// Not started (or already ended without recording it): end it now.
	return s.endRun(ctx, tx, t, &r, RunCanceled, capitalize(why)+" before it started.", nil)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// endRun records a run's end in tx: the run, the template's lastRunStatus
// (t is updated; the caller stores it unless it is gone) and the run's and
// cancel request's operations.
func (s *Service) endRun(ctx context.Context, tx *store.Tx, t *ImageTemplate, r *Run, state, message string, opErr *OperationError) error {
	now := tx.Now()
	r.State, r.Message, r.EndTime = state, message, &now
	if err := tx.PutJSON(ctx, r.ID, TypeRun, r); err != nil {
		return err
	}
	if t != nil && t.ActiveRun == r.RunID {
		t.ActiveRun = ""
		t.LastRunStatus = &LastRunStatus{StartTime: r.StartTime, EndTime: &now, RunState: state, RunSubState: r.SubState, Message: message}
	}
	status := OpSucceeded
	switch state {
	case RunFailed:
		status = OpFailed
		if opErr == nil {
			opErr = &OperationError{Code: "PackerBuildFailed", Message: message}
		}
	case RunCanceled:
		status = OpCanceled
		if opErr == nil {
			opErr = &OperationError{Code: "OperationCanceled", Message: message}
		}
	default:
		opErr = nil
	}
	if err := endOperation(ctx, tx, r.OperationID, status, opErr); err != nil {
		return err
	}
	return endOperation(ctx, tx, r.CancelOperationID, OpSucceeded, nil)
}

// GetRun reads one run of a template; runID "" or "latest" is the newest.
func (s *Service) GetRun(ctx context.Context, templateID, runID string) (Run, error) {
	var r Run
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		if runID != "" && runID != "latest" {
			if _, err := tx.GetJSON(ctx, t.ID+"/runs/"+runID, &r); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return newErr(KindNotFound, "ResourceNotFound", "The image template '%s' has no run '%s'.", t.Name, runID)
				}
				return err
			}
			return nil
		}
		runs, _, err := list[Run](ctx, tx, TypeRun, t.ID, Page{})
		if err != nil {
			return err
		}
		for _, cand := range runs {
			if cand.Number > r.Number {
				r = cand
			}
		}
		if r.ID == "" {
			return newErr(KindNotFound, "ResourceNotFound", "The image template '%s' has not run yet.", t.Name)
		}
		return nil
	})
	return r, err
}

// ListRuns lists a template's runs, oldest first.
func (s *Service) ListRuns(ctx context.Context, templateID string) ([]Run, error) {
	var runs []Run
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		var err error
		runs, _, err = list[Run](ctx, tx, TypeRun, t.ID, Page{})
		return err
	})
	for i := 1; i < len(runs); i++ {
		for j := i; j > 0 && runs[j].Number < runs[j-1].Number; j-- {
			runs[j], runs[j-1] = runs[j-1], runs[j]
		}
	}
	return runs, err
}

// dropKept removes, in tx, the kept build outputs of a template's runs
// (their files go after the commit).
func (s *Service) dropKept(ctx context.Context, tx *store.Tx, templateID string) error {
	runs, _, err := list[Run](ctx, tx, TypeRun, templateID, Page{})
	if err != nil {
		return err
	}
	for _, old := range runs {
		if old.KeptDir == "" {
			continue
		}
		dir := old.KeptDir
		old.Kept, old.KeptDir = nil, ""
		if err := tx.PutJSON(ctx, old.ID, TypeRun, old); err != nil {
			return err
		}
		tx.AfterCommit(func() { s.removeFiles(dir) })
	}
	return nil
}

// errBuildTimeout ends a build that ran past buildTimeoutInMinutes.
var errBuildTimeout = errors.New("build timeout")

type runHandler struct{ s *Service }

// Work runs one build: the Executor builds, then the outputs are distributed.
// Whatever goes wrong, the run ends with a message saying what (unless the
// server is stopping: then Interrupted reports it).
func (h runHandler) Work(ctx context.Context, job queue.Job) error {
	err := h.work(ctx, job)
	cause := context.Cause(ctx)
	if err == nil || errors.Is(cause, queue.ErrStopping) || errors.Is(cause, queue.ErrLeaseLost) {
		return err
	}
	var p runPayload
	if jerr := json.Unmarshal(job.Payload, &p); jerr != nil {
		return err
	}
	state, msg := RunFailed, "goldsmith failed to run the build: "+err.Error()
	if errors.Is(cause, queue.ErrCanceled) {
		state, msg = RunCanceled, "The run was canceled."
	}
	ctx = context.WithoutCancel(ctx)
	if ferr := h.s.st.Update(ctx, func(tx *store.Tx) error {
		return h.s.finishRunTx(ctx, tx, job, p.Run, state, msg, nil)
	}); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

// loadJob reads a run job's run and template and opens the run's log. A run
// that is no longer active gives a nil log (nothing to do).
func (s *Service) loadJob(ctx context.Context, job queue.Job) (Run, ImageTemplate, *os.File, error) {
	var p runPayload
	var r Run
	var t ImageTemplate
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return r, t, nil, fmt.Errorf("decode job: %w", err)
	}
	err := s.st.View(ctx, func(tx *store.Tx) error {
		if _, err := tx.GetJSON(ctx, p.Run, &r); err != nil {
			return err
		}
		_, err := tx.GetJSON(ctx, r.TemplateID, &t)
		return err
	})
	if err != nil {
		return r, t, nil, fmt.Errorf("load run %s: %w", p.Run, err)
	}
	if !r.Active() {
		return r, t, nil, nil
	}
	log, err := s.openRunLog(r)
	return r, t, log, err
}

func (h runHandler) work(ctx context.Context, job queue.Job) error {
	s := h.s
	r, t, log, err := s.loadJob(ctx, job)
	if err != nil || log == nil {
		return err
	}
	defer log.Close()
	workDir := s.abs(r.WorkDir)
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if cause := context.Cause(ctx); !errors.Is(cause, queue.ErrStopping) && !errors.Is(cause, queue.ErrLeaseLost) {
			machine.KillRecorded(workDir)
			_ = os.RemoveAll(workDir)
		}
	}()
	timeout := time.Duration(t.Template.Properties.EffectiveTimeoutMinutes()) * time.Minute
	bctx, cancel := context.WithTimeoutCause(ctx, timeout, errBuildTimeout)
	defer cancel()

	logf(log, "goldsmith: run %s (number %d) of image template %s started on %s", r.RunID, r.Number, t.ID, job.Owner)
	files := make(map[string]LocalFile, len(t.StagedFiles))
	for _, f := range t.StagedFiles {
		files[f.URI] = LocalFile{Path: s.abs(f.Path), SHA256: f.SHA256, Size: f.Size}
	}
	var phaseMu sync.Mutex
	phase := string(build.PhaseQueued) // a runSubState
	progress := func(ph build.Phase, detail string) {
		sub := ph.RunSubState()
		phaseMu.Lock()
		phase = sub
		phaseMu.Unlock()
		if err := s.setPhase(context.WithoutCancel(ctx), r.ID, sub); err != nil {
			s.log.Warn("record run phase", "run", r.ID, "err", err)
		}
		logf(log, "==> %s: %s", sub, detail)
	}
	tmpl, err := s.pinSource(ctx, t)
	if err != nil {
		logf(log, "goldsmith: %v", err)
		return s.finishRun(ctx, job, r.ID, RunFailed, err.Error(), nil)
	}
	req := RunRequest{RunID: r.RunID, TemplateID: t.ID, Template: tmpl, Files: files, WorkDir: workDir}
	res, execErr := s.exec.Execute(withRunLocation(bctx, t.Location), req, log, progress)
	if execErr == nil && bctx.Err() == nil {
		if phase != string(build.PhaseDistributing) {
			progress(build.PhaseDistributing, "publishing the outputs")
		}
		return s.distribute(bctx, job, r.ID, res, nil, log, false)
	}
	cause := context.Cause(bctx)
	phaseMu.Lock()
	last := phase
	phaseMu.Unlock()
	switch {
	case errors.Is(cause, queue.ErrStopping), errors.Is(cause, queue.ErrLeaseLost):
		logf(log, "goldsmith: the run was interrupted: %v", cause)
		return cause // the queue calls Interrupted
	case errors.Is(cause, queue.ErrCanceled):
		logf(log, "goldsmith: the run was canceled during %s", last)
		return s.finishRun(ctx, job, r.ID, RunCanceled, fmt.Sprintf("The run was canceled during %s.", last), nil)
	case errors.Is(cause, errBuildTimeout):
		msg := fmt.Sprintf("The build timed out after %d minutes (buildTimeoutInMinutes) during %s.", t.Template.Properties.EffectiveTimeoutMinutes(), last)
		logf(log, "goldsmith: %s", msg)
		return s.finishRun(ctx, job, r.ID, RunFailed, msg, &OperationError{Code: "BuildTimeout", Message: msg})
	}
	if execErr == nil {
		execErr = bctx.Err()
	}
	logf(log, "goldsmith: the run failed during %s: %v", last, execErr)
	return s.finishRun(ctx, job, r.ID, RunFailed, execErr.Error(), nil)
}

// Interrupted reports a run whose server died or stopped as Failed, stops
// the processes it left and removes its scratch files.
func (h runHandler) Interrupted(ctx context.Context, tx *store.Tx, job queue.Job, cause error) (bool, error) {
	s := h.s
	var p runPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return false, err
	}
	var r Run
	if _, err := tx.GetJSON(ctx, p.Run, &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	workDir := s.abs(r.WorkDir)
	machine.KillRecorded(workDir)
	if err := os.RemoveAll(workDir); err != nil {
		s.log.Warn("remove work directory", "dir", workDir, "err", err)
	}
	if !r.Active() {
		return false, nil
	}
	state, msg := RunFailed, fmt.Sprintf("The run was interrupted during %s: %v. Run the template again.", r.SubState, cause)
	if errors.Is(cause, queue.ErrStopping) {
		msg = fmt.Sprintf("The run was interrupted during %s because the goldsmith server stopped. Run the template again.", r.SubState)
	} else {
		msg = fmt.Sprintf("The run was interrupted during %s: the goldsmith server running it stopped unexpectedly (%v). Run the template again.", r.SubState, cause)
	}
	if r.State == RunCanceling {
		state, msg = RunCanceled, fmt.Sprintf("The run was canceled during %s.", r.SubState)
	}
	if f, err := s.openRunLog(r); err == nil {
		logf(f, "goldsmith: %s", msg)
		f.Close()
	}
	var t ImageTemplate
	_, err := tx.GetJSON(ctx, r.TemplateID, &t)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	tp := &t
	if err != nil {
		tp = nil
	}
	if err := s.endRun(ctx, tx, tp, &r, state, msg, &OperationError{Code: "RunInterrupted", Message: msg}); err != nil {
		return false, err
	}
	if tp != nil {
		return false, tx.PutJSON(ctx, t.ID, TypeImageTemplate, t)
	}
	return false, nil
}

// finishRun ends a run and its job in one transaction.
func (s *Service) finishRun(ctx context.Context, job queue.Job, runID, state, message string, opErr *OperationError) error {
	ctx = context.WithoutCancel(ctx)
	return s.st.Update(ctx, func(tx *store.Tx) error {
		return s.finishRunTx(ctx, tx, job, runID, state, message, opErr)
	})
}

func (s *Service) finishRunTx(ctx context.Context, tx *store.Tx, job queue.Job, runID, state, message string, opErr *OperationError) error {
	var r Run
	if _, err := tx.GetJSON(ctx, runID, &r); err != nil {
		return err
	}
	if !r.Active() {
		_, err := s.q.Finish(ctx, tx, job, queue.Done, "")
		return err
	}
	var t ImageTemplate
	_, err := tx.GetJSON(ctx, r.TemplateID, &t)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	tp := &t
	if err != nil {
		tp = nil
	}
	if err := s.endRun(ctx, tx, tp, &r, state, message, opErr); err != nil {
		return err
	}
	if tp != nil {
		if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
			return err
		}
	}
	jobState := queue.Done
	switch state {
	case RunFailed:
		jobState = queue.Failed
	case RunCanceled:
		jobState = queue.Canceled
	}
	_, err = s.q.Finish(ctx, tx, job, jobState, message)
	return err
}

// setPhase records the run's current phase, a runSubState.
func (s *Service) setPhase(ctx context.Context, runID string, sub string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		var r Run
		if _, err := tx.GetJSON(ctx, runID, &r); err != nil {
			return err
		}
		if !r.Active() {
			return nil
		}
		r.SubState = sub
		if err := tx.PutJSON(ctx, r.ID, TypeRun, r); err != nil {
			return err
		}
		var t ImageTemplate
		if _, err := tx.GetJSON(ctx, r.TemplateID, &t); err != nil {
			return err
		}
		if t.ActiveRun != r.RunID || t.LastRunStatus == nil {
			return nil
		}
		t.LastRunStatus.RunSubState = sub
		return tx.PutJSON(ctx, t.ID, TypeImageTemplate, t)
	})
}

// openRunLog opens the run's customization.log for appending.
func (s *Service) openRunLog(r Run) (*os.File, error) {
	p := s.abs(r.LogPath)
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

// LogReader reads a run's customization.log. With follow, reads block
// until the run writes more and end when the run has ended and everything
// is read.
func (s *Service) LogReader(ctx context.Context, templateID, runID string, follow bool) (io.ReadCloser, Run, error) {
	r, err := s.GetRun(ctx, templateID, runID)
	if err != nil {
		return nil, r, err
	}
	f, err := os.Open(s.abs(r.LogPath))
	if errors.Is(err, os.ErrNotExist) {
		if !follow || !r.Active() {
			return io.NopCloser(strings.NewReader("")), r, nil
		}
		f = nil
	} else if err != nil {
		return nil, r, fmt.Errorf("open run log: %w", err)
	}
	if !follow {
		return f, r, nil
	}
	return &follower{s: s, ctx: ctx, f: f, run: r}, r, nil
}

// follower tails a growing log until its run ends.
type follower struct {
	s    *Service
	ctx  context.Context
	f    *os.File
	run  Run
	done bool
}

func (fl *follower) Read(p []byte) (int, error) {
	for {
		if fl.f == nil {
			f, err := os.Open(fl.s.abs(fl.run.LogPath))
			if err == nil {
				fl.f = f
			}
		}
		if fl.f != nil {
			n, err := fl.f.Read(p)
			if n > 0 || (err != nil && err != io.EOF) {
				return n, err
			}
		}
		if fl.done {
			return 0, io.EOF
		}
		select {
		case <-fl.ctx.Done():
			return 0, fl.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		var r Run
		err := fl.s.st.View(fl.ctx, func(tx *store.Tx) error { _, err := tx.GetJSON(fl.ctx, fl.run.ID, &r); return err })
		if err != nil || !r.Active() {
			fl.done = true // one more read drains what was written last
		}
	}
}

func (fl *follower) Close() error {
	if fl.f != nil {
		return fl.f.Close()
	}
	return nil
}

// templateOf returns the template id a nested id (run, runOutput, trigger) belongs to.
func templateOf(id resourceid.ID) string {
	t := id
	t.Types, t.Names = id.Types[:1], id.Names[:1]
	return t.String()
}
