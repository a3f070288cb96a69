package queue

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/store"
)

// recorder is a handler whose behaviour each test sets.
type recorder struct {
	mu          sync.Mutex
	work        func(ctx context.Context, j Job) error
	interrupted []Job
	retry       bool
	started     chan Job
}

func (r *recorder) Work(ctx context.Context, j Job) error {
	if r.started != nil {
		r.started <- j
	}
	return r.work(ctx, j)
}

func (r *recorder) Interrupted(_ context.Context, _ *store.Tx, j Job, _ error) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interrupted = append(r.interrupted, j)
	return r.retry, nil
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
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

func waitState(t *testing.T, st *store.Store, q *Queue, id int64, want State) Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var j Job
		err := st.View(context.Background(), func(tx *store.Tx) (err error) { j, err = q.Get(context.Background(), tx, id); return err })
		if err != nil {
			t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %s (%s), want %s", id, j.State, j.Error, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, q *Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestJobOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		work     func(ctx context.Context, j Job) error
		attempts int
		want     State
		tries    int
	}{
		{"success", func(context.Context, Job) error { return nil }, 1, Done, 1},
		{"failure", func(context.Context, Job) error { return errors.New("no") }, 1, Failed, 1},
		{"retried until it works", func(_ context.Context, j Job) error {
			if j.Attempt < 3 {
				return errors.New("flaky")
			}
			return nil
		}, 3, Done, 3},
		{"retries run out", func(context.Context, Job) error { return errors.New("no") }, 2, Failed, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, filepath.Join(t.TempDir(), "q.db"))
			q := newQueue(t, st, Options{Workers: 2})
			var mu sync.Mutex
			tries := 0
			q.Handle("k", &recorder{work: func(ctx context.Context, j Job) error {
				mu.Lock()
				tries++
				mu.Unlock()
				return tt.work(ctx, j)
			}})
			start(t, q)
			id := enqueue(t, st, q, NewJob{Kind: "k", Ref: "r", Payload: map[string]int{"n": 1}, MaxAttempts: tt.attempts})
			j := waitState(t, st, q, id, tt.want)
			mu.Lock()
			defer mu.Unlock()
			if tries != tt.tries || j.Attempt != tt.tries {
				t.Errorf("tried %d times (attempt %d), want %d", tries, j.Attempt, tt.tries)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "q.db"))
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

	cancel := func(id int64) State {
		var s State
		err := st.Update(context.Background(), func(tx *store.Tx) (err error) { s, err = q.Cancel(context.Background(), tx, id); return err })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := cancel(queued); s != Canceled {
		t.Errorf("canceling a queued job answered %s, want canceled at once", s)
	}
	if s := cancel(running); s != Running {
		t.Errorf("canceling a running job answered %s, want running", s)
	}
	if cause := <-causes; !errors.Is(cause, ErrCanceled) {
		t.Errorf("cause = %v, want ErrCanceled", cause)
	}
	waitState(t, st, q, running, Canceled)
	waitState(t, st, q, queued, Canceled)
}

// A job left running by a dead process is recovered when the next process
// starts (exclusive) or when its lease runs out (shared).
func TestRecoverOrphans(t *testing.T) {
	for _, exclusive := range []bool{true, false} {
		name := map[bool]string{true: "exclusive start", false: "lease expiry"}[exclusive]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q.db")
			st := openStore(t, path)
			dead := newQueue(t, st, Options{Owner: "dead", Lease: 200 * time.Millisecond})
			dead.Handle("build", &recorder{})
			id := enqueue(t, st, dead, NewJob{Kind: "build", Ref: "run-1"})
			if _, ok, err := dead.claim(context.Background()); !ok || err != nil {
				t.Fatalf("claim: %v %v", ok, err)
			}
			// The dead process never heartbeats. A new one starts.
			rec := &recorder{work: func(context.Context, Job) error { return nil }}
			lease := time.Hour
			if !exclusive {
				lease = 200 * time.Millisecond
			}
			alive := newQueue(t, st, Options{Owner: "alive", Exclusive: exclusive, Lease: lease})
			alive.Handle("build", rec)
			start(t, alive)
			j := waitState(t, st, alive, id, Failed)
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.interrupted) != 1 || rec.interrupted[0].Ref != "run-1" {
				t.Fatalf("Interrupted calls = %+v, want one for run-1", rec.interrupted)
			}
			if j.Error == "" {
				t.Error("the recovered job has no error message")
			}
		})
	}
}

func TestHeartbeatKeepsLease(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "q.db"))
	q := newQueue(t, st, Options{Lease: 150 * time.Millisecond, Heartbeat: 30 * time.Millisecond})
	rec := &recorder{work: func(ctx context.Context, j Job) error {
		select {
		case <-time.After(600 * time.Millisecond): // four leases long
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}}
	q.Handle("long", rec)
	start(t, q)
	id := enqueue(t, st, q, NewJob{Kind: "long"})
	waitState(t, st, q, id, Done)
	if len(rec.interrupted) != 0 {
		t.Fatalf("a heartbeating job was recovered as interrupted: %+v", rec.interrupted)
	}
}
