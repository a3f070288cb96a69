// Package server assembles a goldsmith server on its data directory: the
// store, the job queue (package jobs, River), the resource service, the runner that runs its
// runs and what builds their images (the build engine, adapted here, with a
// source resolver that reads the server's own images and galleries), and
// puts right what a killed server left before anything runs. `goldsmith serve` and every test that starts
// a server open one with Open; the HTTP API (package arm) goes on top.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/runner"
	"github.com/goldsmith-dev/goldsmith/source"
	"github.com/goldsmith-dev/goldsmith/store"
)

// Config says how to assemble a server.
type Config struct {
	// DataDir holds the database (unless Database says otherwise),
	// staging groups, run scratch space and artifacts. One server uses it
	// at a time (Open locks it).
	DataDir string
	// Database is a PostgreSQL URL (postgres://...) shared by several
	// servers; empty: SQLite in DataDir/goldsmith.db, this server's own.
	Database string
	// Workers is how many builds run at the same time; default 1.
	Workers int
	// Builder runs the builds. The server runs them on a copy whose Images
	// resolve platform images with Platform, and ManagedImage and
	// SharedImageVersion sources from the server's own images and gallery
	// versions.
	Builder  *build.Builder
	Platform source.Platform
	// Executor, when set, runs the builds instead of Builder (tests).
	Executor runner.Executor
	// Regions are the regions served; nil: blob.DefaultRegionNames with
	// stores under DataDir/regions.
	Regions *blob.Regions
	// Staging is the staging store (staged files, VHDs), shared by every
	// node of a site; nil: a local directory in DataDir.
	Staging blob.Store
	// MaxISOBytes caps ISO sources downloaded at submission (0: the
	// download package's default).
	MaxISOBytes int64
	// HTTPClient downloads what templates reference at submission (nil:
	// resource's default).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// StaticTokens are bearer tokens accepted as they are, beside the tokens
	// service principals get from the token endpoint.
	StaticTokens []string
	// Tenant is the tenant id tokens name (default identity.DefaultTenant).
	Tenant string
	// QueuePoll and QueueLease tune the queue (0: its defaults); tests
	// shorten them.
	QueuePoll, QueueLease time.Duration
}

// Server is an assembled goldsmith server; Run works its queue.
type Server struct {
	dir    string
	store  *store.Store
	queue  *jobs.Queue
	svc    *resource.Service
	runner *runner.Runner
	auth   *identity.Authority
	unlock func()
}

// Open assembles the server on cfg.DataDir. Before it returns, runs a
// killed server left in progress are reported as interrupted, their
// processes stopped and their scratch files removed, and the data
// directory is swept (see resource.Service.Sweep and runner.Runner.Sweep).
// Close it when done.
func Open(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if cfg.Executor == nil && cfg.Builder == nil {
		return nil, errors.New("server: a Builder or an Executor runs the builds")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := &Server{dir: dir}
	if s.unlock, err = lockDataDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	database := cfg.Database
	if database == "" {
		database = filepath.Join(dir, "goldsmith.db")
	}
	if s.store, err = store.Open(ctx, database); err != nil {
		return nil, err
	}
	// With SQLite in the locked data directory this server is the
	// database's only user: jobs left running belong to a dead server.
	exclusive := s.store.Dialect() == store.SQLite
	workers := cfg.Workers
	if workers == 0 {
		workers = 1
	}
	host, _ := os.Hostname()
	s.queue, err = jobs.New(ctx, s.store, jobs.Options{Workers: workers, Exclusive: exclusive, Node: host + ":" + dir,
		Poll: cfg.QueuePoll, Lease: cfg.QueueLease, Logger: log.With("component", "queue")})
	if err != nil {
		return nil, err
	}
	// The signing key lives beside the database: a copy of the data
	// directory keeps its tokens valid, another server's tokens are not.
	s.auth, err = identity.NewAuthority(identity.Options{Directory: identity.NewDirectory(s.store),
		KeyFile: filepath.Join(dir, "identity", "token-signing.key"), StaticTokens: cfg.StaticTokens, Tenant: cfg.Tenant})
	if err != nil {
		return nil, err
	}
	exec := cfg.Executor
	var eng *engine
	if exec == nil {
		eng = &engine{builder: *cfg.Builder}
		exec = eng
	}
	s.svc, err = resource.New(resource.Options{Store: s.store, Queue: s.queue, Runs: runner.NewQueue(s.queue), DataDir: dir,
		Regions: cfg.Regions, Staging: cfg.Staging, MaxISOBytes: cfg.MaxISOBytes, HTTPClient: cfg.HTTPClient, Logger: log.With("component", "resource")})
	if err != nil {
		return nil, err
	}
	s.runner, err = runner.New(runner.Options{Store: s.store, Queue: s.queue, Records: s.svc, Executor: exec, DataDir: dir,
		Logger: log.With("component", "runner")})
	if err != nil {
		return nil, err
	}
	if eng != nil {
		// The service exists only now; no build has started yet.
		eng.builder.Images = source.Resolver{Platform: cfg.Platform, Stored: s.svc}
	}
	// Before anything runs: runs a killed server left are reported as
	// interrupted, their processes stopped and their scratch files removed
	// (on PostgreSQL, those of workers whose heartbeats stopped; the
	// others are found while running, see package jobs).
	if err := s.queue.Recover(ctx, exclusive); err != nil {
		return nil, err
	}
	if err := s.svc.Sweep(ctx); err != nil {
		return nil, err
	}
	if err := s.runner.Sweep(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Service is the resource service, for the API.
func (s *Server) Service() *resource.Service { return s.svc }

// Authority checks and issues the API's access tokens; its Directory holds
// the service principals.
func (s *Server) Authority() *identity.Authority { return s.auth }

// Store is the server's database.
func (s *Server) Store() *store.Store { return s.store }

// DataDir is the absolute data directory.
func (s *Server) DataDir() string { return s.dir }

// Run works the queue (submissions, builds, deletions) until ctx is
// canceled; builds running then stop and are reported as interrupted.
func (s *Server) Run(ctx context.Context) error { return s.queue.Run(ctx) }

// Close releases the database and the data directory. Stop Run first.
func (s *Server) Close() {
	if s.store != nil {
		s.store.Close()
	}
	if s.unlock != nil {
		s.unlock()
	}
}

// lockDataDir takes the data directory for this process: SQLite and the
// queue's crash recovery assume one server per directory.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another goldsmith serve is using %s (%v)", dir, err)
	}
	_ = f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
