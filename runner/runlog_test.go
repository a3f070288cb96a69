package runner

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/store"
)

// TestDBLog writes a run's log through dbLog, on both engines: what a flush
// wrote is readable before the log closes (a follower on another node sees
// it), the order holds across flushes, and past the cap the log stops with
// a line saying it was truncated.
func TestDBLog(t *testing.T) {
	const run = templateID + "/runs/r1"
	for _, b := range cluster.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, b.Database(t))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			read := func() string {
				var text strings.Builder
				err := st.View(ctx, func(tx *store.Tx) error {
					chunks, err := tx.ReadLog(ctx, run, 0, 0)
					for _, c := range chunks {
						text.Write(c.Data)
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return text.String()
			}
			l, err := newDBLog(ctx, st, run, 64, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			l.write([]byte("first line\n"))
			l.flush(ctx)
			if got := read(); got != "first line\n" {
				t.Errorf("after a flush: %q", got)
			}
			l.write([]byte("second line\n"))
			l.write([]byte(strings.Repeat("x", 60) + "\n"))
			l.write([]byte("dropped\n"))
			l.close()
			got := read()
			want := "first line\nsecond line\n" + strings.Repeat("x", 64-23)
			if !strings.HasPrefix(got, want+"\n") || !strings.Contains(got, "the log is truncated here") || strings.Contains(got, "dropped") {
				t.Errorf("log after the cap:\n%q\nwant %q, then the truncation line", got, want)
			}
			// A reopened log (a retried distribution) knows it is full.
			l, err = newDBLog(ctx, st, run, 64, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			l.write([]byte("more\n"))
			l.close()
			if again := read(); again != got {
				t.Errorf("a full log changed: %q", again)
			}
		})
	}
}
