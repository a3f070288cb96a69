package runner

import (
	"context"

	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/store"
)

// Job kinds of runs; stored in the queue, so never renamed.
const (
	kindRun          = "template.run"
	kindRedistribute = "run.redistribute"
)

// payload is the payload of a run's job.
type payload struct {
	Run string `json:"run"` // the run's resource id
}

// Queue puts runs' jobs on the queue and cancels them, in the transaction
// that records the run's state (package resource calls it when a run is
// started, retried or canceled). It needs no Runner: a node that only
// serves the API queues runs that other processes' Runners take.
type Queue struct{ q *jobs.Queue }

// NewQueue returns the runs' side of q.
func NewQueue(q *jobs.Queue) Queue { return Queue{q: q} }

// Run queues, in tx, the job that builds and distributes the run runID.
func (j Queue) Run(ctx context.Context, tx *store.Tx, runID string) (int64, error) {
	return j.q.Enqueue(ctx, tx, jobs.NewJob{Kind: kindRun, Payload: payload{Run: runID}})
}

// Redistribute queues, in tx, the job that distributes again the kept
// build outputs of the run runID.
func (j Queue) Redistribute(ctx context.Context, tx *store.Tx, runID string) (int64, error) {
	return j.q.Enqueue(ctx, tx, jobs.NewJob{Kind: kindRedistribute, Payload: payload{Run: runID}})
}

// Cancel asks a run's job to stop, in tx. running says a Runner has the
// job and will end the run; otherwise the job will never run and the caller
// ends the run.
func (j Queue) Cancel(ctx context.Context, tx *store.Tx, jobID int64) (running bool, err error) {
	return j.q.Cancel(ctx, tx, jobID)
}
