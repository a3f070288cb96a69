package arm

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/internal/standin"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/runner"
	"github.com/goldsmith-dev/goldsmith/server"
	"github.com/goldsmith-dev/goldsmith/source"
	"github.com/goldsmith-dev/goldsmith/store"
)

const testToken = "test-token-0123456789"

// site is a goldsmith server, assembled by package server as `goldsmith
// serve` assembles it, with the API on top.
type site struct {
	URL     string
	DataDir string
	Svc     *resource.Service
	Store   *store.Store
	Auth    *identity.Authority
	// Client reaches URL (it trusts the test certificate with TLS).
	Client *http.Client
	close  func()
}

type siteOptions struct {
	DataDir string
	// Database is the server's database (see server.Config): "" for
	// SQLite in DataDir, or a PostgreSQL URL.
	Database string
	// Executor runs the builds; default the stand-in (internal/standin),
	// unless Builder is set: then the build engine runs them, resolving
	// platform images with Platform.
	Executor runner.Executor
	Builder  *build.Builder
	Platform source.Platform
	PageSize int
	Workers  int
	Logger   *slog.Logger
	// HTTPClient downloads what templates reference at submission.
	HTTPClient *http.Client
	// TLS serves the API over https (httptest's certificate).
	TLS bool
	// Regions are the served regions and their stores (nil: the default).
	Regions *blob.Regions
	// Staging is the staging store (nil: local in DataDir).
	Staging blob.Store
}

// openSite opens a server on o.DataDir, starts its queue and makes its API;
// the caller decides how the API is reached, and calls stop.
func openSite(ctx context.Context, o siteOptions) (*site, http.Handler, func(), error) {
	if o.Executor == nil && o.Builder == nil {
		o.Executor = standIn(300 * time.Millisecond)
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := server.Open(ctx, server.Config{DataDir: o.DataDir, Database: o.Database, Workers: o.Workers, Executor: o.Executor,
		Builder: o.Builder, Platform: o.Platform, Logger: o.Logger, HTTPClient: o.HTTPClient, Regions: o.Regions, Staging: o.Staging,
		StaticTokens: []string{"other-token", testToken}, QueuePoll: 50 * time.Millisecond, QueueLease: 5 * time.Second})
	if err != nil {
		return nil, nil, nil, err
	}
	api, err := New(Options{Service: srv.Service(), Auth: srv.Authority(), PageSize: o.PageSize, RetryAfter: time.Second, Logger: o.Logger})
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	qctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(qctx); close(done) }()
	stop := func() { cancel(); <-done; srv.Close() }
	return &site{DataDir: srv.DataDir(), Svc: srv.Service(), Store: srv.Store(), Auth: srv.Authority()}, api, stop, nil
}

// standIn is the stand-in executor: no VM boots (see internal/standin).
func standIn(d time.Duration) standin.Executor { return standin.Executor{Duration: d} }

// startSite runs a site behind an httptest server on 127.0.0.1.
func startSite(t *testing.T, o siteOptions) *site {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	// GOLDSMITH_TEST_BACKEND=postgres runs the API tests on PostgreSQL
	// (scripts/test does, after the SQLite run).
	if o.Database == "" && os.Getenv("GOLDSMITH_TEST_BACKEND") == "postgres" {
		o.Database = cluster.Database(t)
	}
	s, api, stop, err := openSite(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api)
	if o.TLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	s.URL, s.Client = srv.URL, srv.Client()
	s.close = func() { srv.Close(); stop() }
	t.Cleanup(s.close)
	return s
}

// call makes an authenticated request and decodes a JSON answer.
func (s *site) call(t *testing.T, method, path, apiVersion string, body any) (*http.Response, map[string]any) {
	t.Helper()
	return s.callWith(t, method, path, apiVersion, body, testToken)
}

func (s *site) callWith(t *testing.T, method, path, apiVersion string, body any, token string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(data))
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = s.URL + path
	}
	if apiVersion != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "api-version=" + apiVersion
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(data) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, data)
		}
	}
	if resp.Header.Get("x-ms-request-id") == "" {
		t.Errorf("%s %s: no x-ms-request-id header", method, path)
	}
	return resp, m
}

// client is the site's HTTP client (a site another test assembled may have none).
func (s *site) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return http.DefaultClient
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dig reads a nested value of a decoded JSON object.
func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func str(m map[string]any, keys ...string) string {
	s, _ := dig(m, keys...).(string)
	return s
}

// fileServer serves scripts for templates to download.
func fileServer(t *testing.T, files map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
