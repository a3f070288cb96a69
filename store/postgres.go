package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresDB is a PostgreSQL database reached through a pgx pool.
type postgresDB struct {
	pool *pgxpool.Pool
}

// writerLock is the key of the transaction-scoped advisory lock every write
// transaction takes first: writers are serialized as on SQLite, so a
// read-modify-write of a document never loses an update, whichever process
// makes it.
const writerLock = 0x676f6c64 // "gold"

func openPostgres(ctx context.Context, url string) (*postgresDB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse the PostgreSQL URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	return &postgresDB{pool: pool}, nil
}

func (b *postgresDB) dialect() Dialect { return PostgreSQL }

func (b *postgresDB) close() error { b.pool.Close(); return nil }

func (b *postgresDB) begin(ctx context.Context, readOnly bool) (conn, error) {
	opts := pgx.TxOptions{}
	if readOnly {
		opts.AccessMode = pgx.ReadOnly
	}
	tx, err := b.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if !readOnly {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, writerLock); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("take the writer lock: %w", err)
		}
	}
	return postgresConn{tx}, nil
}

type postgresConn struct{ tx pgx.Tx }

// numbered turns the ? placeholders of the store's queries into $1, $2...
// (the queries have no ? in literals).
func numbered(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c postgresConn) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.tx.Exec(ctx, numbered(query), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (c postgresConn) queryRow(ctx context.Context, query string, args ...any) scanner {
	return postgresRow{c.tx.QueryRow(ctx, numbered(query), args...)}
}

type postgresRow struct{ r pgx.Row }

func (r postgresRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return errNoRows
	}
	return err
}

func (c postgresConn) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := c.tx.Query(ctx, numbered(query), args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (c postgresConn) commit(ctx context.Context) error   { return c.tx.Commit(ctx) }
func (c postgresConn) rollback(ctx context.Context) error { return c.tx.Rollback(ctx) }
