package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/arm"
	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/console"
	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/runner"
	"github.com/goldsmith-dev/goldsmith/server"
	"github.com/goldsmith-dev/goldsmith/store"
)

type serveFlags struct {
	listen     string
	dataDir    string
	database   string
	workers    int
	tlsCert    string
	tlsKey     string
	selfSigned bool
	config     string
	logLevel   string
	accel      string
	vmNetwork  string
	maxISOGiB  int64
	tlsNames   []string
	// executor, when set, runs the builds instead of the build engine: only
	// tests set it (the stand-in, internal/standin), there is no flag.
	executor runner.Executor
	// builderDir, when set, is where the build engine keeps its platform
	// image catalog and caches instead of the data directory: only tests
	// set it, to share images built once per machine.
	builderDir string
	// queueLease, when set, is the job queue's lease (tests).
	queueLease time.Duration
}

// serveConfig is the optional config file (default DATA_DIR/config.json).
type serveConfig struct {
	// Tokens are accepted bearer tokens (GOLDSMITH_TOKEN adds more).
	Tokens []string `json:"tokens"`
	// Regions served, each with its blob root (default DATA_DIR/regions/NAME);
	// none: blob.DefaultRegionNames.
	Regions []blob.Region `json:"regions"`
	// Staging is the bucket of the staging store (files templates
	// reference, VHD outputs); default: beside the first bucket region's
	// blobs, else DATA_DIR/staging/.blobs (see blob.StagingS3).
	Staging *blob.S3Config `json:"staging"`
	// Tenant is the tenant id of the token endpoint (default
	// identity.DefaultTenant).
	Tenant string `json:"tenant"`
	// TLSNames are host names and IP addresses the self-signed certificate
	// is also made for (--tls-name adds more).
	TLSNames []string `json:"tlsNames"`
}

// stores opens the regions' stores and the staging store (nil: the local
// default), as every node of a site (serve, worker) must see them.
func (c serveConfig) stores(ctx context.Context, dir string) (*blob.Regions, blob.Store, error) {
	regions, err := blob.OpenRegions(ctx, filepath.Join(dir, "regions"), c.Regions)
	if err != nil {
		return nil, nil, err
	}
	sc := blob.StagingS3(c.Staging, c.Regions)
	if sc == nil {
		return regions, nil, nil
	}
	staging, err := blob.NewS3(ctx, *sc, os.Getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("staging store: %w", err)
	}
	return regions, staging, nil
}

// readServeConfig reads the config file; a missing default file is no config.
func readServeConfig(dir, configPath string) (serveConfig, error) {
	var c serveConfig
	explicit := configPath != ""
	if !explicit {
		configPath = filepath.Join(dir, "config.json")
	}
	data, err := os.ReadFile(configPath)
	if os.IsNotExist(err) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("read config %s: %w", configPath, err)
	}
	return c, nil
}

func newServeCommand(h nodeHooks) *cobra.Command {
	f := serveFlags{executor: h.executor, builderDir: h.builderDir, queueLease: h.queueLease}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the AIB-compatible ARM API and run builds",
		Long: `Serve answers Azure VM Image Builder's ARM REST API (imageTemplates at every
api-version, with resource groups, Microsoft.Compute images, galleries, image
definitions and versions, and user-assigned identities around them), keeps its
state in SQLite under --data-dir (or in PostgreSQL with --database
postgres://...) and runs builds with --workers in-process workers. Official Azure SDKs and the az CLI work against it when pointed at
its URL. With --workers 0 (PostgreSQL only) it is an API-only node: it runs no
jobs, and "goldsmith worker" processes on the same database build (see
docs/FLEET.md); several such replicas may serve one database.

Every request needs "Authorization: Bearer TOKEN": a token the token endpoint
(POST /adfs/oauth2/token, client_credentials) issued to a service principal
(az login --service-principal), or a static token. The first service
principal is made and printed at first start; "goldsmith principal" makes
more. Static tokens come from GOLDSMITH_TOKEN (comma separated) and the config
file's "tokens"; when none is configured, one is generated at first start,
printed, and kept in DATA_DIR/token.

A web console is served at / (pages under /console/): sign in with a static
token or a service principal's client id and secret.

With --tls-self-signed, goldsmith makes its own certificate authority
(DATA_DIR/tls/ca.crt: point REQUESTS_CA_BUNDLE at it, or install it in the
system store) and a server certificate for 127.0.0.1, ::1, localhost, this
host's name and every --tls-name.

After a crash (even kill -9) the next start reports runs that were in
progress as Failed with a message saying they were interrupted, stops the
processes they left and removes their scratch files. On PostgreSQL, where
other servers share the database, a run whose server stopped heartbeating
is reported so by another server within about 70 seconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "directory for state, staging groups, logs and artifacts")
	fl.StringVar(&f.database, "database", os.Getenv("GOLDSMITH_DATABASE"), "PostgreSQL URL (postgres://user:pass@host/db) shared by several servers; default $GOLDSMITH_DATABASE, or SQLite in the data directory when empty")
	fl.IntVar(&f.workers, "workers", 1, "builds run at the same time; 0: an API-only node (PostgreSQL, with goldsmith worker processes)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	fl.BoolVar(&f.selfSigned, "tls-self-signed", false, "serve HTTPS with a certificate from goldsmith's own CA (DATA_DIR/tls/ca.crt, for REQUESTS_CA_BUNDLE)")
	fl.StringSliceVar(&f.tlsNames, "tls-name", nil, "another host name or IP address for the --tls-self-signed certificate (repeatable)")
	fl.StringVar(&f.config, "config", "", "config file (default DATA_DIR/config.json)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.accel, "accel", "", "force the build VMs' accelerator: kvm or tcg (default: probe)")
	fl.StringVar(&f.vmNetwork, "vm-network", string(machine.NetworkIsolated), vmNetworkUsage)
	fl.Int64Var(&f.maxISOGiB, "max-iso-size", download.DefaultMaxISOBytes>>30, "largest ISO source downloaded at submission, in GiB (scripts and Files keep AIB's caps)")
	return cmd
}

func runServe(ctx context.Context, stdout, stderr io.Writer, f serveFlags) error {
	if f.workers < 0 {
		return usageError("--workers must be at least 0 (0: an API-only node)")
	}
	if f.workers == 0 && !store.IsPostgres(f.database) {
		return usageError("--workers 0 needs --database postgres://... that workers (goldsmith worker) share")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	if f.selfSigned && f.tlsCert != "" {
		return usageError("--tls-self-signed and --tls-cert exclude each other")
	}
	n, err := openNode(ctx, stdout, stderr, nodeFlags{dataDir: f.dataDir, database: f.database, config: f.config, logLevel: f.logLevel,
		accel: f.accel, vmNetwork: f.vmNetwork, maxISOGiB: f.maxISOGiB, workers: f.workers, executor: f.executor, builderDir: f.builderDir, queueLease: f.queueLease, api: true})
	if err != nil {
		return err
	}
	srv, cfg, conf, dir, log := n.srv, n.cfg, n.conf, n.dir, n.log
	defer srv.Close()
	p, secret, made, err := srv.Authority().Directory().CreateFirst(ctx, "goldsmith-admin")
	if err != nil {
		return err
	}
	if made {
		fmt.Fprintf(stdout, "Created the first service principal %q; its secret is shown only now (goldsmith keeps a hash):\n\n"+
			"    client id: %s\n    secret:    %s\n    tenant:    %s\n\n", p.Name, p.ClientID, secret, srv.Authority().Tenant())
	}
	api, err := arm.New(arm.Options{Service: srv.Service(), Auth: srv.Authority(), Logger: log.With("component", "api")})
	if err != nil {
		return err
	}
	cat, _ := cfg.Platform.(console.Catalog)
	if cat == nil { // the stand-in executor: the catalog is only listed
		if cat, err = catalog.Open(dir, catalog.WithLogger(log.With("component", "catalog"))); err != nil {
			return err
		}
	}
	web, err := console.New(console.Options{Service: srv.Service(), Store: srv.Store(), Auth: srv.Authority(), Catalog: cat,
		Logger: log.With("component", "console")})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	scheme := "http"
	if f.selfSigned {
		names := append(append([]string{}, conf.TLSNames...), f.tlsNames...)
		if f.tlsCert, f.tlsKey, err = selfSignedCert(filepath.Join(dir, "tls"), names, stdout); err != nil {
			ln.Close()
			return err
		}
	}
	hs := &http.Server{Handler: web.Handler(api), ReadHeaderTimeout: 30 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}

	qctx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	queueDone := make(chan error, 1)
	go func() { queueDone <- srv.Run(qctx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- hs.Serve(ln) }()
	db := "SQLite"
	if store.IsPostgres(f.database) {
		db = "PostgreSQL"
	}
	if f.workers == 0 {
		fmt.Fprintf(stdout, "goldsmith serving %s://%s (data %s, %s, API only: goldsmith worker runs the builds)\n", scheme, ln.Addr(), dir, db)
	} else {
		fmt.Fprintf(stdout, "goldsmith serving %s://%s (data %s, %s, %d workers)\n", scheme, ln.Addr(), dir, db, f.workers)
	}

	select {
	case <-ctx.Done():
	case err = <-serveDone:
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	stopQueue() // running builds stop; they are reported as interrupted
	if qerr := <-queueDone; qerr != nil && err == nil {
		err = qerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// serveTokens gathers the accepted tokens: GOLDSMITH_TOKEN, the config file,
// else the generated DATA_DIR/token (made and printed at first start).
func serveTokens(dir string, conf serveConfig, out io.Writer) ([]string, error) {
	var tokens []string
	for _, t := range append(strings.Split(os.Getenv("GOLDSMITH_TOKEN"), ","), conf.Tokens...) {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) > 0 {
		return tokens, nil
	}
	tokenFile := filepath.Join(dir, "token")
	if data, err := os.ReadFile(tokenFile); err == nil && strings.TrimSpace(string(data)) != "" {
		fmt.Fprintf(out, "Using the API token in %s\n", tokenFile)
		return []string{strings.TrimSpace(string(data))}, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tok := hex.EncodeToString(b)
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save the generated token: %w", err)
	}
	fmt.Fprintf(out, "Generated an API token (kept in %s):\n\n    export GOLDSMITH_TOKEN=%s\n\n", tokenFile, tok)
	return []string{tok}, nil
}

// nodeFlags are what serve and worker share: where the node keeps its
// state and how it builds.
type nodeFlags struct {
	dataDir, database, config, logLevel, accel string
	vmNetwork                                  string
	maxISOGiB                                  int64
	workers                                    int
	executor                                   runner.Executor
	builderDir                                 string
	queueLease                                 time.Duration
	api                                        bool // the node serves the API: it needs tokens
}

// node is an opened server (package server) with what it was opened from.
type node struct {
	srv  *server.Server
	cfg  server.Config
	conf serveConfig
	dir  string
	log  *slog.Logger
}

// openNode assembles the server serve and worker run on: its data
// directory, config file (regions), database and, when it runs jobs, the
// build engine.
func openNode(ctx context.Context, stdout, stderr io.Writer, f nodeFlags) (*node, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, usageError("--log-level: %v", err)
	}
	if f.maxISOGiB < 1 {
		return nil, usageError("--max-iso-size must be at least 1 (GiB)")
	}
	if f.accel != "" && f.accel != "kvm" && f.accel != "tcg" {
		return nil, usageError("--accel must be kvm or tcg, not %q", f.accel)
	}
	if f.vmNetwork == "" {
		f.vmNetwork = string(machine.NetworkIsolated)
	}
	if err := checkVMNetwork(f.vmNetwork); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	dir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	conf, err := readServeConfig(dir, f.config)
	if err != nil {
		return nil, err
	}
	regions, staging, err := conf.stores(ctx, dir)
	if err != nil {
		return nil, err
	}
	cfg := server.Config{DataDir: dir, Database: f.database, Workers: f.workers, APIOnly: f.workers == 0, Executor: f.executor, Regions: regions,
		Staging: staging, MaxISOBytes: f.maxISOGiB << 30, Tenant: conf.Tenant, Logger: log, QueueLease: f.queueLease}
	if f.executor == nil && f.workers > 0 {
		builderDir := dir
		if f.builderDir != "" {
			builderDir = f.builderDir
		}
		if cfg.Builder, cfg.Platform, err = newBuilder(builderDir, log.With("component", "build"), f.accel, f.vmNetwork); err != nil {
			return nil, err
		}
	}
	if f.api {
		if cfg.StaticTokens, err = serveTokens(dir, conf, stdout); err != nil {
			return nil, err
		}
	}
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &node{srv: srv, cfg: cfg, conf: conf, dir: dir, log: log}, nil
}
