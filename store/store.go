// Package store persists goldsmith's state: every resource (resource groups,
// image templates, runs, images, galleries, operations ...) as a JSON document
// keyed by its ARM resource id, in one SQLite database (pure Go, WAL).
//
// ARM ids are case-insensitive and keep their casing: a document is found by
// its id in any casing and keeps the casing it was created with. Ids are
// hierarchical, so a scope (a subscription, a resource group, a template) is an
// id prefix: listing and deleting "everything under" a resource is one range
// query.
//
// Every change happens in a transaction (Update); writers are serialized,
// readers (View) run concurrently with them. Packages that keep their own
// tables in the same database (the run queue) use Tx.SQL to take part in the
// same transaction.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
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

// Store is the SQLite database.
type Store struct {
	w    *sql.DB // one connection: SQLite has one writer at a time
	r    *sql.DB // readers
	path string
	now  func() time.Time
}

// Open opens (creating when needed) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
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
	s := &Store{w: w, r: r, path: path, now: func() time.Time { return time.Now().UTC() }}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// DB is the writer connection, for packages that keep their own tables here
// and create them with their own migrations.
func (s *Store) DB() *sql.DB { return s.w }

var migrations = []string{
	`CREATE TABLE docs (
		key     TEXT PRIMARY KEY,
		id      TEXT NOT NULL,
		type    TEXT NOT NULL,
		body    TEXT NOT NULL,
		created TEXT NOT NULL,
		updated TEXT NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX docs_type_key ON docs(type, key);`,
}

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.w.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	for i := version; i < len(migrations); i++ {
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
	}
	return nil
}

// Tx is one transaction.
type Tx struct {
	tx          *sql.Tx
	now         time.Time
	afterCommit []func()
}

// AfterCommit registers fn to run once the transaction has committed (not
// when it rolls back): the place for side effects outside the database, such
// as removing files the transaction stopped referring to or waking workers.
func (t *Tx) AfterCommit(fn func()) { t.afterCommit = append(t.afterCommit, fn) }

// SQL is the underlying transaction, for packages with their own tables.
func (t *Tx) SQL() *sql.Tx { return t.tx }

// Now is the transaction's timestamp: every change in it carries this time.
func (t *Tx) Now() time.Time { return t.now }

// Update runs fn in a write transaction and commits it when fn returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, s.w, false, fn)
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, s.r, true, fn)
}

func (s *Store) run(ctx context.Context, db *sql.DB, readOnly bool, fn func(*Tx) error) error {
	sqlTx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{tx: sqlTx, now: s.now()}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if readOnly {
		return sqlTx.Rollback()
	}
	if err := sqlTx.Commit(); err != nil {
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
	row := t.tx.QueryRowContext(ctx, `SELECT id, type, body, created, updated FROM docs WHERE key = ?`, Key(id))
	d, err := scanDoc(row)
	if errors.Is(err, sql.ErrNoRows) {
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
	res, err := t.tx.ExecContext(ctx,
		`INSERT INTO docs (key, id, type, body, created, updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING`,
		Key(d.ID), d.ID, d.Type, string(d.Body), now, now)
	if err != nil {
		return fmt.Errorf("create %s: %w", d.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
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
	_, err := t.tx.ExecContext(ctx,
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
	res, err := t.tx.ExecContext(ctx, `DELETE FROM docs WHERE key = ?`, Key(id))
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteTree removes the document with id and every document under it (whose
// id starts with id + "/"), and returns the ids it removed.
func (t *Tx) DeleteTree(ctx context.Context, id string) ([]Doc, error) {
	lo, hi := prefixRange(id)
	rows, err := t.tx.QueryContext(ctx,
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
	where := []string{"type = ? COLLATE NOCASE"}
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
	rows, err := t.tx.QueryContext(ctx, query, args...)
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
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM docs WHERE key >= ? AND key < ?`, lo, hi).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count under %s: %w", scope, err)
	}
	return n, nil
}
