package store

import (
	"context"
	"fmt"
)

// migrations are the schema's versions, per engine: migrations[d][i] takes
// the schema from version i to i+1. Append; never edit a released one.
// SQLite keeps the version in PRAGMA user_version, PostgreSQL in the table
// goldsmith_schema.
var migrations = map[Dialect][]string{
	SQLite: {
		`CREATE TABLE docs (
			key     TEXT PRIMARY KEY,
			id      TEXT NOT NULL,
			type    TEXT NOT NULL,
			body    TEXT NOT NULL,
			created TEXT NOT NULL,
			updated TEXT NOT NULL
		) WITHOUT ROWID;
		CREATE INDEX docs_type_key ON docs(type, key);`,
		// Runs' build logs, in appended chunks (see logs.go).
		`CREATE TABLE run_logs (
			run  TEXT NOT NULL,
			seq  INTEGER NOT NULL,
			data BLOB NOT NULL,
			PRIMARY KEY (run, seq)
		) WITHOUT ROWID;`,
	},
	PostgreSQL: {
		// Keys compare bytewise (COLLATE "C") whatever the database's
		// locale: a scope is a key range (prefixRange).
		`CREATE TABLE docs (
			key     TEXT COLLATE "C" PRIMARY KEY,
			id      TEXT NOT NULL,
			type    TEXT NOT NULL,
			body    TEXT NOT NULL,
			created TEXT NOT NULL,
			updated TEXT NOT NULL
		);
		CREATE INDEX docs_type_key ON docs(lower(type), key);`,
		`CREATE TABLE run_logs (
			run  TEXT COLLATE "C" NOT NULL,
			seq  INTEGER NOT NULL,
			data BYTEA NOT NULL,
			PRIMARY KEY (run, seq)
		);`,
	},
}

func (t *Tx) schemaVersion(ctx context.Context) (int, error) {
	var v int
	switch t.dialect {
	case SQLite:
		if err := t.c.queryRow(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return 0, err
		}
	case PostgreSQL:
		var exists bool
		// A scan of the catalog, not to_regclass: that answers from the
		// session's cache, which may not have seen another server create
		// the table meanwhile.
		err := t.c.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'goldsmith_schema')`).Scan(&exists)
		if err != nil || !exists {
			return 0, err
		}
		if err := t.c.queryRow(ctx, `SELECT version FROM goldsmith_schema`).Scan(&v); err != nil {
			return 0, err
		}
	}
	return v, nil
}

func (t *Tx) setSchemaVersion(ctx context.Context, v int) error {
	var err error
	switch t.dialect {
	case SQLite:
		_, err = t.c.exec(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v))
	case PostgreSQL:
		if v == 1 {
			if _, err = t.c.exec(ctx, `CREATE TABLE goldsmith_schema (version INTEGER NOT NULL)`); err == nil {
				_, err = t.c.exec(ctx, `INSERT INTO goldsmith_schema VALUES (?)`, v)
			}
		} else {
			_, err = t.c.exec(ctx, `UPDATE goldsmith_schema SET version = ?`, v)
		}
	}
	return err
}
