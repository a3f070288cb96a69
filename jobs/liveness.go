package jobs

// Liveness: workers' heartbeats, the recovery of dead workers' jobs, and
// cancels from other processes (see the package documentation).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/goldsmith-dev/goldsmith/store"
)

// Workers' heartbeats are documents of this type in the store.
const workerType = "goldsmith/worker"

func workerID(owner string) string { return "/goldsmith/workers/" + owner }

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// heartbeat is a worker's heartbeat document; its time is the document's
// Updated.
type heartbeat struct {
	Owner string `json:"owner"`
	Node  string `json:"node,omitempty"`
	// Capacity is how many jobs the worker runs at once (Options.Workers;
	// 0 for an API-only node), Running how many it ran at the heartbeat.
	Capacity int `json:"capacity"`
	Running  int `json:"running"`
}

// heartbeat records that this worker lives.
func (q *Queue) heartbeat(ctx context.Context) error {
	q.mu.Lock()
	running := len(q.running)
	q.mu.Unlock()
	return q.st.Update(ctx, func(tx *store.Tx) error {
		return tx.PutJSON(ctx, workerID(q.opts.Owner), workerType,
			heartbeat{Owner: q.opts.Owner, Node: q.opts.Node, Capacity: q.opts.Workers, Running: running})
	})
}

// Worker is a process on the queue's database as its last heartbeat
// described it.
type Worker struct {
	Owner    string    `json:"name"` // River client id: host:pid:random
	Node     string    `json:"node"` // host and data directory
	Capacity int       `json:"capacity"`
	Running  int       `json:"running"`
	Seen     time.Time `json:"lastHeartbeat"`
	// Alive is false once it missed its lease: its jobs are (being)
	// reported interrupted.
	Alive bool `json:"alive"`
}

// Workers lists the processes heartbeating on the database (API-only nodes
// with capacity 0), by name.
func (q *Queue) Workers(ctx context.Context) ([]Worker, error) {
	var docs []store.Doc
	err := q.st.View(ctx, func(tx *store.Tx) (err error) {
		docs, err = tx.List(ctx, store.Query{Type: workerType})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read workers' heartbeats: %w", err)
	}
	deadline := time.Now().Add(-q.opts.Lease)
	out := make([]Worker, 0, len(docs))
	for _, d := range docs {
		var h heartbeat
		if err := json.Unmarshal(d.Body, &h); err != nil {
			return nil, fmt.Errorf("decode %s: %w", d.ID, err)
		}
		out = append(out, Worker{Owner: h.Owner, Node: h.Node, Capacity: h.Capacity, Running: h.Running, Seen: d.Updated,
			Alive: d.Updated.After(deadline)})
	}
	return out, nil
}

// Owner is this process's worker name (River's client id).
func (q *Queue) Owner() string { return q.opts.Owner }

// watchRunning cancels this worker's running jobs that were canceled (or
// taken from it) by another process.
func (q *Queue) watchRunning(ctx context.Context) error {
	q.mu.Lock()
	ids := make([]int64, 0, len(q.running))
	for id := range q.running {
		ids = append(ids, id)
	}
	q.mu.Unlock()
	for _, id := range ids {
		row, err := q.river.get(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case row.State != rivertype.JobStateRunning:
			q.cancelLocal(id, ErrLeaseLost)
		case cancelRequested(row):
			q.cancelLocal(id, ErrCanceled)
		}
	}
	return nil
}

func cancelRequested(row *rivertype.JobRow) bool {
	var m struct {
		CancelAttemptedAt *time.Time `json:"cancel_attempted_at"`
	}
	_ = json.Unmarshal(row.Metadata, &m)
	return m.CancelAttemptedAt != nil
}

func owner(row *rivertype.JobRow) string {
	if len(row.AttemptedBy) == 0 {
		return ""
	}
	return row.AttemptedBy[len(row.AttemptedBy)-1]
}

func jobOf(row *rivertype.JobRow) Job {
	return Job{ID: row.ID, Kind: row.Kind, Payload: json.RawMessage(row.EncodedArgs), Attempt: row.Attempt,
		MaxAttempts: row.MaxAttempts, Owner: owner(row)}
}

// Recover ends (or queues again) the running jobs of dead workers: those
// whose worker has not heartbeaten for Lease or is an earlier process of
// this Node, and with all true every running job (the caller knows no
// other worker lives).
func (q *Queue) Recover(ctx context.Context, all bool) error {
	rows, err := q.river.listRunning(ctx)
	if err != nil {
		return fmt.Errorf("list running jobs: %w", err)
	}
	alive := map[string]bool{}
	var docs []store.Doc
	err = q.st.View(ctx, func(tx *store.Tx) (err error) {
		docs, err = tx.List(ctx, store.Query{Type: workerType})
		return err
	})
	if err != nil {
		return fmt.Errorf("read workers' heartbeats: %w", err)
	}
	deadline := time.Now().Add(-q.opts.Lease)
	nodeOf := map[string]string{}
	for _, d := range docs {
		var w heartbeat
		if err := json.Unmarshal(d.Body, &w); err != nil {
			return fmt.Errorf("decode %s: %w", d.ID, err)
		}
		nodeOf[w.Owner] = w.Node
		if d.Updated.After(deadline) {
			alive[w.Owner] = true
		}
	}
	for _, row := range rows {
		o := owner(row)
		earlier := q.opts.Node != "" && nodeOf[o] == q.opts.Node && o != q.opts.Owner
		if !all && !earlier && (o == q.opts.Owner || alive[o]) {
			continue
		}
		if all && o == q.opts.Owner {
			continue // this process's own jobs: Run has not started them yet
		}
		cause := fmt.Errorf("its worker %s stopped without finishing it", o)
		if !all && !earlier {
			cause = fmt.Errorf("its worker %s stopped without finishing it (no heartbeat for %v)", o, q.opts.Lease)
		}
		q.log.Warn("recovering an interrupted job", "job", row.ID, "kind", row.Kind, "owner", o)
		if err := q.interrupt(ctx, row.ID, o, cause); err != nil {
			return err
		}
	}
	// Heartbeats of workers long dead (their jobs recovered above) are of
	// no use.
	var stale []string
	for _, d := range docs {
		if d.Updated.Before(deadline.Add(-q.opts.Lease)) {
			stale = append(stale, d.ID)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return q.st.Update(ctx, func(tx *store.Tx) error {
		for _, id := range stale {
			if err := ignoreNotFound(tx.Delete(ctx, id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// interrupt ends a job whose worker stopped, if that worker still runs it,
// in one transaction with the handler's Interrupted; a retry is a new job.
func (q *Queue) interrupt(ctx context.Context, id int64, worker string, cause error) error {
	err := q.st.Update(ctx, func(tx *store.Tx) error {
		row, err := q.river.getTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if row.State != rivertype.JobStateRunning || owner(row) != worker {
			return nil // someone else ended or took it
		}
		job := jobOf(row)
		retry := false
		if h := q.handlers[job.Kind]; h != nil {
			if retry, err = h.Interrupted(ctx, tx, job, cause); err != nil {
				return err
			}
		}
		if err := q.river.end(ctx, tx, id, rivertype.JobStateDiscarded, "interrupted: "+cause.Error()); err != nil {
			return err
		}
		if retry && job.Attempt < job.MaxAttempts {
			_, err = q.insert(ctx, tx, job.Kind, job.Payload, job.MaxAttempts-job.Attempt)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recover job %d: %w", id, err)
	}
	return nil
}
