package arm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/internal/pgtest"
	"github.com/goldsmith-dev/goldsmith/machine"
)

// cluster is the PostgreSQL cluster of the tests that run on both engines.
var cluster *pgtest.Cluster

// TestMain lets this test binary act as a goldsmith server process for
// the crash tests (see serveChild), and otherwise starts a PostgreSQL
// cluster for the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv("GOLDSMITH_TEST_SERVE_DIR"); dir != "" {
		if err := serveChild(dir, os.Getenv("GOLDSMITH_TEST_DATABASE")); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		return
	}
	pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c })
}

// serveChild runs a server on dir and database until killed, writing its
// URL to dir/url.
func serveChild(dir, database string) error {
	d, err := time.ParseDuration(os.Getenv("GOLDSMITH_TEST_BUILD_TIME"))
	if err != nil {
		return err
	}
	_, api, _, err := openSite(context.Background(), siteOptions{DataDir: dir, Database: database, Executor: standIn(d)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "url.tmp"), []byte("http://"+ln.Addr().String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, "url.tmp"), filepath.Join(dir, "url")); err != nil {
		return err
	}
	return http.Serve(ln, api)
}

// startChild starts a server process on dir and database and waits until
// it answers.
func startChild(t *testing.T, dir, database string) (*exec.Cmd, *site) {
	t.Helper()
	_ = os.Remove(filepath.Join(dir, "url"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOLDSMITH_TEST_SERVE_DIR="+dir, "GOLDSMITH_TEST_DATABASE="+database, "GOLDSMITH_TEST_BUILD_TIME=4s")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := &site{DataDir: dir}
	waitFor(t, "the server to start", 20*time.Second, func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "url"))
		s.URL = string(data)
		return err == nil
	})
	return cmd, s
}

func processGone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// A zombie waiting for its (new) parent to reap it is dead too.
	fields := strings.Fields(string(data[strings.LastIndex(string(data), ")")+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

// TestKillDuringRun kills the server (SIGKILL) while a build runs, starts
// it again, and checks that the run is reported Failed as interrupted, its
// build process and scratch files are gone, everything made before is
// intact, and the template runs again; on SQLite and on PostgreSQL.
func TestKillDuringRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	for _, b := range cluster.Backends() {
		t.Run(b.Name, func(t *testing.T) { killDuringRun(t, b.Database(t)) })
	}
}

func killDuringRun(t *testing.T, database string) {
	dir := t.TempDir()
	child, s := startChild(t, dir, database)
	putGroup(t, s, "rg1")
	gal := rgPath("rg1") + "/providers/Microsoft.Compute/galleries/gal"
	def := gal + "/images/def"
	s.call(t, "PUT", gal, "2024-03-03", map[string]any{"location": "westus2"})
	s.call(t, "PUT", def, "2024-03-03", map[string]any{"location": "westus2", "properties": map[string]any{"osType": "Linux", "osState": "Generalized",
		"identifier": map[string]any{"publisher": "p", "offer": "o", "sku": "s"}}})

	// A finished run before the crash: an image and a gallery version.
	done := linuxTemplate("rg1", inline("echo before"))
	props := done["properties"].(map[string]any)
	props["distribute"] = append(props["distribute"].([]any), map[string]any{"type": "SharedImage", "runOutputName": "sig", "galleryImageId": def,
		"targetRegions": []any{map[string]any{"name": "westus2"}}})
	submit(t, s, "rg1", "done", v24, done)
	if op := pollOp(t, s, run(t, s, "rg1", "done")); str(op, "status") != "Succeeded" {
		t.Fatalf("first run: %v", op)
	}
	imageURL := rgPath("rg1") + "/providers/Microsoft.Compute/images/out"
	artifacts := regionBlobs(dir)
	sums := map[string]string{}
	for _, a := range artifacts {
		data, _ := os.ReadFile(a)
		sum := sha256.Sum256(data)
		sums[a] = hex.EncodeToString(sum[:])
	}
	if len(artifacts) == 0 {
		t.Fatalf("no disks in the region stores before the crash")
	}

	// A long run, killed while customizing.
	var cust []map[string]any
	for i := range 20 {
		cust = append(cust, inline(fmt.Sprintf("echo step %d", i)))
	}
	long := linuxTemplate("rg1", cust...)
	long["properties"].(map[string]any)["distribute"] = []any{map[string]any{"type": "VHD", "runOutputName": "vhd"}}
	submit(t, s, "rg1", "long", v24, long)
	runOp := run(t, s, "rg1", "long")
	waitFor(t, "customizing", 20*time.Second, func() bool {
		_, got := s.call(t, "GET", tmplPath("rg1", "long"), v24, nil)
		return str(got, "properties", "lastRunStatus", "runSubState") == "Customizing"
	})
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "work", "*", "vm.pid"))
	if len(pidFiles) != 1 {
		t.Fatalf("pid files %v", pidFiles)
	}
	vmPid, err := machine.ReadPIDFile(pidFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if processGone(vmPid) {
		t.Fatalf("the build process %d died with the server; the test would prove nothing", vmPid)
	}

	_, s = startChild(t, dir, database)
	_, got := s.call(t, "GET", tmplPath("rg1", "long"), v24, nil)
	lrs, _ := dig(got, "properties", "lastRunStatus").(map[string]any)
	if lrs["runState"] != "Failed" || !strings.Contains(lrs["message"].(string), "interrupted") || !strings.Contains(lrs["message"].(string), "Customizing") {
		t.Errorf("lastRunStatus after restart: %v", lrs)
	}
	if op := pollOp(t, s, strings.Replace(runOp, strings.Split(runOp, "/subscriptions")[0], s.URL, 1)); str(op, "status") != "Failed" {
		t.Errorf("run operation after restart: %v", op)
	}
	waitFor(t, "the orphaned build process to be stopped", 5*time.Second, func() bool { return processGone(vmPid) })
	if left, _ := filepath.Glob(filepath.Join(dir, "work", "*")); len(left) != 0 {
		t.Errorf("scratch files left: %v", left)
	}
	logText := string(download(t, s, s.URL+"/goldsmith/v1"+tmplPath("rg1", "long")+"/runs/latest/log"))
	if !strings.Contains(logText, "interrupted") {
		t.Errorf("the log does not say the run was interrupted:\n%s", logText)
	}

	// Everything made before the crash is intact.
	for _, p := range []string{rgPath("rg1"), tmplPath("rg1", "done"), tmplPath("rg1", "long"), imageURL, gal, def} {
		v := v24
		switch {
		case strings.Contains(p, "galleries"):
			v = "2024-03-03"
		case strings.Contains(p, "Compute/images"):
			v = "2024-11-01"
		case !strings.Contains(p, "providers"):
			v = "2021-04-01"
		}
		if resp, b := s.call(t, "GET", p, v, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s after restart: %s %v", p, resp.Status, b)
		}
	}
	_, vl := s.call(t, "GET", def+"/versions", "2024-03-03", nil)
	if vals, _ := vl["value"].([]any); len(vals) != 1 {
		t.Errorf("gallery versions after restart: %v", vl)
	}
	for a, sum := range sums {
		data, err := os.ReadFile(a)
		got := sha256.Sum256(data)
		if err != nil || hex.EncodeToString(got[:]) != sum {
			t.Errorf("artifact %s changed or vanished: %v", a, err)
		}
	}
	// And the interrupted template runs again.
	if op := pollOp(t, s, run(t, s, "rg1", "long")); str(op, "status") != "Succeeded" {
		t.Errorf("run after restart: %v", op)
	}
}

// TestWorkerDiesOnSharedDatabase runs two servers on one PostgreSQL
// database, each with its own data directory, and kills (SIGKILL) the one
// building a run: the other reports the run Failed as interrupted, naming
// the dead worker, once its heartbeats stop (the tests' lease is 5 s);
// when the killed server starts again, the build process it left is
// stopped and its scratch files removed.
func TestWorkerDiesOnSharedDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	database := cluster.Database(t)
	dirs := []string{t.TempDir(), t.TempDir()}
	children := make([]*exec.Cmd, 2)
	sites := make([]*site, 2)
	for i, dir := range dirs {
		children[i], sites[i] = startChild(t, dir, database)
	}
	putGroup(t, sites[0], "rg1")
	var cust []map[string]any
	for i := range 20 {
		cust = append(cust, inline(fmt.Sprintf("echo step %d", i)))
	}
	long := linuxTemplate("rg1", cust...)
	long["properties"].(map[string]any)["distribute"] = []any{map[string]any{"type": "VHD", "runOutputName": "vhd"}}
	submit(t, sites[0], "rg1", "long", v24, long)
	run(t, sites[1], "rg1", "long")
	waitFor(t, "customizing", 20*time.Second, func() bool {
		_, got := sites[0].call(t, "GET", tmplPath("rg1", "long"), v24, nil)
		return str(got, "properties", "lastRunStatus", "runSubState") == "Customizing"
	})
	// The server building it is the one with the build's pid file.
	builder := -1
	var pidFile string
	for i, dir := range dirs {
		if files, _ := filepath.Glob(filepath.Join(dir, "work", "*", "vm.pid")); len(files) == 1 {
			builder, pidFile = i, files[0]
		}
	}
	if builder < 0 {
		t.Fatal("no server has the build's pid file")
	}
	other := sites[1-builder]
	vmPid, err := machine.ReadPIDFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := children[builder].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = children[builder].Wait()
	killed := time.Now()

	var lrs map[string]any
	waitFor(t, "the other server to report the run interrupted", 30*time.Second, func() bool {
		_, got := other.call(t, "GET", tmplPath("rg1", "long"), v24, nil)
		lrs, _ = dig(got, "properties", "lastRunStatus").(map[string]any)
		return lrs["runState"] == "Failed"
	})
	took := time.Since(killed)
	msg, _ := lrs["message"].(string)
	// The worker's name is host:pid:random.
	worker := fmt.Sprintf(":%d:", children[builder].Process.Pid)
	if !strings.Contains(msg, "interrupted") || !strings.Contains(msg, worker) || !strings.Contains(msg, "Customizing") {
		t.Errorf("lastRunStatus: %v, want interrupted during Customizing, naming the worker (pid %d)", lrs, children[builder].Process.Pid)
	}
	// Lease 5 s, heartbeat every 5/6 s: seen within about 6 s.
	if took > 15*time.Second {
		t.Errorf("the dead worker's run was reported after %v, want within about 6 s", took)
	}
	t.Logf("the run of the killed server was reported interrupted %v after the kill", took.Round(100*time.Millisecond))

	startChild(t, dirs[builder], database)
	waitFor(t, "the orphaned build process to be stopped", 10*time.Second, func() bool { return processGone(vmPid) })
	if left, _ := filepath.Glob(filepath.Join(dirs[builder], "work", "*")); len(left) != 0 {
		t.Errorf("scratch files left: %v", left)
	}
	// And the template runs again, on either server.
	if op := pollOp(t, other, run(t, other, "rg1", "long")); str(op, "status") != "Succeeded" {
		t.Errorf("run after the crash: %v", op)
	}
}
