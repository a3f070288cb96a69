package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/internal/pgtest"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// These tests run the Runner on a real store and queue (SQLite in a temp
// directory) with a fake of its Records, the resource model, which records
// what the runner asked of it.

const templateID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t"

// records is a fake Records holding one template and its runs.
type records struct {
	mu         sync.Mutex
	tmpl       resource.ImageTemplate
	runs       map[string]resource.Run
	phases     []string
	publishErr map[string]error // by runOutputName
	pinErr     error
	ended      map[string]chan resource.RunEnd
	// staging holds the template's staged files, as the staging store.
	staging *blob.Dir
}

func newRecords(distribute ...template.Distributor) *records {
	return &records{
		tmpl: resource.ImageTemplate{ID: templateID, Name: "t", Location: "westus2",
			Template: &template.Template{Properties: template.Properties{Distribute: distribute}}},
		runs: map[string]resource.Run{}, publishErr: map[string]error{}, ended: map[string]chan resource.RunEnd{}}
}

func (f *records) add(runID string) resource.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := resource.Run{ID: templateID + "/runs/" + runID, RunID: runID, Number: len(f.runs) + 1, TemplateID: templateID,
		State: resource.RunRunning, SubState: string(build.PhaseQueued), StartTime: time.Now(),
		LogPath: "staging/s/rg/packerlogs/" + runID + "/customization.log", WorkDir: "work/" + runID}
	f.runs[r.ID] = r
	f.ended[r.ID] = make(chan resource.RunEnd, 1)
	return r
}

func (f *records) Run(_ context.Context, _ *store.Tx, runID string) (resource.Run, *resource.ImageTemplate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[runID]
	if !ok {
		return r, nil, fmt.Errorf("run %s: %w", runID, store.ErrNotFound)
	}
	t := f.tmpl
	return r, &t, nil
}

func (f *records) Runs(context.Context, *store.Tx) ([]resource.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []resource.Run
	for _, r := range f.runs {
		out = append(out, r)
	}
	return out, nil
}

func (f *records) SetRunPhase(_ context.Context, runID, sub string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[runID]
	r.SubState = sub
	f.runs[runID] = r
	f.phases = append(f.phases, sub)
	return nil
}

func (f *records) PinSource(_ context.Context, t resource.ImageTemplate) (*template.Template, error) {
	return t.Template, f.pinErr
}

func (f *records) FetchStaged(ctx context.Context, sf resource.StagedFile, dst string) error {
	if f.staging == nil {
		return errors.New("no staging store")
	}
	_, err := blob.Fetch(ctx, f.staging, sf.SHA256, dst)
	return err
}

func (f *records) RunOutputs(context.Context, *store.Tx, string) ([]resource.Resource, error) {
	return nil, nil
}

func (f *records) Publish(_ context.Context, _ resource.ImageTemplate, r resource.Run, p resource.Publication) (resource.Published, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.publishErr[p.Target.RunOutputName]; err != nil {
		return resource.Published{}, err
	}
	if _, err := os.Stat(p.Output.Path); err != nil {
		return resource.Published{}, err
	}
	return resource.Published{ArtifactID: "/images/" + p.Target.RunOutputName + "#" + r.RunID}, nil
}

func (f *records) EndRun(_ context.Context, _ *store.Tx, runID string, end resource.RunEnd) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[runID]
	if !r.Active() {
		return false, nil
	}
	now := time.Now()
	r.State, r.Message, r.EndTime = end.State, end.Message, &now
	f.runs[runID] = r
	f.ended[runID] <- end
	return true, nil
}

func (f *records) setState(runID, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[runID]
	r.State = state
	f.runs[runID] = r
}

// executor is a fake Executor.
type executor func(ctx context.Context, run Request, log io.Writer, progress func(build.Phase, string)) (Result, error)

func (e executor) Execute(ctx context.Context, run Request, log io.Writer, progress func(build.Phase, string)) (Result, error) {
	return e(ctx, run, log, progress)
}

// builds writes one small disk in the work directory for every target.
func builds(ctx context.Context, run Request, _ io.Writer, progress func(build.Phase, string)) (Result, error) {
	progress(build.PhaseBuilding, "fake")
	p := filepath.Join(run.WorkDir, "out", "disk.raw")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(p, []byte("a disk of "+run.RunID), 0o600); err != nil {
		return Result{}, err
	}
	sum, size, err := disk.SHA256File(ctx, p)
	if err != nil {
		return Result{}, err
	}
	res := Result{OSType: "Linux", HyperVGeneration: "V1"}
	for _, d := range run.Template.Properties.Distribute {
		res.Outputs = append(res.Outputs, build.Output{RunOutputName: d.RunOutputName, Type: d.Type, Path: p, Format: "raw", SHA256: sum, Size: size})
	}
	return res, nil
}

// blocks reports Customizing and waits to be stopped.
func blocks(ctx context.Context, _ Request, _ io.Writer, progress func(build.Phase, string)) (Result, error) {
	progress(build.PhaseCustomizing, "waiting")
	<-ctx.Done()
	return Result{}, ctx.Err()
}

type harness struct {
	dir  string
	st   *store.Store
	q    *jobs.Queue
	rec  *records
	r    *Runner
	stop func() // stops the queue (the test's end does too)
}

// newHarness runs a Runner on database ("": SQLite in the data directory).
func newHarness(t *testing.T, database string, rec *records, exec Executor) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if database == "" {
		database = filepath.Join(dir, "goldsmith.db")
	}
	st, err := store.Open(ctx, database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := jobs.New(ctx, st, jobs.Options{Workers: 2, Exclusive: st.Dialect() == store.SQLite, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Store: st, Queue: q, Records: rec, Executor: exec, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = q.Run(qctx); close(done) }()
	var once sync.Once
	h := &harness{dir: dir, st: st, q: q, rec: rec, r: r, stop: func() { once.Do(func() { cancel(); <-done }) }}
	t.Cleanup(h.stop)
	return h
}

// start queues a new run's job.
func (h *harness) start(t *testing.T, runID string) (resource.Run, int64) {
	t.Helper()
	run := h.rec.add(runID)
	var job int64
	err := h.st.Update(context.Background(), func(tx *store.Tx) (err error) {
		job, err = NewQueue(h.q).Run(context.Background(), tx, run.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return run, job
}

func (h *harness) end(t *testing.T, run resource.Run) resource.RunEnd {
	t.Helper()
	select {
	case end := <-h.rec.ended[run.ID]:
		return end
	case <-time.After(30 * time.Second):
		t.Fatalf("run %s did not end", run.RunID)
	}
	return resource.RunEnd{}
}

// jobState waits for a job to leave the running state and returns it.
func (h *harness) jobState(t *testing.T, id int64) rivertype.JobState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, err := h.q.State(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if state != rivertype.JobStateRunning && state != rivertype.JobStateAvailable {
			return state
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s", id, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) waitPhase(t *testing.T, runID, sub string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.rec.mu.Lock()
		got := h.rec.runs[templateID+"/runs/"+runID].SubState
		h.rec.mu.Unlock()
		if got == sub {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s never reached %s (it is in %s)", runID, sub, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone waits for a run's scratch space to go: the job ends, in the
// transaction that ends the run, before its cleanups have run.
func gone(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(p)
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s is still there (%v)", p, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	managed = template.Distributor{Type: template.DistributeManagedImage, RunOutputName: "img"}
	vhd     = template.Distributor{Type: template.DistributeVHD, RunOutputName: "vhd"}
)

// TestRunEnds runs one run per case through the queue and checks the end
// the runner records, its job's end, the log and the scratch space.
// runEndCase is a case of TestRunEnds.
type runEndCase struct {
	name       string
	exec       executor
	publishErr map[string]error
	pinErr     error
	cancelIn   string // cancel the run once it is in this phase
	state      string
	message    string // substring
	code       string // the operation error's code, "" for the default
	outputs    map[string]bool
	kept       []string
	log        string
}

func TestRunEnds(t *testing.T) {
	tests := []runEndCase{
		{name: "every target published", exec: builds,
			state: resource.RunSucceeded, outputs: map[string]bool{"img": true, "vhd": true},
			log: "goldsmith: distributed img to /images/img#"},
		{name: "one target fails", exec: builds, publishErr: map[string]error{"vhd": errors.New("no room")},
			state: resource.RunPartiallySucceeded, message: "Failed in distributing 1 images out of total 2: vhd (VHD): no room The build outputs are kept",
			outputs: map[string]bool{"img": true, "vhd": false}, kept: []string{"vhd"},
			log: "goldsmith: distributing vhd failed: no room"},
		{name: "every target fails", exec: builds, publishErr: map[string]error{"vhd": errors.New("no room"), "img": errors.New("no group")},
			state: resource.RunFailed, message: "Failed in distributing 2 images out of total 2", code: "InternalOperationError",
			outputs: map[string]bool{"img": false, "vhd": false}, kept: []string{"img", "vhd"}},
		{name: "the build fails",
			exec: func(_ context.Context, _ Request, _ io.Writer, progress func(build.Phase, string)) (Result, error) {
				progress(build.PhaseBuilding, "fake")
				return Result{}, errors.New(`customizer 1/1 "step" (Shell) failed with exit code 3`)
			},
			state: resource.RunFailed, message: `customizer 1/1 "step" (Shell) failed with exit code 3`,
			log: `goldsmith: the run failed during Building: customizer 1/1 "step" (Shell) failed with exit code 3`},
		{name: "the source cannot be pinned", exec: builds, pinErr: errors.New("BadSharedImageVersionSource: no version"),
			state: resource.RunFailed, message: "BadSharedImageVersionSource: no version"},
		{name: "canceled during a build", exec: blocks, cancelIn: "Customizing",
			state: resource.RunCanceled, message: "The run was canceled during Customizing.",
			log: "goldsmith: the run was canceled during Customizing"},
	}
	for _, b := range cluster.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { runEnds(t, b.Database(t), tt) })
			}
		})
	}
}

func runEnds(t *testing.T, database string, tt runEndCase) {
	rec := newRecords(managed, vhd)
	rec.publishErr, rec.pinErr = tt.publishErr, tt.pinErr
	h := newHarness(t, database, rec, tt.exec)
	run, job := h.start(t, "r1")
	if tt.cancelIn != "" {
		h.waitPhase(t, run.RunID, tt.cancelIn)
		rec.setState(run.ID, resource.RunCanceling)
		err := h.st.Update(context.Background(), func(tx *store.Tx) error {
			running, err := NewQueue(h.q).Cancel(context.Background(), tx, job)
			if err == nil && !running {
				err = errors.New("the job is not running")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	end := h.end(t, run)
	if end.State != tt.state || !strings.Contains(end.Message, tt.message) {
		t.Errorf("end: %s %q, want %s with %q", end.State, end.Message, tt.state, tt.message)
	}
	if code := ""; end.Error != nil {
		if code = end.Error.Code; code != tt.code {
			t.Errorf("operation error code %q, want %q", code, tt.code)
		}
	} else if tt.code != "" {
		t.Errorf("no operation error, want %s", tt.code)
	}
	outputs := map[string]bool{}
	var kept []string
	if d := end.Distribution; d != nil {
		for _, o := range d.Outputs {
			outputs[o.Name] = o.Succeeded
		}
		for _, k := range d.Kept {
			kept = append(kept, k.RunOutputName)
			if _, err := os.Stat(filepath.Join(h.dir, k.Path)); err != nil || !strings.HasPrefix(k.Path, d.KeptDir+"/") {
				t.Errorf("kept output %s at %s (in %s): %v", k.RunOutputName, k.Path, d.KeptDir, err)
			}
		}
	}
	if tt.outputs == nil {
		tt.outputs = map[string]bool{}
	}
	if fmt.Sprint(outputs) != fmt.Sprint(tt.outputs) || fmt.Sprint(kept) != fmt.Sprint(tt.kept) {
		t.Errorf("runOutputs %v, kept %v; want %v, %v", outputs, kept, tt.outputs, tt.kept)
	}
	// The runner ends the job in the transaction that ends the run,
	// whatever the run's end.
	if got := h.jobState(t, job); got != rivertype.JobStateCompleted {
		t.Errorf("job %s, want completed", got)
	}
	gone(t, filepath.Join(h.dir, run.WorkDir))
	log, err := os.ReadFile(filepath.Join(h.dir, run.LogPath))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), tt.log) || !strings.Contains(string(log), "goldsmith: run r1 (number 1) of image template "+templateID+" started") {
		t.Errorf("log lacks %q:\n%s", tt.log, log)
	}
}

// TestStagedFiles checks that a run fetches its template's staged files
// from the staging store into its scratch space, verified, and hands them
// to the Executor; a file the store lacks fails the run.
func TestStagedFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		missing bool
		state   string
		message string
	}{
		{name: "fetched", state: resource.RunSucceeded},
		{name: "missing from the store", missing: true, state: resource.RunFailed, message: "open blob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rec := newRecords(managed)
			st, err := blob.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			rec.staging = st
			contents := map[string]string{"https://example.com/a/setup.sh": "echo setup\n", "https://example.com/b/data.txt": "some data\n"}
			for uri, body := range contents {
				p := filepath.Join(t.TempDir(), "f")
				if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				sum, size, err := disk.SHA256File(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				rec.tmpl.StagedFiles = append(rec.tmpl.StagedFiles, resource.StagedFile{URI: uri, SHA256: sum, Size: size})
				if tc.missing {
					continue
				}
				if _, err := st.Put(ctx, sum, p, blob.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]string{}
			h := newHarness(t, "", rec, executor(func(ctx context.Context, run Request, log io.Writer, progress func(build.Phase, string)) (Result, error) {
				for uri, f := range run.Files {
					if !strings.HasPrefix(f.Path, run.WorkDir+string(filepath.Separator)) {
						return Result{}, fmt.Errorf("%s is at %s, not in the scratch space", uri, f.Path)
					}
					b, err := os.ReadFile(f.Path)
					if err != nil {
						return Result{}, err
					}
					seen[uri] = string(b)
				}
				return builds(ctx, run, log, progress)
			}))
			run, _ := h.start(t, "r1")
			end := h.end(t, run)
			if end.State != tc.state || !strings.Contains(end.Message, tc.message) {
				t.Fatalf("end %s %q, want %s with %q", end.State, end.Message, tc.state, tc.message)
			}
			if !tc.missing && fmt.Sprint(seen) != fmt.Sprint(contents) {
				t.Fatalf("the executor read %v, want %v", seen, contents)
			}
		})
	}
}

// TestPhases checks what the runner records of the phases a build reports:
// each as AIB's runSubState, and Distributing once the build is done.
func TestPhases(t *testing.T) {
	rec := newRecords(managed)
	h := newHarness(t, "", rec, executor(func(ctx context.Context, run Request, log io.Writer, progress func(build.Phase, string)) (Result, error) {
		progress(build.PhaseCustomizing, "step 1")
		progress(build.PhaseGeneralizing, "deprovisioning")
		progress(build.PhaseValidating, "checks")
		return builds(ctx, run, log, progress)
	}))
	run, _ := h.start(t, "r1")
	if end := h.end(t, run); end.State != resource.RunSucceeded {
		t.Fatalf("end: %s %q", end.State, end.Message)
	}
	want := []string{"Customizing", "Customizing", "Validating", "Building", "Distributing"}
	if fmt.Sprint(rec.phases) != fmt.Sprint(want) {
		t.Errorf("phases %v, want %v", rec.phases, want)
	}
	log, _ := os.ReadFile(filepath.Join(h.dir, run.LogPath))
	for _, line := range []string{"==> Customizing: deprovisioning", "==> Distributing: publishing the outputs"} {
		if !strings.Contains(string(log), line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
}

// TestInterrupted stops the queue during a build: the run is reported
// interrupted, the process the build recorded is stopped and its scratch
// space removed.
func TestInterrupted(t *testing.T) {
	for _, b := range cluster.Backends() {
		t.Run(b.Name, func(t *testing.T) { interrupted(t, b.Database(t)) })
	}
}

func interrupted(t *testing.T, database string) {
	rec := newRecords(managed)
	started := make(chan *exec.Cmd, 1)
	h := newHarness(t, database, rec, executor(func(ctx context.Context, run Request, log io.Writer, progress func(build.Phase, string)) (Result, error) {
		vm := exec.Command("sleep", "60")
		vm.Dir = run.WorkDir
		if err := vm.Start(); err != nil {
			return Result{}, err
		}
		if err := machine.WritePIDFile(filepath.Join(run.WorkDir, "vm.pid"), vm.Process.Pid); err != nil {
			return Result{}, err
		}
		started <- vm
		return blocks(ctx, run, log, progress)
	}))
	run, job := h.start(t, "r1")
	vm := <-started
	exited := make(chan struct{})
	go func() { _ = vm.Wait(); close(exited) }()
	t.Cleanup(func() { _ = vm.Process.Kill(); <-exited })
	h.waitPhase(t, run.RunID, "Customizing")
	h.stop()

	end := h.end(t, run)
	want := "The run was interrupted during Customizing because the goldsmith server stopped. Run the template again."
	if end.State != resource.RunFailed || end.Message != want || end.Error == nil || end.Error.Code != "RunInterrupted" {
		t.Errorf("end: %s %q %+v, want Failed %q RunInterrupted", end.State, end.Message, end.Error, want)
	}
	if got := h.jobState(t, job); got != rivertype.JobStateDiscarded {
		t.Errorf("job %s, want discarded", got)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("the build's process still runs")
	}
	gone(t, filepath.Join(h.dir, run.WorkDir))
	log, _ := os.ReadFile(filepath.Join(h.dir, run.LogPath))
	if !strings.Contains(string(log), "goldsmith: the run was interrupted: "+jobs.ErrStopping.Error()) || !strings.Contains(string(log), want) {
		t.Errorf("log:\n%s", log)
	}
}

// TestEnding checks how a build that did not finish ends, by its context's
// cause.
func TestEnding(t *testing.T) {
	execErr := errors.New("exit code 3")
	tests := []struct {
		name        string
		cause       error
		execErr     error
		interrupted bool
		state       string
		message     string
		code        string
		logLine     string
	}{
		{"stopping", jobs.ErrStopping, context.Canceled, true, "", "", "", "the run was interrupted: " + jobs.ErrStopping.Error()},
		{"lease lost", jobs.ErrLeaseLost, context.Canceled, true, "", "", "", "the run was interrupted: " + jobs.ErrLeaseLost.Error()},
		{"canceled", jobs.ErrCanceled, context.Canceled, false, resource.RunCanceled, "The run was canceled during Customizing.", "", "the run was canceled during Customizing"},
		{"timed out", errBuildTimeout, context.DeadlineExceeded, false, resource.RunFailed,
			"The build timed out after 90 minutes (buildTimeoutInMinutes) during Customizing.", "BuildTimeout",
			"The build timed out after 90 minutes (buildTimeoutInMinutes) during Customizing."},
		{"the build failed", nil, execErr, false, resource.RunFailed, "exit code 3", "", "the run failed during Customizing: exit code 3"},
		{"no error but the context ended", context.Canceled, nil, false, resource.RunFailed, "context canceled", "", "the run failed during Customizing: context canceled"},
	}
	for _, tt := range tests {
		end, interrupted := ending(tt.cause, tt.execErr, "Customizing", 90)
		code := ""
		if end.Error != nil {
			code = end.Error.Code
		}
		if interrupted != tt.interrupted || end.State != tt.state || end.Message != tt.message || code != tt.code || end.logLine != tt.logLine {
			t.Errorf("%s: %v %s %q %q %q", tt.name, interrupted, end.State, end.Message, code, end.logLine)
		}
	}
}

// TestInterruption checks the end of a run whose process stopped or died.
func TestInterruption(t *testing.T) {
	died := errors.New("its worker w1 stopped without finishing it")
	tests := []struct {
		name    string
		state   string
		cause   error
		want    string
		wantEnd string
	}{
		{"the server stopped", resource.RunRunning, jobs.ErrStopping, resource.RunFailed,
			"The run was interrupted during Building because the goldsmith server stopped. Run the template again."},
		{"the server died", resource.RunRunning, died, resource.RunFailed,
			"The run was interrupted during Building: the goldsmith server running it stopped unexpectedly (its worker w1 stopped without finishing it). Run the template again."},
		{"it was being canceled", resource.RunCanceling, died, resource.RunCanceled, "The run was canceled during Building."},
	}
	for _, tt := range tests {
		end := interruption(resource.Run{State: tt.state, SubState: "Building"}, tt.cause)
		if end.State != tt.want || end.Message != tt.wantEnd || end.Error == nil || end.Error.Code != "RunInterrupted" || end.Error.Message != tt.wantEnd {
			t.Errorf("%s: %s %q %+v", tt.name, end.State, end.Message, end.Error)
		}
	}
}

// TestSweep removes the scratch space of runs no longer active and kept
// outputs no run refers to, and keeps the rest.
func TestSweep(t *testing.T) {
	rec := newRecords(managed)
	h := newHarness(t, "", rec, executor(builds))
	h.stop()
	active := rec.add("active")
	ended := rec.add("ended")
	now := time.Now()
	rec.runs[ended.ID] = func(r resource.Run) resource.Run { r.EndTime, r.KeptDir = &now, "kept/ended"; return r }(ended)
	paths := map[string]bool{active.WorkDir: true, ended.WorkDir: false, "work/stray": false, "kept/ended": true, "kept/old": false, "work/.hidden": true}
	for p := range paths {
		if err := os.MkdirAll(filepath.Join(h.dir, p, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.r.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	for p, stays := range paths {
		_, err := os.Stat(filepath.Join(h.dir, p))
		if stays != (err == nil) {
			t.Errorf("%s: stays %v, want %v (%v)", p, err == nil, stays, err)
		}
	}
}

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c }) }
