// Package jobs is goldsmith's durable job queue: River
// (github.com/riverqueue/river) on the store's own database, SQLite or
// PostgreSQL, so a job is enqueued, canceled and finished in the same
// transaction as the state change it belongs to (store.Tx).
//
// River runs the jobs; this package adds what a build needs that River
// leaves to its user:
//
//   - Liveness. A build runs for many minutes, longer than any fixed
//     "stuck job" threshold, so River's rescuer cannot tell a long job from
//     a dead one. Every process that works jobs (a worker, named by its
//     River client id) heartbeats a document in the store every Heartbeat;
//     a running job whose worker has not heartbeaten for Lease is
//     interrupted: its handler's Interrupted method decides, in the
//     transaction that ends the job, whether it is retried (as a new job)
//     or reported as interrupted. Every process checks every Heartbeat, so
//     a dead worker's jobs are handled within Lease + Heartbeat. When one
//     process owns the database (Options.Exclusive, the SQLite case: the
//     data directory is locked), every job still running at start belongs
//     to a dead process and is handled at once.
//   - Cancellation of a running job in any process: Cancel marks the job
//     (River's JobCancelTx) and the process running it cancels the job's
//     context with ErrCanceled: at once in the same process or when River
//     tells it (PostgreSQL's notifications), else at its next heartbeat.
//   - A clean stop: when Run's context ends, running jobs' contexts are
//     canceled with ErrStopping and each handler's Interrupted decides.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/goldsmith-dev/goldsmith/store"
)

// Causes a running job's context is canceled with (see context.Cause).
var (
	ErrCanceled  = errors.New("the job was canceled")
	ErrStopping  = errors.New("the worker is shutting down")
	ErrLeaseLost = errors.New("the job was taken from this worker (it was thought dead)")
)

// Job is one unit of work.
type Job struct {
	ID          int64
	Kind        string
	Payload     json.RawMessage
	Attempt     int // 1 for the first attempt
	MaxAttempts int
	Owner       string // the worker running it (River client id)
}

// NewJob describes a job to enqueue.
type NewJob struct {
	Kind        string
	Payload     any // marshalled to JSON
	MaxAttempts int // 0 means 1
}

// Handler does the jobs of one kind.
type Handler interface {
	// Work does the job. ctx is canceled when the job is canceled
	// (context.Cause is ErrCanceled), the queue stops (ErrStopping) or the
	// job was taken from this worker (ErrLeaseLost). The job ends when Work
	// returns: retried with River's backoff while attempts remain when it
	// returns an error (not after ErrCanceled), unless Work already ended
	// it with Queue.Finish in its own transaction.
	Work(ctx context.Context, job Job) error
	// Interrupted is called for a job whose worker stopped without ending it
	// (killed, shut down), inside the transaction that ends it. Returning
	// retry true queues it again when attempts remain.
	Interrupted(ctx context.Context, tx *store.Tx, job Job, cause error) (retry bool, err error)
}

// Snooze, returned by Work, puts the job back to run again after d, without
// counting an attempt: for a job that waits on other jobs, which would never
// run while it holds the only worker.
func Snooze(d time.Duration) error { return snoozeError{d} }

type snoozeError struct{ d time.Duration }

func (e snoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.d) }

// Options tune a Queue.
type Options struct {
	// Workers is how many jobs this process runs at once; 0 makes a queue
	// that only enqueues, cancels and watches for dead workers (an API-only
	// node).
	Workers   int
	Lease     time.Duration // a worker silent this long is dead; default 60s
	Heartbeat time.Duration // default Lease/6
	Poll      time.Duration // how often idle workers look for jobs; default 500ms
	Backoff   time.Duration // delay before a failed job's retry, times its attempt; default 2s
	// Exclusive says this process is the only one using the database, so jobs
	// left running at start are orphans of a previous process.
	Exclusive bool
	// Node names what this process runs for across restarts (a server's
	// host and locked data directory): jobs left running by an earlier
	// process of the same node are orphans at start, without waiting for
	// their lease.
	Node   string
	Owner  string // this worker's name (River's client id); default host:pid:random
	Logger *slog.Logger
}

// Queue is the job queue.
type Queue struct {
	st       *store.Store
	opts     Options
	log      *slog.Logger
	river    riverClient
	workers  *river.Workers
	handlers map[string]Handler

	// stopping ends (cause ErrStopping) when Run's context does: every
	// job's context follows it, even a job River hands over meanwhile.
	stopping context.Context
	stop     context.CancelCauseFunc

	mu      sync.Mutex
	running map[int64]context.CancelCauseFunc
}

// New migrates River's tables in st's database and makes the queue.
func New(ctx context.Context, st *store.Store, opts Options) (*Queue, error) {
	if opts.Workers < 0 {
		opts.Workers = 0
	}
	if opts.Lease <= 0 {
		opts.Lease = 60 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = opts.Lease / 6
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.Owner == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		opts.Owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if len(opts.Owner) > 100 { // River's limit on a client id
		opts.Owner = opts.Owner[len(opts.Owner)-100:]
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{st: st, opts: opts, log: opts.Logger, workers: river.NewWorkers(),
		handlers: map[string]Handler{}, running: map[int64]context.CancelCauseFunc{}}
	q.stopping, q.stop = context.WithCancelCause(context.Background())
	cfg := &river.Config{
		ID:     opts.Owner,
		Logger: opts.Logger,
		// Builds have their own deadline (buildTimeoutInMinutes), and a
		// worker's death is seen by its heartbeats: River's timeout and
		// rescuer only clean up after a day.
		JobTimeout:           -1,
		RescueStuckJobsAfter: 24 * time.Hour,
		FetchPollInterval:    opts.Poll,
		FetchCooldown:        min(opts.Poll, 100*time.Millisecond),
		RetryPolicy:          backoff(opts.Backoff),
		// An API-only node queues the runners' jobs without their workers.
		SkipUnknownJobCheck: true,
		Workers:             q.workers,
	}
	if opts.Workers > 0 {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Workers}}
	}
	var err error
	switch st.Dialect() {
	case store.SQLite:
		q.river, err = newSQLiteClient(ctx, st, cfg)
	case store.PostgreSQL:
		q.river, err = newPostgresClient(ctx, st, cfg)
	default:
		err = fmt.Errorf("no job queue for a %s database", st.Dialect())
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Handle registers the handler of a job kind. Call before Run.
func (q *Queue) Handle(kind string, h Handler) {
	q.handlers[kind] = h
	river.AddWorkerArgs(q.workers, args{kind: kind}, riverWorker{q: q})
}

// Enqueue adds a job in tx; workers see it once tx commits.
func (q *Queue) Enqueue(ctx context.Context, tx *store.Tx, j NewJob) (int64, error) {
	payload, err := json.Marshal(j.Payload)
	if err != nil {
		return 0, fmt.Errorf("encode %s job: %w", j.Kind, err)
	}
	return q.insert(ctx, tx, j.Kind, payload, j.MaxAttempts)
}

func (q *Queue) insert(ctx context.Context, tx *store.Tx, kind string, payload json.RawMessage, maxAttempts int) (int64, error) {
	id, err := q.river.insert(ctx, tx, args{kind: kind, payload: payload}, &river.InsertOpts{MaxAttempts: max(maxAttempts, 1)})
	if err != nil {
		return 0, fmt.Errorf("enqueue %s job: %w", kind, err)
	}
	return id, nil
}

// Cancel asks for a job to stop, in tx, and reports whether it is running.
// A job not yet started ends canceled at once (the caller records that in
// the same transaction); a running job's context is canceled with
// ErrCanceled, here right after commit or by its worker's next heartbeat
// elsewhere, and its handler ends it. Ended jobs are left alone.
func (q *Queue) Cancel(ctx context.Context, tx *store.Tx, id int64) (running bool, err error) {
	row, err := q.river.cancel(ctx, tx, id)
	if errors.Is(err, river.ErrNotFound) {
		return false, fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("cancel job %d: %w", id, err)
	}
	if row.State == rivertype.JobStateRunning {
		tx.AfterCommit(func() { q.cancelLocal(id, ErrCanceled) })
		return true, nil
	}
	return false, nil
}

func (q *Queue) cancelLocal(id int64, cause error) {
	q.mu.Lock()
	cancel := q.running[id]
	q.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// Finish ends a running job in tx, from inside its handler (ctx is the
// one Work got), so the job's end and the state it produced commit together.
func (q *Queue) Finish(ctx context.Context, tx *store.Tx, job Job) error {
	if err := q.river.end(ctx, tx, job.ID, rivertype.JobStateCompleted, ""); err != nil {
		return fmt.Errorf("finish job %d: %w", job.ID, err)
	}
	return nil
}

// Run recovers jobs orphaned by dead workers and works the queue until ctx
// is done; then running jobs are stopped (ErrStopping) and Run returns once
// they have ended.
func (q *Queue) Run(ctx context.Context) error {
	if err := q.heartbeat(ctx); err != nil {
		return err
	}
	if err := q.Recover(ctx, q.opts.Exclusive); err != nil {
		return err
	}
	bg := context.WithoutCancel(ctx)
	working := q.opts.Workers > 0 && len(q.handlers) > 0
	if working {
		if err := q.river.start(bg); err != nil {
			return fmt.Errorf("start River: %w", err)
		}
	}
	t := time.NewTicker(q.opts.Heartbeat)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		if err := q.heartbeat(ctx); err != nil && ctx.Err() == nil {
			q.log.Error("heartbeat", "err", err)
		}
		if err := q.watchRunning(ctx); err != nil && ctx.Err() == nil {
			q.log.Error("look for canceled jobs", "err", err)
		}
		if err := q.Recover(ctx, false); err != nil && ctx.Err() == nil {
			q.log.Error("recover jobs of dead workers", "err", err)
		}
	}
	q.stop(ErrStopping)
	var err error
	if working {
		// River waits for the jobs, which stop promptly now.
		err = q.river.stop(bg)
	}
	// A worker that stopped is not dead: no one waits for its lease.
	derr := q.st.Update(bg, func(tx *store.Tx) error { return ignoreNotFound(tx.Delete(bg, workerID(q.opts.Owner))) })
	return errors.Join(err, derr)
}

// work runs one job for River.
func (q *Queue) work(ctx context.Context, row *rivertype.JobRow) error {
	j := jobOf(row)
	h := q.handlers[j.Kind]
	if h == nil {
		return river.JobCancel(fmt.Errorf("no handler for %s jobs", j.Kind))
	}
	log := q.log.With("job", j.ID, "kind", j.Kind, "attempt", j.Attempt)
	log.Info("job started")
	// The job's context says why it ends (context.Cause); ctx keeps the
	// values River's job API needs. Of River's reasons only a cancel is
	// followed: on PostgreSQL River hears of it at once (LISTEN/NOTIFY),
	// sooner than the heartbeat; River's stop is Run's.
	jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	defer context.AfterFunc(ctx, func() {
		if errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely) {
			cancel(ErrCanceled)
		}
	})()
	q.mu.Lock()
	q.running[j.ID] = cancel
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.running, j.ID)
		q.mu.Unlock()
	}()
	defer context.AfterFunc(q.stopping, func() { cancel(ErrStopping) })()
	err := h.Work(jctx, j)
	cause := context.Cause(jctx)
	switch {
	case errors.Is(cause, ErrStopping):
		log.Warn("job interrupted", "cause", cause, "err", err)
		bg := context.WithoutCancel(ctx)
		return q.interrupt(bg, j.ID, j.Owner, cause)
	case errors.Is(cause, ErrLeaseLost):
		log.Warn("job taken from this worker", "err", err)
		return nil
	case err != nil && errors.Is(cause, ErrCanceled):
		log.Info("job canceled", "err", err)
		return river.JobCancel(err)
	}
	if s := (snoozeError{}); errors.As(err, &s) {
		log.Debug("job snoozed", "for", s.d)
		return river.JobSnooze(s.d)
	}
	switch {
	case err != nil:
		log.Warn("job failed", "err", err)
		return err
	}
	log.Info("job done")
	return nil
}

// args carries a job's payload through River: one Go type for every kind
// (River's typed arguments would make each handler's package depend on it).
type args struct {
	kind    string
	payload json.RawMessage
}

func (a args) Kind() string { return a.kind }

func (a args) MarshalJSON() ([]byte, error) {
	if len(a.payload) == 0 || string(a.payload) == "null" {
		return []byte("{}"), nil
	}
	return a.payload, nil
}

func (a *args) UnmarshalJSON(b []byte) error {
	a.payload = slices.Clone(b)
	return nil
}

type riverWorker struct {
	river.WorkerDefaults[args]
	q *Queue
}

func (w riverWorker) Work(ctx context.Context, job *river.Job[args]) error {
	return w.q.work(ctx, job.JobRow)
}

// Timeout: none (see river.Config.JobTimeout in New).
func (riverWorker) Timeout(*river.Job[args]) time.Duration { return -1 }

// backoff retries a failed job after its attempt number times the delay.
type backoff time.Duration

func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(time.Duration(b) * time.Duration(max(job.Attempt, 1)))
}

// State is a job's state in River (available, running, completed,
// cancelled, discarded ...).
func (q *Queue) State(ctx context.Context, id int64) (rivertype.JobState, error) {
	row, err := q.river.get(ctx, id)
	if err != nil {
		return "", fmt.Errorf("job %d: %w", id, err)
	}
	return row.State, nil
}
