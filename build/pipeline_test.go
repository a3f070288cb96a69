package build

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	tmpl "github.com/goldsmith-dev/goldsmith/template"
)

// recStep records its Run and Cleanup in a journal; its Run does what do
// says (nil: succeed).
type recStep struct {
	name string
	j    *journal
	do   func(ctx context.Context) error
}

func (s *recStep) Name() string { return s.name }
func (s *recStep) Run(ctx context.Context, r *run) error {
	s.j.add("run " + s.name)
	if s.do != nil {
		return s.do(ctx)
	}
	return nil
}
func (s *recStep) Cleanup(*run) { s.j.add("cleanup " + s.name) }

func testRun(t *testing.T, timeout time.Duration) *run {
	t.Helper()
	return &run{logger: nopLogger(), tmpl: &tmpl.Template{}, start: time.Now(), req: Request{Timeout: timeout}}
}

// TestRunStepsCleanupOrder: every step whose Run was called is cleaned up,
// in reverse order, whatever ended the run; steps after the end never run.
func TestRunStepsCleanupOrder(t *testing.T) {
	boom := errors.New("boom")
	blockUntilDone := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name string
		// b is step b's Run; cancelAfterA cancels the run's context once a
		// has run; timeout makes the context a timed one.
		b            func(ctx context.Context) error
		cancelInB    bool
		cancelAfterA bool
		timeout      time.Duration
		want         []string
		wantErr      error
		errText      string
	}{
		{name: "success",
			want: []string{"run a", "run b", "run c", "cleanup c", "cleanup b", "cleanup a"}},
		{name: "failure", b: func(context.Context) error { return boom },
			want:    []string{"run a", "run b", "cleanup b", "cleanup a"},
			wantErr: boom, errText: "b: boom"},
		{name: "cancel during a step", b: blockUntilDone, cancelInB: true,
			want:    []string{"run a", "run b", "cleanup b", "cleanup a"},
			wantErr: ErrCanceled, errText: "the build was canceled while the build was starting (b)"},
		{name: "cancel between steps", cancelAfterA: true,
			want:    []string{"run a", "cleanup a"},
			wantErr: ErrCanceled, errText: "the build was canceled while the build was starting (b)"},
		{name: "timeout", b: blockUntilDone, timeout: 50 * time.Millisecond,
			want:    []string{"run a", "run b", "cleanup b", "cleanup a"},
			wantErr: ErrTimeout, errText: "(timeout 50ms) while the build was starting (b)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			r := testRun(t, tt.timeout)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.timeout > 0 {
				ctx, cancel = context.WithTimeoutCause(ctx, tt.timeout, errTimeout)
				defer cancel()
			}
			a := &recStep{name: "a", j: j}
			if tt.cancelAfterA {
				a.do = func(context.Context) error { cancel(); return nil }
			}
			b := &recStep{name: "b", j: j, do: tt.b}
			if tt.cancelInB {
				b.do = func(ctx context.Context) error {
					go cancel()
					return tt.b(ctx)
				}
			}
			err := runSteps(ctx, r, []step{a, b, &recStep{name: "c", j: j}})
			if got := strings.Join(j.all(), ", "); got != strings.Join(tt.want, ", ") {
				t.Errorf("order:\n got %s\nwant %s", got, strings.Join(tt.want, ", "))
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q, want %v containing %q", err, tt.wantErr, tt.errText)
			}
		})
	}
}

// TestInterruptedMessages: a cancel or timeout says what was running, in
// the user's terms, and which limit applied.
func TestInterruptedMessages(t *testing.T) {
	running := &customize.Step{Kind: customize.KindCustomizer, Index: 2, Total: 3, Name: "install-web", Type: tmpl.CustomizeShell}
	finished := *running
	finished.Done = true
	tests := []struct {
		name        string
		timeout     bool
		reqTimeout  time.Duration
		templateMin int
		phase       Phase
		current     *customize.Step
		want        string
	}{
		{name: "cancel while starting", want: "the build was canceled while the build was starting (boot the build VM)"},
		{name: "cancel in a phase", phase: PhaseBuilding,
			want: "the build was canceled while phase Building was running (boot the build VM)"},
		{name: "cancel in a customizer", phase: PhaseCustomizing, current: running,
			want: `the build was canceled while phase Customizing was running customizer 2/3 "install-web" (Shell)`},
		{name: "cancel between customizers", phase: PhaseCustomizing, current: &finished,
			want: `the build was canceled while phase Customizing was running, after customizer 2/3 "install-web" (Shell)`},
		{name: "template's timeout", timeout: true, templateMin: 45, phase: PhaseCustomizing, current: running,
			want: `(buildTimeoutInMinutes 45) while phase Customizing was running customizer 2/3 "install-web" (Shell)`},
		{name: "AIB's default timeout", timeout: true, phase: PhaseDistributing,
			want: `(buildTimeoutInMinutes 240) while phase Distributing was running (boot the build VM)`},
		{name: "request's timeout", timeout: true, reqTimeout: 90 * time.Second, templateMin: 45, phase: PhaseCustomizing, current: running,
			want: `(timeout 1m30s) while phase Customizing was running customizer 2/3 "install-web" (Shell)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRun(t, tt.reqTimeout)
			r.tmpl.Properties.BuildTimeoutInMinutes = tt.templateMin
			r.phase, r.current = tt.phase, tt.current
			ctx, cancel := context.WithCancel(context.Background())
			if tt.timeout {
				ctx, cancel = context.WithTimeoutCause(context.Background(), time.Nanosecond, errTimeout)
			} else {
				cancel()
			}
			defer cancel()
			<-ctx.Done()
			err := r.interrupted(ctx, "boot the build VM")
			want := ErrCanceled
			if tt.timeout {
				want = ErrTimeout
			}
			if !errors.Is(err, want) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q\nwant %v containing %q", err, want, tt.want)
			}
		})
	}
}
