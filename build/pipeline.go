package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// step is one typed stage of a run. Run does the work; Cleanup undoes what
// Run created and is called, in reverse order, for every step whose Run was
// called, whatever ended the run (success, failure, cancel or timeout).
type step interface {
	Name() string
	Run(ctx context.Context, r *run) error
	Cleanup(r *run)
}

// runSteps runs steps in order until one fails or ctx ends, then cleans up
// in reverse. The error names the step that failed.
func runSteps(ctx context.Context, r *run, steps []step) (err error) {
	started := make([]step, 0, len(steps))
	defer func() {
		r.endErr = err
		for i := len(started) - 1; i >= 0; i-- {
			s := started[i]
			r.logger.Debug("cleanup", "step", s.Name())
			s.Cleanup(r)
		}
	}()
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return r.interrupted(ctx, s.Name())
		}
		started = append(started, s)
		r.logger.Debug("step", "name", s.Name())
		if err := s.Run(ctx, r); err != nil {
			if ctx.Err() != nil {
				return r.interrupted(ctx, s.Name())
			}
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	return nil
}

// Errors a run ends with when it did not fail on its own.
var (
	ErrCanceled = errors.New("the build was canceled")
	ErrTimeout  = errors.New("the build timed out")
)

// interrupted describes a cancel or timeout in the user's terms: which phase
// and customizer were running.
func (r *run) interrupted(ctx context.Context, stepName string) error {
	where := r.where(stepName)
	if errors.Is(context.Cause(ctx), errTimeout) {
		limit := fmt.Sprintf("buildTimeoutInMinutes %d", r.tmpl.Properties.EffectiveTimeoutMinutes())
		if r.req.Timeout > 0 {
			limit = "timeout " + r.req.Timeout.String()
		}
		return fmt.Errorf("%w after %s (%s) while %s", ErrTimeout, time.Since(r.start).Round(time.Second), limit, where)
	}
	return fmt.Errorf("%w while %s", ErrCanceled, where)
}

var errTimeout = errors.New("buildTimeoutInMinutes reached")

// nopLogger discards slog output.
func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
