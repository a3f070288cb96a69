package runner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
)

// A run's customization.log is written twice: to its file in this node's
// data directory, and into the database in chunks (store.Tx.AppendLog),
// flushed every LogFlush and when the log closes, so every API node serves
// it, live, whichever worker builds the run.
const (
	// LogFlush is how often a run's new log lines reach the database.
	LogFlush = time.Second
	// MaxLogBytes caps a run's log in the database; what comes after is
	// dropped (the file keeps it) and the log says so.
	MaxLogBytes = 16 << 20
	// flushBytes flushes early when this much is waiting.
	flushBytes = 256 << 10
)

// runLog is an open run log; Close flushes it.
type runLog struct {
	f      *os.File
	db     *dbLog
	run    string
	forget func()
}

func (l *runLog) Write(p []byte) (int, error) {
	n, err := l.f.Write(p)
	l.db.write(p)
	return n, err
}

func (l *runLog) Close() error {
	l.forget()
	l.db.close()
	return l.f.Close()
}

// syncLog writes what the open log of run has not yet written to the
// database: before a run's end commits, so that whoever sees the run ended
// reads its whole log.
func (r *Runner) syncLog(ctx context.Context, runID string) {
	if l, ok := r.logs.Load(runID); ok {
		l.(*runLog).db.flush(ctx)
	}
}

// openLog opens the run's customization.log for appending.
func (r *Runner) openLog(ctx context.Context, run resource.Run) (*runLog, error) {
	p := r.abs(run.LogPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open run log: %w", err)
	}
	db, err := newDBLog(ctx, r.st, run.ID, MaxLogBytes, r.log)
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &runLog{f: f, db: db, run: run.ID}
	r.logs.Store(run.ID, l)
	l.forget = func() { r.logs.CompareAndDelete(run.ID, l) }
	return l, nil
}

// dbLog appends a run's log to the database in the background.
type dbLog struct {
	st  *store.Store
	run string
	max int64
	log *slog.Logger

	// flushing keeps chunks in order: one flush at a time, from taking
	// the buffer to its append's commit.
	flushing sync.Mutex

	mu        sync.Mutex
	buf       []byte
	size      int64 // in the database and buf
	truncated bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newDBLog(ctx context.Context, st *store.Store, run string, maxBytes int64, log *slog.Logger) (*dbLog, error) {
	var size int64
	// A retried distribution appends to the log the build wrote.
	if err := st.View(ctx, func(tx *store.Tx) (err error) { size, err = tx.LogSize(ctx, run); return err }); err != nil {
		return nil, err
	}
	l := &dbLog{st: st, run: run, max: maxBytes, log: log, size: size, truncated: size >= maxBytes,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.loop(context.WithoutCancel(ctx))
	return l, nil
}

func (l *dbLog) write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.truncated {
		return
	}
	if room := l.max - l.size; int64(len(p)) > room {
		p = p[:max(room, 0)]
		l.truncated = true
	}
	l.buf = append(l.buf, p...)
	l.size += int64(len(p))
	if l.truncated {
		l.buf = append(l.buf, fmt.Sprintf("\n%s goldsmith: the log is truncated here: goldsmith keeps %d MiB of a run's log\n",
			time.Now().UTC().Format(time.RFC3339), l.max>>20)...)
	}
	if len(l.buf) >= flushBytes {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

func (l *dbLog) loop(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(LogFlush)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.flush(ctx)
			return
		case <-t.C:
		case <-l.kick:
		}
		l.flush(ctx)
	}
}

func (l *dbLog) flush(ctx context.Context) {
	l.flushing.Lock()
	defer l.flushing.Unlock()
	l.mu.Lock()
	data := l.buf
	l.buf = nil
	l.mu.Unlock()
	if len(data) == 0 {
		return
	}
	err := l.st.Update(ctx, func(tx *store.Tx) error { _, err := tx.AppendLog(ctx, l.run, data); return err })
	if err != nil {
		// The file keeps the lines; the API serves what reached the database.
		l.log.Warn("keep the run log in the database", "run", l.run, "err", err)
	}
}

func (l *dbLog) close() {
	close(l.stop)
	<-l.done
}
