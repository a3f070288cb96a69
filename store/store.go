// Package store persists goldsmith's state: every resource (resource groups,
// image templates, runs, images, galleries, operations ...) as a JSON document
// keyed by its ARM resource id, in one database: a SQLite file (pure Go,
// WAL) by default, or PostgreSQL for several processes on several machines.
//
// ARM ids are case-insensitive and keep their casing: a document is found by
// its id in any casing and keeps the casing it was created with. Ids are
// hierarchical, so a scope (a subscription, a resource group, a template) is an
// id prefix: listing and deleting "everything under" a resource is one range
// query.
//
// Every change happens in a transaction (Update); writers are serialized
// (on PostgreSQL by a transaction-scoped advisory lock), readers (View) run
// concurrently with them. The schema is versioned (migrations.go). The job
// queue keeps its tables in the same database and takes part in the same
// transactions through Tx.SQLiteTx or Tx.PostgresTx.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors callers test for with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Doc is one stored resource.
type Doc struct {
	ID      string          // ARM resource id, casing as created
	Type    string          // resource type, e.g. Microsoft.Compute/images
	Body    json.RawMessage // the resource's JSON
	Created time.Time
	Updated time.Time
}

// Key is the case-folded id documents are indexed by.
func Key(id string) string { return strings.ToLower(strings.TrimSuffix(id, "/")) }

// Store is the database: SQLite (a file) or PostgreSQL.
type Store struct {
	db  backend
	now func() time.Time
}

// backend is one database engine.
type backend interface {
	// begin starts a transaction. A write transaction excludes every other
	// writer until it ends, on both engines, so a read-modify-write of a
	// document is never lost.
	begin(ctx context.Context, readOnly bool) (conn, error)
	dialect() Dialect
	close() error
}

// conn is a transaction as the store's queries use it. Queries are
// written with ? placeholders; the PostgreSQL backend numbers them.
type conn interface {
	exec(ctx context.Context, query string, args ...any) (int64, error)
	queryRow(ctx context.Context, query string, args ...any) scanner
	query(ctx context.Context, query string, args ...any) (rows, error)
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

type scanner interface{ Scan(...any) error }

type rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}

// errNoRows is what a backend's queryRow Scan returns for no row.
var errNoRows = errors.New("no rows")

// Dialect says which engine a Store runs on.
type Dialect string

const (
	SQLite     Dialect = "sqlite"
	PostgreSQL Dialect = "postgres"
)

// IsPostgres tells whether database names a PostgreSQL database (a
// postgres:// or postgresql:// URL) rather than a SQLite file.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// Open opens the database, creating it when needed, and brings its schema
// up to date: a postgres:// URL is a PostgreSQL database, anything else a
// SQLite file.
func Open(ctx context.Context, database string) (*Store, error) {
	var (
		db  backend
		err error
	)
	if IsPostgres(database) {
		db, err = openPostgres(ctx, database)
	} else {
		db, err = openSQLite(database)
	}
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, now: func() time.Time { return time.Now().UTC() }}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.close() }

// Dialect is the engine the store runs on.
func (s *Store) Dialect() Dialect { return s.db.dialect() }

// SQLiteDB is the SQLite writer connection (one connection: SQLite has one
// writer at a time), for the job queue, which keeps its tables in the same
// database; nil on PostgreSQL.
func (s *Store) SQLiteDB() *sql.DB {
	if b, ok := s.db.(*sqliteDB); ok {
		return b.w
	}
	return nil
}

// PostgresPool is the PostgreSQL connection pool, for the job queue; nil on
// SQLite.
func (s *Store) PostgresPool() *pgxpool.Pool {
	if b, ok := s.db.(*postgresDB); ok {
		return b.pool
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	version, err := s.version(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	list := migrations[s.Dialect()]
	for i := version; i < len(list); i++ {
		err := s.Update(ctx, func(tx *Tx) error {
			// Another process may have migrated meanwhile: writers are
			// serialized, so this check inside the transaction is safe.
			if v, err := tx.schemaVersion(ctx); err != nil || v > i {
				return err
			}
			if _, err := tx.c.exec(ctx, list[i]); err != nil {
				return err
			}
			return tx.setSchemaVersion(ctx, i+1)
		})
		if err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
	}
	return nil
}

func (s *Store) version(ctx context.Context) (int, error) {
	var v int
	err := s.View(ctx, func(tx *Tx) (err error) { v, err = tx.schemaVersion(ctx); return err })
	return v, err
}

// Tx is one transaction.
type Tx struct {
	c           conn
	dialect     Dialect
	now         time.Time
	afterCommit []func()
}

// AfterCommit registers fn to run once the transaction has committed (not
// when it rolls back): the place for side effects outside the database, such
// as removing files the transaction stopped referring to or waking workers.
func (t *Tx) AfterCommit(fn func()) { t.afterCommit = append(t.afterCommit, fn) }

// SQLiteTx is the underlying SQLite transaction, for the job queue to take
// part in it; nil on PostgreSQL.
func (t *Tx) SQLiteTx() *sql.Tx {
	if c, ok := t.c.(sqliteConn); ok {
		return c.tx
	}
	return nil
}

// PostgresTx is the underlying PostgreSQL transaction, for the job queue
// to take part in it; nil on SQLite.
func (t *Tx) PostgresTx() pgx.Tx {
	if c, ok := t.c.(postgresConn); ok {
		return c.tx
	}
	return nil
}

// Now is the transaction's timestamp: every change in it carries this time.
func (t *Tx) Now() time.Time { return t.now }

// Update runs fn in a write transaction and commits it when fn returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, false, fn)
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, true, fn)
}

func (s *Store) run(ctx context.Context, readOnly bool, fn func(*Tx) error) error {
	c, err := s.db.begin(ctx, readOnly)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{c: c, dialect: s.db.dialect(), now: s.now()}
	if err := fn(tx); err != nil {
		_ = c.rollback(context.WithoutCancel(ctx))
		return err
	}
	if readOnly {
		return c.rollback(ctx)
	}
	if err := c.commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, fn := range tx.afterCommit {
		fn()
	}
	return nil
}

const timeLayout = time.RFC3339Nano

func scanDoc(row interface{ Scan(...any) error }) (Doc, error) {
	var d Doc
	var body, created, updated string
	if err := row.Scan(&d.ID, &d.Type, &body, &created, &updated); err != nil {
		return Doc{}, err
	}
	d.Body = json.RawMessage(body)
	d.Created, _ = time.Parse(timeLayout, created)
	d.Updated, _ = time.Parse(timeLayout, updated)
	return d, nil
}

// Get returns the document with id (any casing), or ErrNotFound.
func (t *Tx) Get(ctx context.Context, id string) (Doc, error) {
	row := t.c.queryRow(ctx, `SELECT id, type, body, created, updated FROM docs WHERE key = ?`, Key(id))
	d, err := scanDoc(row)
	if errors.Is(err, errNoRows) {
		return Doc{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Doc{}, fmt.Errorf("read %s: %w", id, err)
	}
	return d, nil
}

// GetJSON reads the document with id into v and returns the document.
func (t *Tx) GetJSON(ctx context.Context, id string, v any) (Doc, error) {
	d, err := t.Get(ctx, id)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(d.Body, v); err != nil {
		return d, fmt.Errorf("decode %s: %w", id, err)
	}
	return d, nil
}

// Create stores a new document, or returns ErrExists when one with the same
// id (in any casing) is there.
func (t *Tx) Create(ctx context.Context, d Doc) error {
	if err := checkDoc(d); err != nil {
		return err
	}
	now := t.now.Format(timeLayout)
	n, err := t.c.exec(ctx,
		`INSERT INTO docs (key, id, type, body, created, updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING`,
		Key(d.ID), d.ID, d.Type, string(d.Body), now, now)
	if err != nil {
		return fmt.Errorf("create %s: %w", d.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", d.ID, ErrExists)
	}
	return nil
}

// Put creates or replaces a document. A replaced document keeps its id
// casing, type and creation time.
func (t *Tx) Put(ctx context.Context, d Doc) error {
	if err := checkDoc(d); err != nil {
		return err
	}
	now := t.now.Format(timeLayout)
	_, err := t.c.exec(ctx,
		`INSERT INTO docs (key, id, type, body, created, updated) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT(key) DO UPDATE SET body = excluded.body, updated = excluded.updated`,
		Key(d.ID), d.ID, d.Type, string(d.Body), now, now)
	if err != nil {
		return fmt.Errorf("write %s: %w", d.ID, err)
	}
	return nil
}

// PutJSON marshals v and stores it with Put.
func (t *Tx) PutJSON(ctx context.Context, id, typ string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", id, err)
	}
	return t.Put(ctx, Doc{ID: id, Type: typ, Body: body})
}

// CreateJSON marshals v and stores it with Create.
func (t *Tx) CreateJSON(ctx context.Context, id, typ string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", id, err)
	}
	return t.Create(ctx, Doc{ID: id, Type: typ, Body: body})
}

func checkDoc(d Doc) error {
	if d.ID == "" || d.Type == "" {
		return fmt.Errorf("store: document needs an id and a type (id %q, type %q)", d.ID, d.Type)
	}
	if !json.Valid(d.Body) {
		return fmt.Errorf("store: %s: body is not valid JSON", d.ID)
	}
	return nil
}

// Delete removes one document; ErrNotFound when there is none.
func (t *Tx) Delete(ctx context.Context, id string) error {
	n, err := t.c.exec(ctx, `DELETE FROM docs WHERE key = ?`, Key(id))
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteTree removes the document with id and every document under it (whose
// id starts with id + "/"), with their logs, and returns the ids it removed.
func (t *Tx) DeleteTree(ctx context.Context, id string) ([]Doc, error) {
	lo, hi := prefixRange(id)
	if _, err := t.c.exec(ctx, `DELETE FROM run_logs WHERE run = ? OR (run >= ? AND run < ?)`, Key(id), lo, hi); err != nil {
		return nil, fmt.Errorf("delete the logs under %s: %w", id, err)
	}
	rows, err := t.c.query(ctx,
		`DELETE FROM docs WHERE key = ? OR (key >= ? AND key < ?) RETURNING id, type, body, created, updated`, Key(id), lo, hi)
	if err != nil {
		return nil, fmt.Errorf("delete %s and what it holds: %w", id, err)
	}
	defer rows.Close()
	var docs []Doc
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, fmt.Errorf("delete %s: %w", id, err)
		}
		docs = append(docs, d)
	}
	return docs, rows.Err()
}

// prefixRange is the key range of the ids strictly under scope.
func prefixRange(scope string) (lo, hi string) {
	k := Key(scope) + "/"
	// '0' is the byte after '/'.
	return k, k[:len(k)-1] + "0"
}

// Query selects documents for List.
type Query struct {
	Type  string // resource type, compared case-insensitively; required
	Scope string // an id prefix: a subscription, resource group or parent resource; empty for all
	After string // a key from a previous page: return documents after it
	Limit int    // 0 for no limit
}

// List returns the documents of one type under a scope, in key order.
func (t *Tx) List(ctx context.Context, q Query) ([]Doc, error) {
	where := []string{"lower(type) = lower(?)"}
	args := []any{q.Type}
	if q.Scope != "" {
		lo, hi := prefixRange(q.Scope)
		where = append(where, "key >= ? AND key < ?")
		args = append(args, lo, hi)
	}
	if q.After != "" {
		where = append(where, "key > ?")
		args = append(args, q.After)
	}
	query := `SELECT id, type, body, created, updated FROM docs WHERE ` + strings.Join(where, " AND ") + ` ORDER BY key`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := t.c.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", q.Type, err)
	}
	defer rows.Close()
	var docs []Doc
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", q.Type, err)
		}
		docs = append(docs, d)
	}
	return docs, rows.Err()
}

// Count returns how many documents of any type are under scope.
func (t *Tx) Count(ctx context.Context, scope string) (int, error) {
	lo, hi := prefixRange(scope)
	var n int
	err := t.c.queryRow(ctx, `SELECT count(*) FROM docs WHERE key >= ? AND key < ?`, lo, hi).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count under %s: %w", scope, err)
	}
	return n, nil
}
