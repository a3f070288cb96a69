package store

import (
	"context"
	"fmt"
)

// A run's build log is kept in the database as appended chunks, so that
// every API node serves it, live, whichever worker writes it. A log
// belongs to a document (the run) and goes with it in DeleteTree.

// LogChunk is one appended piece of a log.
type LogChunk struct {
	Seq  int64 // 1, 2, ... in append order
	Data []byte
}

// AppendLog appends data to the log of the document id and returns the
// log's size after it.
func (t *Tx) AppendLog(ctx context.Context, id string, data []byte) (int64, error) {
	if len(data) == 0 {
		return t.LogSize(ctx, id)
	}
	_, err := t.c.exec(ctx, `INSERT INTO run_logs (run, seq, data)
		SELECT ?, COALESCE(MAX(seq), 0) + 1, ? FROM run_logs WHERE run = ?`, Key(id), data, Key(id))
	if err != nil {
		return 0, fmt.Errorf("append to the log of %s: %w", id, err)
	}
	return t.LogSize(ctx, id)
}

// LogSize is the size in bytes of the log of the document id (0 when none).
func (t *Tx) LogSize(ctx context.Context, id string) (int64, error) {
	var n int64
	if err := t.c.queryRow(ctx, `SELECT COALESCE(SUM(length(data)), 0) FROM run_logs WHERE run = ?`, Key(id)).Scan(&n); err != nil {
		return 0, fmt.Errorf("size of the log of %s: %w", id, err)
	}
	return n, nil
}

// ReadLog returns the chunks of the log of the document id after the chunk
// numbered after (0: from the start), at most limit of them (0: all).
func (t *Tx) ReadLog(ctx context.Context, id string, after int64, limit int) ([]LogChunk, error) {
	q := `SELECT seq, data FROM run_logs WHERE run = ? AND seq > ? ORDER BY seq`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := t.c.query(ctx, q, Key(id), after)
	if err != nil {
		return nil, fmt.Errorf("read the log of %s: %w", id, err)
	}
	defer rows.Close()
	var out []LogChunk
	for rows.Next() {
		var c LogChunk
		if err := rows.Scan(&c.Seq, &c.Data); err != nil {
			return nil, fmt.Errorf("read the log of %s: %w", id, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
