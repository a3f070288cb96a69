package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/goldsmith-dev/goldsmith/store"
)

// riverClient is the part of a River client the queue uses, whatever the
// database: River's client is generic over its driver's transaction type,
// and a store.Tx holds either engine's.
type riverClient interface {
	insert(ctx context.Context, tx *store.Tx, a args, opts *river.InsertOpts) (int64, error)
	cancel(ctx context.Context, tx *store.Tx, id int64) (*rivertype.JobRow, error)
	getTx(ctx context.Context, tx *store.Tx, id int64) (*rivertype.JobRow, error)
	get(ctx context.Context, id int64) (*rivertype.JobRow, error)
	// end ends a running job in tx (completed, cancelled or discarded);
	// message is its error.
	end(ctx context.Context, tx *store.Tx, id int64, state rivertype.JobState, message string) error
	listRunning(ctx context.Context) ([]*rivertype.JobRow, error)
	start(ctx context.Context) error
	stop(ctx context.Context) error
}

type client[TDriver riverdriver.Driver[TTx], TTx any] struct {
	c    *river.Client[TTx]
	txOf func(*store.Tx) TTx
}

// newClient migrates River's tables (under exclusive, which keeps other
// processes from migrating at the same time) and makes the client.
func newClient[TDriver riverdriver.Driver[TTx], TTx any](ctx context.Context, driver TDriver, cfg *river.Config, txOf func(*store.Tx) TTx,
	exclusive func(context.Context, func() error) error) (*client[TDriver, TTx], error) {
	m, err := rivermigrate.New(driver, nil)
	if err != nil {
		return nil, fmt.Errorf("River migrations: %w", err)
	}
	err = exclusive(ctx, func() error { _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); return err })
	if err != nil {
		return nil, fmt.Errorf("migrate River's tables: %w", err)
	}
	c, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("make the River client: %w", err)
	}
	return &client[TDriver, TTx]{c: c, txOf: txOf}, nil
}

// newSQLiteClient runs River on the store's single SQLite writer
// connection (River meets SQLITE_BUSY with more than one).
func newSQLiteClient(ctx context.Context, st *store.Store, cfg *river.Config) (riverClient, error) {
	// SQLite has no LISTEN/NOTIFY: workers poll.
	cfg.PollOnly = true
	// The data directory is locked: no other process migrates.
	alone := func(_ context.Context, fn func() error) error { return fn() }
	return newClient(ctx, riversqlite.New(st.SQLiteDB()), cfg, func(tx *store.Tx) *sql.Tx { return tx.SQLiteTx() }, alone)
}

// migrateLock is the key of the session advisory lock PostgreSQL servers
// migrate River's tables under, one at a time (several replicas may start
// together on a new database).
const migrateLock = 0x72697672 // "rivr"

func newPostgresClient(ctx context.Context, st *store.Store, cfg *river.Config) (riverClient, error) {
	pool := st.PostgresPool()
	locked := func(ctx context.Context, fn func() error) error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		defer func() {
			bg := context.WithoutCancel(ctx)
			if _, err := conn.Exec(bg, `SELECT pg_advisory_unlock($1)`, migrateLock); err != nil {
				_ = conn.Conn().Close(bg) // its session, and so the lock, ends
			}
		}()
		return fn()
	}
	return newClient(ctx, riverpgxv5.New(pool), cfg, func(tx *store.Tx) pgx.Tx { return tx.PostgresTx() }, locked)
}

func (c *client[TDriver, TTx]) insert(ctx context.Context, tx *store.Tx, a args, opts *river.InsertOpts) (int64, error) {
	res, err := c.c.InsertTx(ctx, c.txOf(tx), a, opts)
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

func (c *client[TDriver, TTx]) cancel(ctx context.Context, tx *store.Tx, id int64) (*rivertype.JobRow, error) {
	return c.c.JobCancelTx(ctx, c.txOf(tx), id)
}

func (c *client[TDriver, TTx]) getTx(ctx context.Context, tx *store.Tx, id int64) (*rivertype.JobRow, error) {
	return c.c.JobGetTx(ctx, c.txOf(tx), id)
}

func (c *client[TDriver, TTx]) get(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	return c.c.JobGet(ctx, id)
}

func (c *client[TDriver, TTx]) end(ctx context.Context, tx *store.Tx, id int64, state rivertype.JobState, message string) error {
	row, err := c.c.JobGetTx(ctx, c.txOf(tx), id)
	if err != nil {
		return err
	}
	if row.State != rivertype.JobStateRunning {
		return nil // ended already (canceled, or taken from a worker thought dead)
	}
	now := time.Now().UTC()
	var errData []byte
	if message != "" {
		if errData, err = json.Marshal(rivertype.AttemptError{At: now, Attempt: row.Attempt, Error: message}); err != nil {
			return err
		}
	}
	// River's driver API, as river.JobCompleteTx uses it; that function
	// works only inside a River worker, and the job of a dead worker is
	// ended by another process.
	_, err = c.c.Driver().UnwrapExecutor(c.txOf(tx)).JobSetStateIfRunningMany(ctx, &riverdriver.JobSetStateIfRunningManyParams{
		ID:              []int64{id},
		Attempt:         []*int{nil},
		ErrData:         [][]byte{errData},
		FinalizedAt:     []*time.Time{&now},
		MetadataDoMerge: []bool{false},
		MetadataUpdates: [][]byte{nil},
		ScheduledAt:     []*time.Time{nil},
		State:           []rivertype.JobState{state},
	})
	return err
}

func (c *client[TDriver, TTx]) listRunning(ctx context.Context) ([]*rivertype.JobRow, error) {
	var all []*rivertype.JobRow
	params := river.NewJobListParams().States(rivertype.JobStateRunning).First(1000)
	for {
		res, err := c.c.JobList(ctx, params)
		if err != nil {
			return nil, err
		}
		all = append(all, res.Jobs...)
		if len(res.Jobs) < 1000 {
			return all, nil
		}
		params = params.After(res.LastCursor)
	}
}

func (c *client[TDriver, TTx]) start(ctx context.Context) error { return c.c.Start(ctx) }

func (c *client[TDriver, TTx]) stop(ctx context.Context) error { return c.c.Stop(ctx) }
