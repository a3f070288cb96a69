package resource

import (
	"context"
	"strings"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/store"
)

// RetryDistribution publishes again the targets of the template's latest
// run that failed, from the build outputs kept for them, without building
// again. The run becomes Running (Distributing) and ends as a run does; the
// returned operation reports its end. runID "" or "latest" is the newest run.
func (s *Service) RetryDistribution(ctx context.Context, templateID, runID string) (Operation, error) {
	var op Operation
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		if t.ActiveRun != "" {
			return conflict("Conflict", "The image template '%s' is running (run %s); wait for the run to end.", t.Name, t.ActiveRun)
		}
		runs, _, err := list[Run](ctx, tx, TypeRun, t.ID, Page{})
		if err != nil {
			return err
		}
		var r, newest Run
		for _, c := range runs {
			if c.Number > newest.Number {
				newest = c
			}
			if strings.EqualFold(c.RunID, runID) {
				r = c
			}
		}
		if runID == "" || runID == "latest" {
			r = newest
		}
		switch {
		case r.ID == "":
			return newErr(KindNotFound, "ResourceNotFound", "The image template '%s' has no run '%s'.", t.Name, runID)
		case r.RunID != newest.RunID:
			return conflict("Conflict", "Run %s is not the template's latest run: its outputs were replaced by run %s.", r.RunID, newest.RunID)
		case len(r.Kept) == 0:
			return conflict("Conflict", "Run %s of image template '%s' has no kept build outputs to distribute (it ended %s): run the template again.", r.RunID, t.Name, r.State)
		}
		op, err = newOperation(ctx, tx, strings.Split(strings.TrimPrefix(t.ID, "/subscriptions/"), "/")[0], "Microsoft.VirtualMachineImages", t.Location, t.ID, "run")
		if err != nil {
			return err
		}
		r.State, r.SubState, r.Message, r.EndTime = RunRunning, string(build.PhaseDistributing), "", nil
		r.OperationID, r.CancelOperationID = op.ID, ""
		r.JobID, err = s.runs.Redistribute(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		if err := tx.PutJSON(ctx, r.ID, TypeRun, r); err != nil {
			return err
		}
		t.ActiveRun = r.RunID
		t.LastRunStatus = &LastRunStatus{StartTime: tx.Now(), RunState: RunRunning, RunSubState: string(build.PhaseDistributing)}
		return tx.PutJSON(ctx, t.ID, TypeImageTemplate, t)
	})
	return op, err
}
