package resource_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/internal/pgtest"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/runner"
	"github.com/goldsmith-dev/goldsmith/server"
)

// These tests drive the resource model through resource.Service itself,
// not through HTTP: a real store, queue and data directory assembled by
// package server, and fake executors (of runner.Executor) that say what
// a build did.

const sub = "11111111-2222-3333-4444-555555555555"

// executor is a fake runner.Executor.
type executor func(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (runner.Result, error)

func (f executor) Execute(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (runner.Result, error) {
	return f(ctx, run, log, progress)
}

// builds writes a small raw disk in the run's work directory for every
// distribute target, as the engine leaves its outputs.
func builds(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (runner.Result, error) {
	progress(build.PhaseBuilding, "fake")
	p := filepath.Join(run.WorkDir, "disk.raw")
	if err := os.WriteFile(p, []byte("a disk of "+run.RunID), 0o600); err != nil {
		return runner.Result{}, err
	}
	sum, size, err := disk.SHA256File(ctx, p)
	if err != nil {
		return runner.Result{}, err
	}
	res := runner.Result{OSType: "Linux", HyperVGeneration: "V1"}
	for _, d := range run.Template.Properties.Distribute {
		res.Outputs = append(res.Outputs, build.Output{RunOutputName: d.RunOutputName, Type: d.Type, Path: p, Format: "raw", SHA256: sum, Size: size})
	}
	return res, nil
}

type fixture struct {
	svc   *resource.Service
	dir   string
	close func() // stops the queue and closes the server; the test's end does too
}

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c }) }

// open assembles a server on dir (a new one when "") and works its queue
// until the test ends. With GOLDSMITH_TEST_BACKEND=postgres its database
// is PostgreSQL, the same for every server opened on dir.
func open(t *testing.T, dir string, exec runner.Executor) *fixture {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	database := ""
	if os.Getenv("GOLDSMITH_TEST_BACKEND") == "postgres" {
		p := filepath.Join(dir, "test-database")
		b, err := os.ReadFile(p)
		if database = string(b); os.IsNotExist(err) {
			database = cluster.Database(t)
			err = os.WriteFile(p, []byte(database), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.Open(context.Background(), server.Config{DataDir: dir, Database: database, Workers: 2, Executor: exec, QueuePoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	var once sync.Once
	f := &fixture{svc: srv.Service(), dir: srv.DataDir(), close: func() { once.Do(func() { stop(); <-done; srv.Close() }) }}
	t.Cleanup(f.close)
	return f
}

func (f *fixture) group(t *testing.T, name string) {
	t.Helper()
	if _, _, err := f.svc.PutResourceGroup(context.Background(), sub, name, resource.Input{Location: "westus2"}); err != nil {
		t.Fatal(err)
	}
}

func templateID(name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/" + name
}

func imageID(group string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Compute/images/out"
}

// templateBody is a valid 2024-02-01 template with one managed image target in imageGroup.
func templateBody(imageGroup string, inline ...string) map[string]any {
	cmds := make([]any, len(inline))
	for i, c := range inline {
		cmds[i] = c
	}
	return map[string]any{
		"location": "westus2",
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id": map[string]any{}}},
		"properties": map[string]any{
			"source":    map[string]any{"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
			"customize": []any{map[string]any{"type": "Shell", "name": "step", "inline": cmds}},
			"distribute": []any{map[string]any{"type": "ManagedImage", "runOutputName": "img", "location": "westus2",
				"imageId": imageID(imageGroup)}},
		},
	}
}

// submit creates a template and waits for its submission.
func (f *fixture) submit(t *testing.T, name string, body map[string]any) string {
	t.Helper()
	id, err := resourceid.Parse(templateID(name))
	if err != nil {
		t.Fatal(err)
	}
	_, op, err := f.svc.CreateTemplate(context.Background(), id, body, "2024-02-01")
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, op.ID)
	return id.String()
}

// wait polls an operation until it ends.
func (f *fixture) wait(t *testing.T, opID string) resource.Operation {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		op, err := f.svc.Operation(context.Background(), opID)
		if err != nil {
			t.Fatal(err)
		}
		if op.Done() {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still %s", opID, op.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunLifecycle runs a template: the run goes through its phases (the
// engine's Generalizing is recorded as AIB's Customizing), its output
// becomes a managed image and a runOutput, and its scratch space goes.
func TestRunLifecycle(t *testing.T) {
	ctx := context.Background()
	var f *fixture
	seen := make(chan string, 1)
	f = open(t, "", executor(func(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (runner.Result, error) {
		progress(build.PhaseGeneralizing, "deprovisioning")
		tmpl, err := f.svc.GetTemplate(ctx, run.TemplateID)
		if err != nil {
			return runner.Result{}, err
		}
		seen <- tmpl.LastRunStatus.RunSubState
		return builds(ctx, run, log, progress)
	}))
	f.group(t, "rg")
	id := f.submit(t, "t", templateBody("rg", "echo hi"))
	op, err := f.svc.StartRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if op := f.wait(t, op.ID); op.Status != resource.OpSucceeded {
		t.Fatalf("run operation %s: %+v", op.Status, op.Error)
	}
	if sub := <-seen; sub != "Customizing" {
		t.Errorf("runSubState during Generalizing = %q, want Customizing", sub)
	}
	r, err := f.svc.GetRun(ctx, id, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != resource.RunSucceeded || r.SubState != string(build.PhaseDistributing) || r.Number != 1 {
		t.Errorf("run: state %s, subState %s, number %d", r.State, r.SubState, r.Number)
	}
	tmpl, err := f.svc.GetTemplate(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.ActiveRun != "" || tmpl.LastRunStatus.RunState != resource.RunSucceeded {
		t.Errorf("template after the run: active %q, lastRunStatus %+v", tmpl.ActiveRun, tmpl.LastRunStatus)
	}
	out, err := f.svc.GetRunOutput(ctx, id, "img")
	if err != nil || out.Properties["artifactId"] != imageID("rg") || out.Properties["provisioningState"] != resource.StateSucceeded {
		t.Errorf("runOutput: %+v %v", out.Properties, err)
	}
	img, err := f.svc.GetResource(ctx, imageID("rg"))
	if err != nil {
		t.Fatal(err)
	}
	if img.Artifact == nil || img.Artifact.OSType != "Linux" || img.Properties["hyperVGeneration"] != "V1" {
		t.Errorf("image: artifact %+v, properties %v", img.Artifact, img.Properties)
	}
	if _, err := os.Stat(filepath.Join(f.dir, r.WorkDir)); !os.IsNotExist(err) {
		t.Errorf("the run's work directory is still there (%v)", err)
	}
	rd, _, err := f.svc.LogReader(ctx, id, "", false)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(rd)
	rd.Close()
	for _, want := range []string{"==> Customizing: deprovisioning", "==> Building: fake", "goldsmith: distributed img"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	del, err := f.svc.DeleteTemplate(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, del.ID)
	var rerr *resource.Error
	if _, err := f.svc.GetTemplate(ctx, id); !errors.As(err, &rerr) || rerr.Kind != resource.KindNotFound {
		t.Errorf("template after delete: %v", err)
	}
	if _, err := f.svc.GetResource(ctx, imageID("rg")); err != nil {
		t.Errorf("the image outlives its template: %v", err)
	}
}

// TestRunEnds checks how a run that does not succeed ends: its state, its
// message and its operation's error.
func TestRunEnds(t *testing.T) {
	blocked := func(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (runner.Result, error) {
		progress(build.PhaseCustomizing, "waiting to be canceled")
		<-ctx.Done()
		return runner.Result{}, ctx.Err()
	}
	tests := []struct {
		name        string
		exec        executor
		imageGroup  string
		cancel      bool
		state       string
		message     string // substring
		opStatus    string
		opCode      string
		keepsOutput bool
	}{
		{name: "the build fails", imageGroup: "rg",
			exec: func(context.Context, runner.Request, io.Writer, func(build.Phase, string)) (runner.Result, error) {
				return runner.Result{}, errors.New(`customizer 1/1 "step" (Shell) failed with exit code 3`)
			},
			state: resource.RunFailed, message: `customizer 1/1 "step" (Shell) failed with exit code 3`, opStatus: resource.OpFailed, opCode: "PackerBuildFailed"},
		{name: "canceled during a build", imageGroup: "rg", exec: blocked, cancel: true,
			state: resource.RunCanceled, message: "The run was canceled during Customizing.", opStatus: resource.OpCanceled, opCode: "OperationCanceled"},
		{name: "no output for a target", imageGroup: "rg",
			exec: func(context.Context, runner.Request, io.Writer, func(build.Phase, string)) (runner.Result, error) {
				return runner.Result{}, nil
			},
			state: resource.RunFailed, message: "img (ManagedImage): the build produced no output for img", opStatus: resource.OpFailed, opCode: "InternalOperationError"},
		{name: "every target fails to publish", imageGroup: "missing", exec: builds,
			state: resource.RunFailed, message: "the resource group 'missing' of imageId", opStatus: resource.OpFailed, opCode: "InternalOperationError",
			keepsOutput: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := open(t, "", tt.exec)
			f.group(t, "rg")
			id := f.submit(t, "t", templateBody(tt.imageGroup, "echo hi"))
			op, err := f.svc.StartRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tt.cancel {
				waitPhase(t, f, id, "Customizing")
				if _, err := f.svc.CancelRun(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			end := f.wait(t, op.ID)
			if end.Status != tt.opStatus || end.Error == nil || end.Error.Code != tt.opCode {
				t.Errorf("operation: %s %+v, want %s %s", end.Status, end.Error, tt.opStatus, tt.opCode)
			}
			r, err := f.svc.GetRun(ctx, id, "")
			if err != nil {
				t.Fatal(err)
			}
			if r.State != tt.state || !strings.Contains(r.Message, tt.message) {
				t.Errorf("run: %s %q, want %s with %q", r.State, r.Message, tt.state, tt.message)
			}
			if got := len(r.Kept) > 0; got != tt.keepsOutput {
				t.Errorf("kept outputs: %v, want %v", r.Kept, tt.keepsOutput)
			}
			tmpl, err := f.svc.GetTemplate(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.ActiveRun != "" || tmpl.LastRunStatus.RunState != tt.state || tmpl.LastRunStatus.Message != r.Message {
				t.Errorf("lastRunStatus %+v, want the run's end", tmpl.LastRunStatus)
			}
		})
	}
}

func waitPhase(t *testing.T, f *fixture, id, sub string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tmpl, err := f.svc.GetTemplate(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if tmpl.LastRunStatus != nil && tmpl.LastRunStatus.RunSubState == sub {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never reached %s: %+v", sub, tmpl.LastRunStatus)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRefusals checks the answers to what cannot be done.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	f := open(t, "", executor(func(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (runner.Result, error) {
		progress(build.PhaseBuilding, "held")
		select {
		case <-release:
		case <-ctx.Done():
			return runner.Result{}, ctx.Err()
		}
		return builds(ctx, run, log, progress)
	}))
	f.group(t, "rg")
	ok := f.submit(t, "ok", templateBody("rg", "echo hi"))
	bad := templateBody("rg", "echo hi")
	bad["properties"].(map[string]any)["distribute"] = []any{}
	invalid := f.submit(t, "invalid", bad)
	idle := f.submit(t, "idle", templateBody("rg", "echo idle"))
	run, err := f.svc.StartRun(ctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f, ok, "Building")

	tests := []struct {
		name string
		call func() error
		kind resource.Kind
		code string
	}{
		{"run a template that failed validation", func() error { _, err := f.svc.StartRun(ctx, invalid); return err }, resource.KindBadRequest, "InvalidTemplateState"},
		{"run a template that does not exist", func() error { _, err := f.svc.StartRun(ctx, templateID("nope")); return err }, resource.KindNotFound, "ResourceNotFound"},
		{"run a running template", func() error { _, err := f.svc.StartRun(ctx, ok); return err }, resource.KindConflict, "Conflict"},
		{"cancel with nothing running", func() error { _, err := f.svc.CancelRun(ctx, idle); return err }, resource.KindConflict, "Conflict"},
		{"retry the distribution of a running template", func() error { _, err := f.svc.RetryDistribution(ctx, ok, ""); return err }, resource.KindConflict, "Conflict"},
		{"retry the distribution of a template that never ran", func() error { _, err := f.svc.RetryDistribution(ctx, idle, ""); return err }, resource.KindNotFound, "ResourceNotFound"},
		{"read the run of a template that never ran", func() error { _, err := f.svc.GetRun(ctx, idle, ""); return err }, resource.KindNotFound, "ResourceNotFound"},
	}
	for _, tt := range tests {
		var e *resource.Error
		if err := tt.call(); !errors.As(err, &e) || e.Kind != tt.kind || e.Code != tt.code {
			t.Errorf("%s: %v, want kind %d code %s", tt.name, err, tt.kind, tt.code)
		}
	}
	close(release)
	if op := f.wait(t, run.ID); op.Status != resource.OpSucceeded {
		t.Errorf("the held run: %s %+v", op.Status, op.Error)
	}
	var e *resource.Error
	if _, err := f.svc.RetryDistribution(ctx, ok, ""); !errors.As(err, &e) || e.Kind != resource.KindConflict || !strings.Contains(e.Message, "no kept build outputs") {
		t.Errorf("retry the distribution of a run that succeeded: %v", err)
	}
}

// TestRetryDistribution publishes again, without building, the output of a
// run whose only target failed, once what it needed exists.
func TestRetryDistribution(t *testing.T) {
	ctx := context.Background()
	f := open(t, "", executor(builds))
	f.group(t, "rg")
	id := f.submit(t, "t", templateBody("later", "echo hi"))
	op, err := f.svc.StartRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, op.ID)
	r, err := f.svc.GetRun(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != resource.RunFailed || len(r.Kept) != 1 || !strings.Contains(r.Message, "retry the distribution") {
		t.Fatalf("run: %s %q, kept %v", r.State, r.Message, r.Kept)
	}
	kept := filepath.Join(f.dir, r.KeptDir)
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("kept outputs: %v", err)
	}

	f.group(t, "later")
	retry, err := f.svc.RetryDistribution(ctx, id, r.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if end := f.wait(t, retry.ID); end.Status != resource.OpSucceeded {
		t.Fatalf("retry: %s %+v", end.Status, end.Error)
	}
	r, err = f.svc.GetRun(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != resource.RunSucceeded || len(r.Kept) != 0 {
		t.Errorf("run after the retry: %s %q, kept %v", r.State, r.Message, r.Kept)
	}
	if _, err := os.Stat(kept); !os.IsNotExist(err) {
		t.Errorf("the kept outputs outlive a successful retry (%v)", err)
	}
	img, err := f.svc.GetResource(ctx, imageID("later"))
	if err != nil || img.Artifact == nil || img.Artifact.OSType != "Linux" {
		t.Errorf("image after the retry: %+v %v", img.Artifact, err)
	}
}

// TestSweep opens a server on a data directory a killed server left: a
// scratch directory no run owns, with its build process still running, and
// a blob nothing refers to. Opening stops the process and removes both.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	// A first server places a blob without any reference, as a killed
	// distribution can leave it.
	first := open(t, dir, executor(builds))
	orphan := filepath.Join(t.TempDir(), "orphan.raw")
	if err := os.WriteFile(orphan, []byte("nobody's disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum, _, err := disk.SHA256File(context.Background(), orphan)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := first.svc.Regions().Store("westus2")
	if _, err := st.Put(context.Background(), sum, orphan, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	first.close()

	stray := filepath.Join(dir, "work", "stray")
	if err := os.MkdirAll(stray, 0o700); err != nil {
		t.Fatal(err)
	}
	proc := exec.Command("sleep", "60")
	proc.Dir = stray
	if err := proc.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = proc.Wait(); close(exited) }()
	t.Cleanup(func() { _ = proc.Process.Kill(); <-exited })
	if err := machine.WritePIDFile(filepath.Join(stray, "qemu.pid"), proc.Process.Pid); err != nil {
		t.Fatal(err)
	}
	f := open(t, dir, executor(builds))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("the stray build process still runs")
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("the stray work directory is still there (%v)", err)
	}
	st, _ = f.svc.Regions().Store("westus2")
	if _, ok, _ := st.Stat(sum); ok {
		t.Error("the blob nothing refers to is still there")
	}
}
