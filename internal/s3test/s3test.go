// Package s3test runs, for tests, a real S3-compatible server: versitygw
// (github.com/versity/versitygw, installed by scripts/setup with go install)
// serving a temporary directory on 127.0.0.1 on a free port. A test package
// starts one in TestMain (Start) and every test gets a bucket of its own
// (Server.Bucket).
//
// Where versitygw is missing the tests that need it are skipped, except
// when GOLDSMITH_REQUIRE_CORPUS or CI is set (as in CI): then they fail.
package s3test

import (
	"context"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/goldsmith-dev/goldsmith/blob"
)

// The server's credentials (it exists only for the test).
const (
	AccessKey = "goldsmith-test"
	SecretKey = "goldsmith-test-secret"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	dir      string
	cmd      *exec.Cmd
	n        atomic.Int64
	missing  error
}

// Required reports whether versitygw must be there: in CI.
func Required() bool {
	return os.Getenv("GOLDSMITH_REQUIRE_CORPUS") != "" || os.Getenv("CI") != ""
}

// Binary finds versitygw on PATH or in Go's bin directory (GOBIN, else
// GOPATH/bin), where go install puts it.
func Binary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw is not installed (not on PATH nor in %s); scripts/setup installs it with go install github.com/versity/versitygw/cmd/versitygw@v1.8.0", strings.Join(dirs, ", "))
}

// Start starts a server. When versitygw is missing it returns a Server
// whose Bucket skips (or fails, when Required) and a nil error. Stop it at
// the end of TestMain.
func Start() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return &Server{missing: err}, nil
	}
	dir, err := os.MkdirTemp("", "goldsmith-s3test-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	// A free port: another process may take it first; then the server
	// fails to start and so does the test, loudly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Stop()
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		s.Stop()
		return nil, err
	}
	defer log.Close()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		s.Stop()
		return nil, err
	}
	s.cmd = exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr, "posix", data)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	s.Endpoint = "http://" + addr
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(log.Name())
			s.cmd = nil
			s.Stop()
			return nil, fmt.Errorf("versitygw exited: %v: %s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw did not listen on %s within 20s", addr)
		}
	}
	return s, nil
}

// Stop ends the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		time.Sleep(50 * time.Millisecond) // let Wait reap it
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// Client is an S3 client for the server.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Bucket makes a new empty bucket and returns a store config for it, with
// credentials in the environment variables the config names. It skips the
// test (fails when Required) when versitygw is missing.
func (s *Server) Bucket(t testing.TB) blob.S3Config {
	t.Helper()
	if s.missing != nil {
		if Required() {
			t.Fatalf("versitygw is required here (GOLDSMITH_REQUIRE_CORPUS or CI is set): %v", s.missing)
		}
		t.Skipf("skipping: %v", s.missing)
	}
	name := fmt.Sprintf("goldsmith-%d", s.n.Add(1))
	if err := s.Client(t).MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	t.Setenv("GOLDSMITH_TEST_S3_ACCESS", AccessKey)
	t.Setenv("GOLDSMITH_TEST_S3_SECRET", SecretKey)
	return blob.S3Config{Endpoint: s.Endpoint, Bucket: name, Region: "us-east-1", PathStyle: true,
		AccessKeyEnv: "GOLDSMITH_TEST_S3_ACCESS", SecretKeyEnv: "GOLDSMITH_TEST_S3_SECRET", PartSizeMiB: 5}
}

// Main is a test package's TestMain: it starts a server, hands it to set,
// runs the tests and stops it.
func Main(m *testing.M, set func(*Server)) {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3test:", err)
		os.Exit(1)
	}
	set(s)
	code := m.Run()
	s.Stop()
	os.Exit(code)
}
