package arm

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/queue"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
)

const testToken = "test-token-0123456789"

// site is a goldsmith server assembled as `goldsmith serve` assembles it.
type site struct {
	URL     string
	DataDir string
	Svc     *resource.Service
	Store   *store.Store
	close   func()
}

type siteOptions struct {
	DataDir  string
	Executor resource.Executor
	PageSize int
	Workers  int
	Logger   *slog.Logger
	// HTTPClient downloads what templates reference at submission.
	HTTPClient *http.Client
}

// openSite assembles store, queue, service and API on dataDir; serve
// decides how the API is reached.
func openSite(ctx context.Context, o siteOptions) (*site, http.Handler, func(), error) {
	if o.Executor == nil {
		o.Executor = resource.StandInExecutor{Duration: 300 * time.Millisecond}
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := store.Open(ctx, filepath.Join(o.DataDir, "goldsmith.db"))
	if err != nil {
		return nil, nil, nil, err
	}
	q, err := queue.New(ctx, st, queue.Options{Workers: o.Workers, Exclusive: true, Poll: 50 * time.Millisecond, Lease: 5 * time.Second, Logger: o.Logger})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	svc, err := resource.New(resource.Options{Store: st, Queue: q, Executor: o.Executor, DataDir: o.DataDir, Logger: o.Logger, HTTPClient: o.HTTPClient})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	// Recover before answering: a run a dead server left must read as interrupted.
	if err := q.Recover(ctx, true); err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	if err := svc.Sweep(ctx); err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	api, err := New(Options{Service: svc, Tokens: []string{"other-token", testToken}, PageSize: o.PageSize, RetryAfter: time.Second, Logger: o.Logger})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	qctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = q.Run(qctx); close(done) }()
	stop := func() { cancel(); <-done; st.Close() }
	return &site{DataDir: o.DataDir, Svc: svc, Store: st}, api, stop, nil
}

// startSite runs a site behind an httptest server on 127.0.0.1.
func startSite(t *testing.T, o siteOptions) *site {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	s, api, stop, err := openSite(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	s.URL = srv.URL
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
	resp, err := http.DefaultClient.Do(req)
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
