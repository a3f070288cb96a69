package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/goldsmith-dev/goldsmith/template"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
)

// StartRun starts a run of a template (AIB's POST .../run): the run is
// queued and the returned operation reports its end. A template that is
// already running answers 409. The run records the actor ctx carries
// (WithActor) as who started it.
func (s *Service) StartRun(ctx context.Context, templateID string) (Operation, error) {
	var op Operation
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		r, err := s.startRunTx(ctx, tx, &t, actorFrom(ctx))
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

// startRunTx queues a run of t in tx, started by startedBy, and updates t
// (the caller stores it).
func (s *Service) startRunTx(ctx context.Context, tx *store.Tx, t *ImageTemplate, startedBy string) (Run, error) {
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
		StartTime: tx.Now(), StartedBy: startedBy, OperationID: op.ID,
		LogPath: path.Join(s.stagingDir(t.ExactStagingResourceGroup), "packerlogs", runID, "customization.log"),
		WorkDir: path.Join("work", runID)}
	r.JobID, err = s.runs.Run(ctx, tx, r.ID)
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
	if err := s.releaseDeleted(ctx, tx, outs); err != nil {
		return Run{}, err
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
	running, err := s.runs.Cancel(ctx, tx, r.JobID)
	if err != nil {
		return err
	}
	if running {
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

// Run reads a run and its template in tx; the template is nil once it is
// deleted. Package runner reads the runs it runs with it.
func (s *Service) Run(ctx context.Context, tx *store.Tx, runID string) (Run, *ImageTemplate, error) {
	var r Run
	if _, err := tx.GetJSON(ctx, runID, &r); err != nil {
		return r, nil, err
	}
	var t ImageTemplate
	if _, err := tx.GetJSON(ctx, r.TemplateID, &t); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return r, nil, nil
		}
		return r, nil, err
	}
	return r, &t, nil
}

// Runs reads every run of every template in tx (documents that do not
// decode are skipped).
func (s *Service) Runs(ctx context.Context, tx *store.Tx) ([]Run, error) {
	docs, err := tx.List(ctx, store.Query{Type: TypeRun})
	if err != nil {
		return nil, err
	}
	runs := make([]Run, 0, len(docs))
	for _, d := range docs {
		var r Run
		if json.Unmarshal(d.Body, &r) == nil {
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// RunEnd is how a run ends.
type RunEnd struct {
	State   string // a runState: RunSucceeded, RunPartiallySucceeded, RunFailed or RunCanceled
	Message string
	// Error is the run operation's error; nil means the state's default
	// (PackerBuildFailed for Failed, OperationCanceled for Canceled).
	Error *OperationError
	// Distribution, when set, is what the run's distribution did, recorded
	// with its end.
	Distribution *Distribution
}

// Distribution is what a distribution did: the runOutputs of the targets
// it published (or failed to) and the build outputs kept for a retry.
type Distribution struct {
	Outputs []RunOutput
	Kept    []KeptOutput
	KeptDir string // data-directory-relative
}

// RunOutput is one distribute target's result.
type RunOutput struct {
	Name      string // runOutputName
	Type      template.DistributeType
	Succeeded bool
	Published Published
}

// EndRun records a run's end in tx: the run, its template's lastRunStatus,
// the run's and cancel request's operations and, after a distribution, the
// runOutputs and kept outputs; a new gallery image version fires the
// SourceImage triggers that follow its definition. ended is false when the
// run had ended already (nothing changes).
func (s *Service) EndRun(ctx context.Context, tx *store.Tx, runID string, end RunEnd) (ended bool, err error) {
	r, t, err := s.Run(ctx, tx, runID)
	if err != nil || !r.Active() {
		return false, err
	}
	if d := end.Distribution; d != nil {
		for _, o := range d.Outputs {
			state := StateSucceeded
			if !o.Succeeded {
				state = StateFailed
			}
			ro := Resource{ID: r.TemplateID + "/runOutputs/" + o.Name, Name: o.Name, Type: TypeRunOutput,
				Properties: map[string]any{"provisioningState": state}, SystemData: newSystemData(tx.Now())}
			if o.Published.ArtifactID != "" {
				ro.Properties["artifactId"] = o.Published.ArtifactID
			}
			if o.Published.ArtifactURI != "" {
				ro.Properties["artifactUri"] = o.Published.ArtifactURI
			}
			ro.Artifact = o.Published.Artifact
			var old Resource
			if _, err := tx.GetJSON(ctx, ro.ID, &old); err == nil && old.Artifact != nil &&
				(ro.Artifact == nil || old.Artifact.Holder != ro.Artifact.Holder) {
				if err := s.releaseArtifact(ctx, tx, old.Artifact); err != nil {
					return false, err
				}
			}
			if err := tx.PutJSON(ctx, ro.ID, TypeRunOutput, ro); err != nil {
				return false, err
			}
		}
		r.Kept, r.KeptDir = d.Kept, d.KeptDir
	}
	if err := s.endRun(ctx, tx, t, &r, end.State, end.Message, end.Error); err != nil {
		return false, err
	}
	if t == nil {
		return true, nil
	}
	if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
		return false, err
	}
	if end.Distribution != nil {
		s.fireTriggers(ctx, tx, *t, end.Distribution.Outputs)
	}
	return true, nil
}

// SetRunPhase records the phase an active run is in (a runSubState), in
// the run and its template's lastRunStatus.
func (s *Service) SetRunPhase(ctx context.Context, runID string, sub string) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		var r Run
		if _, err := tx.GetJSON(ctx, runID, &r); err != nil {
			return err
		}
		if !r.Active() {
			return nil
		}
		if n := len(r.Phases); n == 0 || r.Phases[n-1].Name != sub {
			r.Phases = append(r.Phases, RunPhase{Name: sub, Start: tx.Now()})
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

// ManifestName is the file beside a run's customization.log that keeps the
// build's manifest (build.Manifest): its phases, customizers and outputs.
const ManifestName = "manifest.json"

// manifestPath is where a run's build manifest is kept (absolute).
func (s *Service) manifestPath(r Run) string {
	return filepath.Join(filepath.Dir(s.abs(r.LogPath)), ManifestName)
}

// RunManifest reads the build manifest kept for a run; nil when the build
// left none (it has not ended, or ended before it began).
func (s *Service) RunManifest(r Run) (*build.Manifest, error) {
	data, err := os.ReadFile(s.manifestPath(r))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the manifest of run %s: %w", r.RunID, err)
	}
	var m build.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode the manifest of run %s: %w", r.RunID, err)
	}
	return &m, nil
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

type actorKey struct{}

// WithActor returns ctx naming who acts (the authenticated caller, as the
// API logs it); runs started with it record the name.
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

func actorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "unknown"
}
