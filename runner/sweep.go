package runner

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/store"
)

// Sweep removes what runs a killed process left: scratch directories of
// runs no longer active (stopping any process still running in them), and
// kept build outputs no run refers to. Call it at start, after the queue's
// recovery (so no run is in progress) and before the queue runs.
func (r *Runner) Sweep(ctx context.Context) error {
	active := map[string]bool{}
	keep := map[string]bool{}
	err := r.st.View(ctx, func(tx *store.Tx) error {
		runs, err := r.records.Runs(ctx, tx)
		if err != nil {
			return err
		}
		for _, run := range runs {
			if run.Active() {
				active[run.WorkDir] = true
			}
			if run.KeptDir != "" {
				keep[run.KeptDir] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep runs: %w", err)
	}
	if err := r.sweepDir("kept", keep); err != nil {
		return err
	}
	return r.sweepDir("work", active)
}

// sweepDir removes the entries of a data-directory subdirectory not in keep.
func (r *Runner) sweepDir(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(r.abs(dir))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("sweep %s: %w", dir, err)
	}
	for _, e := range entries {
		rel := path.Join(dir, e.Name())
		if keep[rel] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r.log.Warn("removing what no run refers to", "path", rel)
		if dir == "work" {
			machine.KillRecorded(r.abs(rel))
		}
		r.removeFiles(rel)
	}
	return nil
}
