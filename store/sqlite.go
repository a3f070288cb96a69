package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// sqliteDB is a SQLite file: one writer connection (SQLite has one writer
// at a time; BEGIN IMMEDIATE takes the write lock at once) and a few
// readers (WAL lets them read while the writer writes).
type sqliteDB struct {
	w, r *sql.DB
}

func openSQLite(path string) (*sqliteDB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_time_format=sqlite"
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	return &sqliteDB{w: w, r: r}, nil
}

func (b *sqliteDB) dialect() Dialect { return SQLite }

func (b *sqliteDB) close() error { return errors.Join(b.r.Close(), b.w.Close()) }

func (b *sqliteDB) begin(ctx context.Context, readOnly bool) (conn, error) {
	db := b.w
	if readOnly {
		db = b.r
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
	if err != nil {
		return nil, err
	}
	return sqliteConn{tx}, nil
}

type sqliteConn struct{ tx *sql.Tx }

func (c sqliteConn) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c sqliteConn) queryRow(ctx context.Context, query string, args ...any) scanner {
	return sqliteRow{c.tx.QueryRowContext(ctx, query, args...)}
}

type sqliteRow struct{ r *sql.Row }

func (r sqliteRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return errNoRows
	}
	return err
}

func (c sqliteConn) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := c.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqliteRows{r}, nil
}

type sqliteRows struct{ *sql.Rows }

func (r sqliteRows) Close() { _ = r.Rows.Close() }

func (c sqliteConn) commit(context.Context) error   { return c.tx.Commit() }
func (c sqliteConn) rollback(context.Context) error { return c.tx.Rollback() }
