// Package queue is goldsmith's durable job queue: jobs live in a table of the
// same SQLite database as the resources, so a job is enqueued, canceled and
// finished in the same transaction as the state change it belongs to.
//
// Workers claim a job with a lease and keep it alive with heartbeats. A job
// whose worker died (the process was killed, or its lease ran out) is handed
// to its handler's Interrupted method, which decides, in the transaction that
// ends the job, whether it is retried or reported as interrupted. When one
// process owns the database (Options.Exclusive, the SQLite case: the data
// directory is locked by the server), every job still marked running at start
// belongs to a dead process and is recovered at once instead of after its
// lease.
package queue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/store"
)

// State is where a job is in its life.
type State string

const (
	Queued   State = "queued"
	Running  State = "running"
	Done     State = "done"
	Failed   State = "failed"
	Canceled State = "canceled"
)

// Causes a running job's context is canceled with (see context.Cause).
var (
	ErrCanceled  = errors.New("the job was canceled")
	ErrStopping  = errors.New("the worker is shutting down")
	ErrLeaseLost = errors.New("the job's lease was lost to another worker")
)

// Job is one unit of work.
type Job struct {
	ID          int64
	Kind        string
	Ref         string // what the job is about, e.g. a run's resource id
	Payload     json.RawMessage
	State       State
	Attempt     int // 1 for the first attempt
	MaxAttempts int
	Owner       string // the worker holding the lease
	Error       string
	Created     time.Time
}

// NewJob describes a job to enqueue.
type NewJob struct {
	Kind        string
	Ref         string
	Payload     any // marshalled to JSON
	MaxAttempts int // 0 means 1
}

// Handler does the jobs of one kind.
type Handler interface {
	// Work does the job. ctx is canceled when the job is canceled
	// (context.Cause is ErrCanceled), the queue stops (ErrStopping) or the
	// lease is lost (ErrLeaseLost). The job ends Done when Work returns nil
	// and Failed otherwise (retried while attempts remain), unless Work
	// already ended it with Queue.Finish in its own transaction.
	Work(ctx context.Context, job Job) error
	// Interrupted is called for a job whose worker stopped without ending it
	// (killed, shut down, lease lost), inside the transaction that ends it.
	// Returning retry true queues the job again when attempts remain.
	Interrupted(ctx context.Context, tx *store.Tx, job Job, cause error) (retry bool, err error)
}

// Options tune a Queue.
type Options struct {
	Workers   int           // concurrent jobs in this process; default 1
	Lease     time.Duration // how long a claim lasts without a heartbeat; default 30s
	Heartbeat time.Duration // default Lease/3
	Poll      time.Duration // how often idle workers look for jobs; default 500ms
	Backoff   time.Duration // delay before a retry; default 2s
	// Exclusive says this process is the only one using the database, so jobs
	// left running at start are orphans of a previous process.
	Exclusive bool
	Owner     string // lease holder name; default host:pid:random
	Logger    *slog.Logger
}

// Queue is the job queue.
type Queue struct {
	st       *store.Store
	opts     Options
	log      *slog.Logger
	handlers map[string]Handler
	wake     chan struct{}

	mu      sync.Mutex
	running map[int64]context.CancelCauseFunc
}

// New creates the queue's table when needed.
func New(ctx context.Context, st *store.Store, opts Options) (*Queue, error) {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = opts.Lease / 3
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{st: st, opts: opts, log: opts.Logger, handlers: map[string]Handler{},
		wake: make(chan struct{}, 1), running: map[int64]context.CancelCauseFunc{}}
	err := st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.SQL().ExecContext(ctx, `CREATE TABLE IF NOT EXISTS queue_jobs (
			id           INTEGER PRIMARY KEY AUTOINCREMENT,
			kind         TEXT NOT NULL,
			ref          TEXT NOT NULL,
			payload      TEXT NOT NULL,
			state        TEXT NOT NULL,
			attempt      INTEGER NOT NULL DEFAULT 0,
			max_attempts INTEGER NOT NULL DEFAULT 1,
			owner        TEXT NOT NULL DEFAULT '',
			lease_until  TEXT NOT NULL DEFAULT '',
			cancel       INTEGER NOT NULL DEFAULT 0,
			error        TEXT NOT NULL DEFAULT '',
			run_after    TEXT NOT NULL,
			created      TEXT NOT NULL,
			finished     TEXT NOT NULL DEFAULT ''
		);
		CREATE INDEX IF NOT EXISTS queue_jobs_state ON queue_jobs(state, run_after, id);`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create the queue table: %w", err)
	}
	return q, nil
}

// Owner is this process's lease-holder name.
func (q *Queue) Owner() string { return q.opts.Owner }

// Handle registers the handler of a job kind. Call before Run.
func (q *Queue) Handle(kind string, h Handler) { q.handlers[kind] = h }

const timeLayout = time.RFC3339Nano

func ts(t time.Time) string { return t.UTC().Format(timeLayout) }

// Enqueue adds a job in tx; workers see it once tx commits.
func (q *Queue) Enqueue(ctx context.Context, tx *store.Tx, j NewJob) (int64, error) {
	payload, err := json.Marshal(j.Payload)
	if err != nil {
		return 0, fmt.Errorf("encode %s job: %w", j.Kind, err)
	}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = 1
	}
	now := ts(tx.Now())
	var id int64
	err = tx.SQL().QueryRowContext(ctx,
		`INSERT INTO queue_jobs (kind, ref, payload, state, max_attempts, run_after, created) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		j.Kind, j.Ref, string(payload), Queued, j.MaxAttempts, now, now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s job: %w", j.Kind, err)
	}
	tx.AfterCommit(q.poke)
	return id, nil
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

const jobColumns = `id, kind, ref, payload, state, attempt, max_attempts, owner, error, created`

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var j Job
	var payload, created string
	err := row.Scan(&j.ID, &j.Kind, &j.Ref, &payload, &j.State, &j.Attempt, &j.MaxAttempts, &j.Owner, &j.Error, &created)
	if err != nil {
		return Job{}, err
	}
	j.Payload = json.RawMessage(payload)
	j.Created, _ = time.Parse(timeLayout, created)
	return j, nil
}

// Get reads a job.
func (q *Queue) Get(ctx context.Context, tx *store.Tx, id int64) (Job, error) {
	j, err := scanJob(tx.SQL().QueryRowContext(ctx, `SELECT `+jobColumns+` FROM queue_jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("read job %d: %w", id, err)
	}
	return j, nil
}

// Cancel asks for a job to stop, in tx. A job not yet started ends Canceled
// at once (and Cancel reports it, so the caller can record that in the same
// transaction); a running job's context is canceled with ErrCanceled, here
// right after commit or by its worker's next heartbeat elsewhere. Ended jobs
// are left alone.
func (q *Queue) Cancel(ctx context.Context, tx *store.Tx, id int64) (State, error) {
	var state State
	err := tx.SQL().QueryRowContext(ctx, `SELECT state FROM queue_jobs WHERE id = ?`, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("cancel job %d: %w", id, err)
	}
	switch state {
	case Queued:
		_, err = tx.SQL().ExecContext(ctx, `UPDATE queue_jobs SET state = ?, cancel = 1, finished = ? WHERE id = ?`, Canceled, ts(tx.Now()), id)
		state = Canceled
	case Running:
		_, err = tx.SQL().ExecContext(ctx, `UPDATE queue_jobs SET cancel = 1 WHERE id = ?`, id)
		tx.AfterCommit(func() { q.cancelLocal(id, ErrCanceled) })
	}
	if err != nil {
		return "", fmt.Errorf("cancel job %d: %w", id, err)
	}
	return state, nil
}

func (q *Queue) cancelLocal(id int64, cause error) {
	q.mu.Lock()
	cancel := q.running[id]
	q.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// Finish ends a running job in tx, from inside its handler, so the job's end
// and the state it produced commit together. It reports false when the job
// is no longer this worker's (the lease was lost or it already ended).
func (q *Queue) Finish(ctx context.Context, tx *store.Tx, job Job, state State, message string) (bool, error) {
	res, err := tx.SQL().ExecContext(ctx,
		`UPDATE queue_jobs SET state = ?, error = ?, finished = ?, owner = '' WHERE id = ? AND owner = ? AND state = ?`,
		state, message, ts(tx.Now()), job.ID, job.Owner, Running)
	if err != nil {
		return false, fmt.Errorf("finish job %d: %w", job.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Run recovers jobs orphaned by dead workers and then works the queue with
// Options.Workers workers until ctx is done. It returns after every worker
// has stopped.
func (q *Queue) Run(ctx context.Context) error {
	if err := q.Recover(ctx, q.opts.Exclusive); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := range q.opts.Workers {
		wg.Go(func() { q.worker(ctx, i) })
	}
	wg.Go(func() { q.reaper(ctx) })
	wg.Wait()
	return nil
}

// Recover ends jobs whose worker is gone: those whose lease expired, and
// with all true every running job (the caller knows no other worker lives).
func (q *Queue) Recover(ctx context.Context, all bool) error {
	var orphans []Job
	err := q.st.View(ctx, func(tx *store.Tx) error {
		query := `SELECT ` + jobColumns + ` FROM queue_jobs WHERE state = ? AND lease_until < ?`
		args := []any{Running, ts(time.Now())}
		if all {
			query = `SELECT ` + jobColumns + ` FROM queue_jobs WHERE state = ?`
			args = args[:1]
		}
		rows, err := tx.SQL().QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			j, err := scanJob(rows)
			if err != nil {
				return err
			}
			orphans = append(orphans, j)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("find interrupted jobs: %w", err)
	}
	for _, j := range orphans {
		q.log.Warn("recovering an interrupted job", "job", j.ID, "kind", j.Kind, "ref", j.Ref, "owner", j.Owner)
		if err := q.interrupt(ctx, j, fmt.Errorf("its worker %s stopped without finishing it", j.Owner)); err != nil {
			return err
		}
	}
	return nil
}

// interrupt ends (or requeues) a job whose worker stopped, if it is still
// held by the same owner.
func (q *Queue) interrupt(ctx context.Context, j Job, cause error) error {
	err := q.st.Update(ctx, func(tx *store.Tx) error {
		cur, err := q.Get(ctx, tx, j.ID)
		if err != nil {
			return err
		}
		if cur.State != Running || cur.Owner != j.Owner {
			return nil // someone else ended or took it
		}
		retry := false
		if h := q.handlers[j.Kind]; h != nil {
			if retry, err = h.Interrupted(ctx, tx, cur, cause); err != nil {
				return err
			}
		}
		if retry && cur.Attempt < cur.MaxAttempts {
			_, err = tx.SQL().ExecContext(ctx, `UPDATE queue_jobs SET state = ?, owner = '', error = ?, run_after = ? WHERE id = ?`,
				Queued, cause.Error(), ts(tx.Now()), j.ID)
			tx.AfterCommit(q.poke)
		} else {
			_, err = tx.SQL().ExecContext(ctx, `UPDATE queue_jobs SET state = ?, owner = '', error = ?, finished = ? WHERE id = ?`,
				Failed, "interrupted: "+cause.Error(), ts(tx.Now()), j.ID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recover job %d (%s): %w", j.ID, j.Kind, err)
	}
	return nil
}

func (q *Queue) reaper(ctx context.Context) {
	t := time.NewTicker(q.opts.Lease)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := q.Recover(ctx, false); err != nil && ctx.Err() == nil {
				q.log.Error("recover jobs with expired leases", "err", err)
			}
		}
	}
}

func (q *Queue) kinds() []any {
	var ks []any
	for k := range q.handlers {
		ks = append(ks, k)
	}
	return ks
}

// claim takes the oldest runnable job of a kind this queue handles.
func (q *Queue) claim(ctx context.Context) (Job, bool, error) {
	kinds := q.kinds()
	if len(kinds) == 0 {
		return Job{}, false, nil
	}
	placeholders := "?"
	for range kinds[1:] {
		placeholders += ", ?"
	}
	var j Job
	found := false
	err := q.st.Update(ctx, func(tx *store.Tx) error {
		now := tx.Now()
		args := append([]any{Running, q.opts.Owner, ts(now.Add(q.opts.Lease)), Queued, ts(now)}, kinds...)
		row := tx.SQL().QueryRowContext(ctx, `UPDATE queue_jobs SET state = ?, owner = ?, attempt = attempt + 1, lease_until = ?
			WHERE id = (SELECT id FROM queue_jobs WHERE state = ? AND run_after <= ? AND kind IN (`+placeholders+`) ORDER BY id LIMIT 1)
			RETURNING `+jobColumns, args...)
		var err error
		j, err = scanJob(row)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("claim a job: %w", err)
	}
	return j, found, nil
}

func (q *Queue) worker(ctx context.Context, n int) {
	log := q.log.With("worker", n)
	for ctx.Err() == nil {
		j, ok, err := q.claim(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("claim", "err", err)
		}
		if !ok {
			select {
			case <-ctx.Done():
			case <-q.wake:
			case <-time.After(q.opts.Poll):
			}
			continue
		}
		q.work(ctx, log, j)
		q.poke() // another job may be waiting
	}
}

func (q *Queue) work(ctx context.Context, log *slog.Logger, j Job) {
	log = log.With("job", j.ID, "kind", j.Kind, "ref", j.Ref, "attempt", j.Attempt)
	log.Info("job started")
	jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	q.mu.Lock()
	q.running[j.ID] = cancel
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.running, j.ID)
		q.mu.Unlock()
	}()
	// Stopping the queue stops the job.
	stop := context.AfterFunc(ctx, func() { cancel(ErrStopping) })
	defer stop()

	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		q.heartbeat(jctx, log, j, cancel)
	}()
	err := q.handlers[j.Kind].Work(jctx, j)
	cause := context.Cause(jctx)
	cancel(nil)
	<-hbDone

	bg := context.WithoutCancel(ctx)
	switch {
	case errors.Is(cause, ErrStopping), errors.Is(cause, ErrLeaseLost):
		log.Warn("job interrupted", "cause", cause, "err", err)
		if errors.Is(cause, ErrStopping) {
			if ierr := q.interrupt(bg, j, cause); ierr != nil {
				log.Error("end interrupted job", "err", ierr)
			}
		}
		return
	}
	state, msg := Done, ""
	if err != nil {
		state, msg = Failed, err.Error()
		if errors.Is(cause, ErrCanceled) {
			state = Canceled
		}
	}
	uerr := q.st.Update(bg, func(tx *store.Tx) error {
		if state == Failed && j.Attempt < j.MaxAttempts {
			_, err := tx.SQL().ExecContext(bg, `UPDATE queue_jobs SET state = ?, owner = '', error = ?, run_after = ? WHERE id = ? AND owner = ? AND state = ?`,
				Queued, msg, ts(tx.Now().Add(q.opts.Backoff*time.Duration(j.Attempt))), j.ID, j.Owner, Running)
			return err
		}
		_, err := q.Finish(bg, tx, j, state, msg)
		return err
	})
	if uerr != nil {
		log.Error("record job end", "err", uerr)
	}
	log.Info("job ended", "state", state, "err", err)
}

// heartbeat extends the lease until ctx ends, and cancels the job when it is
// asked to stop or the lease is gone.
func (q *Queue) heartbeat(ctx context.Context, log *slog.Logger, j Job, cancel context.CancelCauseFunc) {
	t := time.NewTicker(q.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var cancelRequested bool
		held := false
		err := q.st.Update(ctx, func(tx *store.Tx) error {
			err := tx.SQL().QueryRowContext(ctx,
				`UPDATE queue_jobs SET lease_until = ? WHERE id = ? AND owner = ? AND state = ? RETURNING cancel`,
				ts(tx.Now().Add(q.opts.Lease)), j.ID, j.Owner, Running).Scan(&cancelRequested)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			held = err == nil
			return err
		})
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Error("heartbeat", "err", err)
			}
		case !held:
			cancel(ErrLeaseLost)
			return
		case cancelRequested:
			cancel(ErrCanceled)
		}
	}
}
