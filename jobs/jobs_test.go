package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/goldsmith-dev/goldsmith/internal/pgtest"
	"github.com/goldsmith-dev/goldsmith/store"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c }) }

// eachBackend runs test on a new store of every engine (SQLite, PostgreSQL).
func eachBackend(t *testing.T, test func(t *testing.T, st *store.Store)) {
	for _, b := range cluster.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			st, err := store.Open(context.Background(), b.Database(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			test(t, st)
		})
	}
}

// recorder is a handler whose behaviour each test sets.
type recorder struct {
	mu          sync.Mutex
	work        func(ctx context.Context, j Job) error
	interrupted []Job
	causes      []error
	retry       bool
	started     chan Job
}

func (r *recorder) Work(ctx context.Context, j Job) error {
	if r.started != nil {
		r.started <- j
	}
	return r.work(ctx, j)
}

func (r *recorder) Interrupted(_ context.Context, _ *store.Tx, j Job, cause error) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interrupted = append(r.interrupted, j)
	r.causes = append(r.causes, cause)
	return r.retry, nil
}

func newQueue(t *testing.T, st *store.Store, opts Options) *Queue {
	t.Helper()
	opts.Poll = 20 * time.Millisecond
	opts.Backoff = 10 * time.Millisecond
	q, err := New(context.Background(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func enqueue(t *testing.T, st *store.Store, q *Queue, j NewJob) int64 {
	t.Helper()
	var id int64
	err := st.Update(context.Background(), func(tx *store.Tx) (err error) {
		id, err = q.Enqueue(context.Background(), tx, j)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func waitState(t *testing.T, q *Queue, id int64, want rivertype.JobState) *rivertype.JobRow {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		row, err := q.river.get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if row.State == want {
			return row
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %s (errors %+v), want %s", id, row.State, row.Errors, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, q *Queue) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := q.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
		close(done)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func TestJobOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		work     func(ctx context.Context, j Job) error
		attempts int
		want     rivertype.JobState
		tries    int
	}{
		{"success", func(context.Context, Job) error { return nil }, 1, rivertype.JobStateCompleted, 1},
		{"failure", func(context.Context, Job) error { return errors.New("no") }, 1, rivertype.JobStateDiscarded, 1},
		{"retried until it works", func(_ context.Context, j Job) error {
			if j.Attempt < 3 {
				return errors.New("flaky")
			}
			return nil
		}, 3, rivertype.JobStateCompleted, 3},
		{"retries run out", func(context.Context, Job) error { return errors.New("no") }, 2, rivertype.JobStateDiscarded, 2},
	}
	eachBackend(t, func(t *testing.T, st *store.Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := newQueue(t, st, Options{Workers: 2})
				var mu sync.Mutex
				tries := 0
				kind := "k-" + tt.name // each case's queue works its own jobs only
				q.Handle(kind, &recorder{work: func(ctx context.Context, j Job) error {
					mu.Lock()
					tries++
					mu.Unlock()
					return tt.work(ctx, j)
				}})
				start(t, q)
				id := enqueue(t, st, q, NewJob{Kind: kind, Payload: map[string]int{"n": 1}, MaxAttempts: tt.attempts})
				row := waitState(t, q, id, tt.want)
				mu.Lock()
				defer mu.Unlock()
				if tries != tt.tries || row.Attempt != tt.tries {
					t.Errorf("tried %d times (attempt %d), want %d", tries, row.Attempt, tt.tries)
				}
				if string(row.EncodedArgs) != `{"n":1}` && string(row.EncodedArgs) != `{"n": 1}` {
					t.Errorf("payload = %s", row.EncodedArgs)
				}
			})
		}
	})
}

// A job ended by its handler in the transaction of its state change ends
// with that transaction, and not when it rolls back.
func TestFinishInTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		q := newQueue(t, st, Options{Workers: 1})
		boom := errors.New("boom")
		q.Handle("k", &recorder{work: func(ctx context.Context, j Job) error {
			err := st.Update(ctx, func(tx *store.Tx) error {
				if err := tx.PutJSON(ctx, "/x/first", "t", 1); err != nil {
					return err
				}
				if err := q.Finish(ctx, tx, j); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				return err
			}
			row, err := q.river.get(ctx, j.ID)
			if err != nil {
				return err
			}
			if row.State != rivertype.JobStateRunning {
				t.Errorf("after a rollback the job is %s, want running", row.State)
			}
			return st.Update(ctx, func(tx *store.Tx) error {
				if err := tx.PutJSON(ctx, "/x/second", "t", 2); err != nil {
					return err
				}
				return q.Finish(ctx, tx, j)
			})
		}})
		start(t, q)
		id := enqueue(t, st, q, NewJob{Kind: "k"})
		waitState(t, q, id, rivertype.JobStateCompleted)
		err := st.View(context.Background(), func(tx *store.Tx) error {
			if _, err := tx.Get(context.Background(), "/x/first"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the rolled back document: %v", err)
			}
			_, err := tx.Get(context.Background(), "/x/second")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// An enqueue in a transaction that rolls back leaves no job.
func TestEnqueueRollsBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		q := newQueue(t, st, Options{Workers: 1})
		var id int64
		boom := errors.New("boom")
		err := st.Update(context.Background(), func(tx *store.Tx) (err error) {
			if id, err = q.Enqueue(context.Background(), tx, NewJob{Kind: "k"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, err := q.river.get(context.Background(), id); err == nil {
			t.Fatalf("job %d exists after its transaction rolled back", id)
		}
	})
}

func TestCancel(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		q := newQueue(t, st, Options{Workers: 1, Lease: 3 * time.Second})
		started := make(chan Job, 4)
		causes := make(chan error, 4)
		q.Handle("slow", &recorder{started: started, work: func(ctx context.Context, j Job) error {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return context.Cause(ctx)
		}})
		start(t, q)
		running := enqueue(t, st, q, NewJob{Kind: "slow"})
		<-started
		queued := enqueue(t, st, q, NewJob{Kind: "slow"})

		cancel := func(id int64) bool {
			var r bool
			err := st.Update(context.Background(), func(tx *store.Tx) (err error) { r, err = q.Cancel(context.Background(), tx, id); return err })
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if cancel(queued) {
			t.Errorf("canceling a queued job answered running, want canceled at once")
		}
		if !cancel(running) {
			t.Errorf("canceling a running job answered not running")
		}
		if cause := <-causes; !errors.Is(cause, ErrCanceled) {
			t.Errorf("cause = %v, want ErrCanceled", cause)
		}
		waitState(t, q, running, rivertype.JobStateCancelled)
		waitState(t, q, queued, rivertype.JobStateCancelled)
	})
}

// A job canceled through another process's queue (another serve replica)
// is stopped: on PostgreSQL at once by River's notification (the worker's
// heartbeat, which would see it too, is an hour away here), on SQLite by
// the worker's heartbeat.
func TestCancelFromAnotherProcess(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		heartbeat := 50 * time.Millisecond
		if st.Dialect() == store.PostgreSQL {
			heartbeat = time.Hour
		}
		worker := newQueue(t, st, Options{Owner: "worker", Workers: 1, Lease: 2 * heartbeat, Heartbeat: heartbeat})
		started := make(chan Job, 1)
		causes := make(chan error, 1)
		worker.Handle("slow", &recorder{started: started, work: func(ctx context.Context, j Job) error {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return context.Cause(ctx)
		}})
		start(t, worker)
		api := newQueue(t, st, Options{Owner: "api", Workers: 0})
		id := enqueue(t, st, api, NewJob{Kind: "slow"})
		<-started
		err := st.Update(context.Background(), func(tx *store.Tx) error { _, err := api.Cancel(context.Background(), tx, id); return err })
		if err != nil {
			t.Fatal(err)
		}
		select {
		case cause := <-causes:
			if !errors.Is(cause, ErrCanceled) {
				t.Errorf("cause = %v, want ErrCanceled", cause)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the running job was not canceled")
		}
		waitState(t, worker, id, rivertype.JobStateCancelled)
	})
}

// A job left running by a dead worker is handed to Interrupted when the
// next process starts (exclusive) or when the worker's heartbeats stop
// (shared); a retry is a new job.
func TestRecoverOrphans(t *testing.T) {
	tests := []struct {
		name      string
		exclusive bool
		node      bool // the dead worker was an earlier process of the same node
		retry     bool
	}{
		{"exclusive start", true, false, false},
		{"heartbeats stopped", false, false, false},
		{"heartbeats stopped, retried", false, false, true},
		{"restart of the node", false, true, false},
	}
	eachBackend(t, func(t *testing.T, st *store.Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				kind := "build-" + tt.name
				// The dead worker takes the job, heartbeats once and never again.
				deadStarted := make(chan Job, 1)
				node, deadName := "", "dead-"+tt.name
				if tt.node {
					node = "node-" + tt.name
				}
				dead := newQueue(t, st, Options{Node: node, Owner: deadName, Workers: 1, Heartbeat: time.Hour})
				deadRec := &recorder{started: deadStarted, work: func(ctx context.Context, j Job) error {
					<-ctx.Done()
					return context.Cause(ctx)
				}}
				dead.Handle(kind, deadRec)
				stopDead := start(t, dead)
				id := enqueue(t, st, dead, NewJob{Kind: kind, Payload: map[string]string{"run": "run-1"}, MaxAttempts: 2})
				<-deadStarted

				rec := &recorder{retry: tt.retry, work: func(context.Context, Job) error { return nil }}
				rec.started = make(chan Job, 1)
				lease := time.Hour
				if !tt.exclusive && !tt.node {
					lease = 300 * time.Millisecond
				}
				alive := newQueue(t, st, Options{Node: node, Workers: 1, Exclusive: tt.exclusive, Lease: lease, Heartbeat: 50 * time.Millisecond})
				alive.Handle(kind, rec)
				start(t, alive)
				row := waitState(t, alive, id, rivertype.JobStateDiscarded)
				if len(row.Errors) == 0 || row.Errors[len(row.Errors)-1].Error == "" {
					t.Error("the recovered job has no error message")
				}
				// The "dead" worker, in fact alive, stops; the job is not
				// interrupted twice.
				stopDead()
				rec.mu.Lock()
				got, causes := rec.interrupted, rec.causes
				rec.mu.Unlock()
				if len(got) != 1 || string(got[0].Payload) != `{"run":"run-1"}` && string(got[0].Payload) != `{"run": "run-1"}` {
					t.Fatalf("Interrupted calls = %+v, want one for run-1", got)
				}
				if got[0].Owner != deadName || !strings.Contains(causes[0].Error(), deadName) {
					t.Errorf("owner %q, cause %v: want the dead worker named", got[0].Owner, causes[0])
				}
				if len(deadRec.interrupted) != 0 {
					t.Errorf("the dead worker's handler was asked too: %+v", deadRec.interrupted)
				}
				select {
				case j := <-rec.started:
					if !tt.retry {
						t.Errorf("job %d ran again without a retry", j.ID)
					}
				case <-time.After(500 * time.Millisecond): // polls every 20ms
					if tt.retry {
						t.Error("the retry did not run")
					}
				}
			})
		}
	})
}

func TestHeartbeatKeepsJob(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		// Leases are short and heartbeats frequent, with a margin for -race
		// on a loaded machine.
		q := newQueue(t, st, Options{Workers: 1, Lease: 600 * time.Millisecond, Heartbeat: 50 * time.Millisecond})
		rec := &recorder{work: func(ctx context.Context, j Job) error {
			select {
			case <-time.After(1200 * time.Millisecond): // two leases long
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}}
		q.Handle("long", rec)
		// Another process watches for dead workers.
		watcher := newQueue(t, st, Options{Owner: "watcher", Workers: 0, Lease: 600 * time.Millisecond, Heartbeat: 50 * time.Millisecond})
		start(t, watcher)
		start(t, q)
		id := enqueue(t, st, q, NewJob{Kind: "long"})
		waitState(t, q, id, rivertype.JobStateCompleted)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.interrupted) != 0 {
			t.Fatalf("a heartbeating job was recovered as interrupted: %+v", rec.interrupted)
		}
	})
}

// Stopping the queue stops its running jobs and hands them to Interrupted
// with ErrStopping.
func TestStopInterrupts(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		q := newQueue(t, st, Options{Workers: 1})
		started := make(chan Job, 1)
		rec := &recorder{started: started, work: func(ctx context.Context, j Job) error {
			<-ctx.Done()
			return context.Cause(ctx)
		}}
		q.Handle("k", rec)
		stop := start(t, q)
		id := enqueue(t, st, q, NewJob{Kind: "k"})
		<-started
		stop()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.causes) != 1 || !errors.Is(rec.causes[0], ErrStopping) {
			t.Fatalf("Interrupted causes = %v, want one ErrStopping", rec.causes)
		}
		row, err := q.river.get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if row.State != rivertype.JobStateDiscarded {
			t.Errorf("job is %s, want discarded", row.State)
		}
	})
}

// Servers starting together on a new database migrate River's tables one
// at a time.
func TestConcurrentStarts(t *testing.T) {
	for _, b := range cluster.Backends() {
		if b.Name == "sqlite" {
			continue // one server per SQLite file (its data directory is locked)
		}
		t.Run(b.Name, func(t *testing.T) {
			database := b.Database(t)
			errs := make(chan error, 3)
			for range 3 {
				go func() {
					st, err := store.Open(context.Background(), database)
					if err == nil {
						_, err = New(context.Background(), st, Options{})
						st.Close()
					}
					errs <- err
				}()
			}
			for range 3 {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestWorkersList: a worker's heartbeat says its capacity and how many jobs
// it runs; an API-only queue's says 0; a stopped worker leaves the list.
func TestWorkersList(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		q := newQueue(t, st, Options{Owner: "builder", Node: "host:/data", Workers: 3, Heartbeat: 20 * time.Millisecond})
		release := make(chan struct{})
		started := make(chan Job, 2)
		q.Handle("hold", &recorder{started: started, work: func(ctx context.Context, j Job) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}})
		api := newQueue(t, st, Options{Owner: "api", Workers: 0, Heartbeat: 20 * time.Millisecond})
		start(t, api)
		stop := start(t, q)
		for range 2 {
			enqueue(t, st, q, NewJob{Kind: "hold"})
		}
		<-started
		<-started
		var ws []Worker
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if ws, err = api.Workers(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := map[string]Worker{}
			for _, w := range ws {
				got[w.Owner] = w
			}
			b, a := got["builder"], got["api"]
			if b.Capacity == 3 && b.Running == 2 && b.Node == "host:/data" && b.Alive && a.Capacity == 0 && a.Alive && len(ws) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("workers %+v; want builder with capacity 3 running 2, and api with capacity 0", ws)
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(release)
		stop()
		ws, err := api.Workers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 || ws[0].Owner != "api" {
			t.Errorf("workers after the builder stopped: %+v", ws)
		}
	})
}
