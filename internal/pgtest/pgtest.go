// Package pgtest runs, for tests, a private PostgreSQL cluster from
// Debian's postgresql package: initdb and pg_ctl in a temporary directory,
// listening on 127.0.0.1 on a free port, no system service involved. A test
// package starts one in TestMain (Start) and every test gets a database of
// its own (Cluster.Database), so tests stay independent and the cluster's
// start (about a second) is paid once per package.
//
// Where the binaries are missing the tests that need them are skipped,
// except when GOLDSMITH_REQUIRE_CORPUS or CI is set (as in CI): then they
// fail, so a green CI run means PostgreSQL was tested.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir holds Debian's PostgreSQL 15 programs.
const BinDir = "/usr/lib/postgresql/15/bin"

// Cluster is a running private PostgreSQL cluster.
type Cluster struct {
	dir     string
	port    int
	runAs   *user.User // nil: the current user
	n       atomic.Int64
	admin   string // DSN of the postgres database
	missing error  // why there is no cluster; Database skips or fails with it
}

// Required reports whether PostgreSQL must be there: in CI.
func Required() bool {
	return os.Getenv("GOLDSMITH_REQUIRE_CORPUS") != "" || os.Getenv("CI") != ""
}

// Start starts a cluster. When PostgreSQL is not installed it returns a
// Cluster whose Database skips (or fails, when Required) and a nil error;
// other errors are real. Stop it at the end of TestMain.
func Start() (*Cluster, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err != nil {
		return &Cluster{missing: fmt.Errorf("PostgreSQL 15 is not installed (%v); scripts/setup installs Debian's postgresql", err)}, nil
	}
	c := &Cluster{}
	// initdb refuses to run as root: run the server as postgres then.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs the postgres user: %w", err)
		}
		c.runAs = u
	}
	dir, err := os.MkdirTemp("", "goldsmith-pgtest-")
	if err != nil {
		return nil, err
	}
	c.dir = dir
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			c.Stop()
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.command(filepath.Join(BinDir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"--no-sync", "-E", "UTF8", "--locale=C.UTF-8").CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// A free port: another process may take it before the server does;
	// then pg_ctl fails and so does the test, loudly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Stop()
		return nil, err
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	// fsync off: the cluster is thrown away, and tests stay fast.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.port, dir)
	if out, err := c.command(filepath.Join(BinDir, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		c.Stop()
		return nil, fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	c.admin = c.dsn("postgres")
	if err := c.admin1("CREATE DATABASE goldsmith_test"); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = os.TempDir()
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	return cmd
}

func (c *Cluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Stop stops the server and removes its files.
func (c *Cluster) Stop() {
	if c == nil || c.dir == "" {
		return
	}
	if c.port != 0 {
		_ = c.command(filepath.Join(BinDir, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop").Run()
	}
	os.RemoveAll(c.dir)
}

// Database makes an empty database for t and returns its URL; it is
// dropped when t ends. It is a schema of its own in the cluster's test
// database, named by search_path in the URL: making one takes milliseconds
// where a whole database takes a third of a second.
func (c *Cluster) Database(t testing.TB) string {
	t.Helper()
	if c == nil || c.missing != nil {
		err := errors.New("pgtest: no cluster")
		if c != nil {
			err = c.missing
		}
		if Required() {
			t.Fatalf("PostgreSQL is required here (GOLDSMITH_REQUIRE_CORPUS or CI is set): %v", err)
		}
		t.Skipf("skipping the PostgreSQL case: %v", err)
	}
	name := fmt.Sprintf("t%d", c.n.Add(1))
	db := c.dsn("goldsmith_test")
	if err := c.exec(db, fmt.Sprintf("CREATE SCHEMA %s", name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.exec(db, fmt.Sprintf("DROP SCHEMA %s CASCADE", name)); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	return db + "&search_path=" + name
}

func (c *Cluster) admin1(sql string) error { return c.exec(c.admin, sql) }

func (c *Cluster) exec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// Main is TestMain for a package whose tests use a cluster: it starts one,
// hands it to set, runs the tests and stops it.
func Main(m *testing.M, set func(*Cluster)) {
	c, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	set(c)
	code := m.Run()
	c.Stop()
	os.Exit(code)
}

// Backend is one database engine a table-driven test runs over.
type Backend struct {
	Name string
	// Database returns a fresh database for t: a SQLite file path or a
	// PostgreSQL URL (see store.Open).
	Database func(t testing.TB) string
}

// Backends are SQLite (a file in t's temporary directory) and PostgreSQL
// (a database of c): the engines goldsmith runs on.
func (c *Cluster) Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Database: func(t testing.TB) string { return filepath.Join(t.TempDir(), "goldsmith.db") }},
		{Name: "postgres", Database: c.Database},
	}
}
