package customize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/template"
)

// files is an httptest server on 127.0.0.1 serving fixed bodies and counting hits.
type files struct {
	*httptest.Server
	hits atomic.Int32
	body map[string][]byte
}

func newFiles(t *testing.T, body map[string][]byte) *files {
	f := &files{body: body}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		b, ok := f.body[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/chunked/") {
			w.(http.Flusher).Flush() // no Content-Length
		}
		w.Write(b)
	}))
	t.Cleanup(f.Close)
	return f
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// closedURL is an http URL on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/script.sh"
}

func TestFetch(t *testing.T) {
	script := []byte("#!/bin/sh\necho hi\n")
	big := bytes.Repeat([]byte("x"), 1000)
	srv := newFiles(t, map[string][]byte{"/s.sh": script, "/big": big, "/chunked/big": big})
	want := digest(script)
	tests := []struct {
		name, uri, sum string
		limit          int64
		errHas         []string
		as             any
	}{
		{name: "ok", uri: srv.URL + "/s.sh", sum: want, limit: 100},
		{name: "upper-case digest", uri: srv.URL + "/s.sh", sum: strings.ToUpper(want), limit: 100},
		{name: "no digest", uri: srv.URL + "/s.sh", limit: 100},
		{name: "mismatch", uri: srv.URL + "/s.sh", sum: strings.Repeat("ab", 32), limit: 100,
			errHas: []string{srv.URL + "/s.sh", strings.Repeat("ab", 32), want}, as: new(*download.ChecksumError)},
		{name: "not found", uri: srv.URL + "/nope", limit: 100, errHas: []string{srv.URL + "/nope", "404"}},
		{name: "unreachable", uri: closedURL(t), limit: 100, errHas: []string{"connection refused"}},
		{name: "over limit", uri: srv.URL + "/big", limit: 999, errHas: []string{"1000 bytes", "999"}, as: new(*download.TooLargeError)},
		{name: "over limit, no length", uri: srv.URL + "/chunked/big", limit: 999, errHas: []string{"more than the 999"}, as: new(*download.TooLargeError)},
		{name: "scheme", uri: "file:///etc/passwd", limit: 100, errHas: []string{"only http and https"}},
		{name: "bad digest", uri: srv.URL + "/s.sh", sum: "abc", limit: 100, errHas: []string{"not 64 hex"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &Fetcher{Limits: download.Limits{Script: tc.limit}}
			a, err := f.Fetch(context.Background(), tc.uri, tc.sum, download.Script)
			if len(tc.errHas) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if a.SHA256 != want || !bytes.Equal(a.Data, script) {
					t.Fatalf("got %s", a.SHA256)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("error %T is not %T", err, tc.as)
			}
		})
	}
}

func TestFetchCache(t *testing.T) {
	script := []byte("echo cached\n")
	srv := newFiles(t, map[string][]byte{"/s.sh": script})
	dir := t.TempDir()
	ctx := context.Background()
	f := &Fetcher{CacheDir: dir, Limits: download.Limits{Script: 100}}
	for range 3 {
		if _, err := f.Fetch(ctx, srv.URL+"/s.sh", digest(script), download.Script); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	// A new Fetcher on the same directory does not fetch again either.
	if _, err := (&Fetcher{CacheDir: dir}).Fetch(ctx, srv.URL+"/s.sh", digest(script), download.Script); err != nil {
		t.Fatal(err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d requests after a new Fetcher, want 1", n)
	}
	// A damaged cache entry is fetched again.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.WriteFile(filepath.Join(dir, e.Name()), []byte("tampered"), 0o644)
	}
	a, err := (&Fetcher{CacheDir: dir}).Fetch(ctx, srv.URL+"/s.sh", digest(script), download.Script)
	if err != nil || string(a.Data) != string(script) || srv.hits.Load() != 2 {
		t.Fatalf("after tampering: %v %q hits %d", err, a, srv.hits.Load())
	}
}

// syncBuf is a log writer safe for the runner's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func shell(name string, inline ...string) template.Customizer {
	return template.Customizer{Type: template.CustomizeShell, Name: name, Inline: inline}
}

func TestRun(t *testing.T) {
	okScript := []byte("#!/bin/bash\nset -eu\necho \"from $0 as $(id -u)\"\necho ran >>/var/ran-ok\n")
	noShebang := []byte("echo \"shell: ${BASH_VERSION:-posix}\"\necho ran >>/var/ran-plain\n")
	exit3 := []byte("#!/bin/sh\nfor i in 1 2 3 4 5 6 7; do echo line $i; done\necho oops >&2\nexit 3\n")
	marker := []byte("#!/bin/sh\ntouch /var/should-not-exist\n")
	crlf := []byte("#!/bin/sh\r\necho hi\r\n")
	motd := []byte("welcome\n")
	huge := bytes.Repeat([]byte("z"), int(download.MaxFileBytes)+1)
	srv := newFiles(t, map[string][]byte{
		"/ok.sh": okScript, "/plain.sh": noShebang, "/exit3.sh": exit3, "/marker.sh": marker,
		"/crlf.sh": crlf, "/files/motd": motd, "/huge.bin": huge,
	})
	u := func(p string) string { return srv.URL + p }
	const pwshShim = "#!/bin/sh\n# pwsh stand-in: runs the .ps1 (plain shell lines) with sh\n" +
		"while [ $# -gt 1 ]; do shift; done\nexec sh \"$1\"\n"

	tests := []struct {
		name   string
		setup  func(*sandbox)
		cs     []template.Customizer
		errHas []string // empty: success
		is     error
		check  func(t *testing.T, s *sandbox, steps []Step, log string)
	}{
		{
			name: "script with checksum, inline, file",
			cs: []template.Customizer{
				{Type: template.CustomizeShell, Name: "setup-os", ScriptURI: u("/ok.sh"), SHA256Checksum: strings.ToUpper(digest(okScript))},
				{Type: template.CustomizeShell, ScriptURI: u("/plain.sh")},
				{Type: template.CustomizeFile, Name: "motd", SourceURI: u("/files/motd"), Destination: "/tmp/motd"},
				{Type: template.CustomizeFile, Name: "motd-dir", SourceURI: u("/files/motd?x=1"), Destination: "/tmp/"},
				shell("inline", "cp /tmp/motd /var/motd", "echo done"),
			},
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				for _, want := range []string{"[setup-os] from /tmp/goldsmith-1-", "[Shell-2] shell: posix", "[inline] done", "[motd] wrote 8 bytes"} {
					if !strings.Contains(log, want) {
						t.Errorf("log lacks %q", want)
					}
				}
				if s.read("/var/motd") != "welcome\n" || s.read("/var/ran-ok") != "ran\n" || s.read("/var/ran-plain") != "ran\n" {
					t.Error("steps did not do their work")
				}
				if st, err := os.Stat(s.path("/tmp/motd")); err != nil || st.Mode().Perm() != 0o644 {
					t.Errorf("motd: %v %v", st, err)
				}
				if !s.exists("/tmp/motd") || !s.exists("/tmp/motd") {
					t.Error("no /tmp/motd")
				}
				if steps[0].SHA256 != digest(okScript) || steps[2].SHA256 != digest(motd) || steps[4].SHA256 == "" {
					t.Errorf("digests: %+v", steps)
				}
				if steps[1].Name != "Shell-2" || steps[4].ExitCode != 0 || !steps[4].Done {
					t.Errorf("steps: %+v", steps)
				}
				if m, _ := filepath.Glob(s.path("/tmp/goldsmith-*")); len(m) != 0 {
					t.Errorf("scripts left behind: %v", m)
				}
			},
		},
		{
			name: "checksum mismatch runs nothing",
			cs: []template.Customizer{
				shell("first", "touch /var/first-ran"),
				{Type: template.CustomizeShell, Name: "bad-sum", ScriptURI: u("/marker.sh"), SHA256Checksum: strings.Repeat("0", 64)},
			},
			errHas: []string{`customizer 2/2 "bad-sum" (Shell)`, u("/marker.sh"), strings.Repeat("0", 64), digest(marker)},
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				if s.exists("/var/should-not-exist") || s.exists("/var/first-ran") {
					t.Error("something ran in the guest")
				}
				if s.calls != 0 {
					t.Errorf("%d guest calls", s.calls)
				}
			},
		},
		{
			name:   "unreachable URL",
			cs:     []template.Customizer{{Type: template.CustomizeShell, Name: "fetch", ScriptURI: closedURL(t)}},
			errHas: []string{`customizer 1/1 "fetch" (Shell) failed: download http://127.0.0.1:`, "connection refused"},
		},
		{
			name: "script exits 3",
			cs: []template.Customizer{
				shell("one", "true"),
				{Type: template.CustomizeShell, Name: "install-web", ScriptURI: u("/exit3.sh")},
				shell("three", "touch /var/three"),
			},
			errHas: []string{`customizer 2/3 "install-web" (Shell) failed with exit code 3: last output: `, "line 7"},
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				var se *StepError
				if !errors.As(steps[1].Err, &se) || se.ExitCode != 3 || se.Index != 2 || len(se.Tail) != 8 || !slices.Contains(se.Tail, "oops") {
					t.Errorf("step error %#v", steps[1].Err)
				}
				if len(steps) != 2 || s.exists("/var/three") {
					t.Error("ran past the failure")
				}
			},
		},
		{
			name:   "inline stops at the first failing line",
			cs:     []template.Customizer{shell("inline", "echo one", "false", "echo two", "touch /var/two")},
			errHas: []string{`customizer 1/1 "inline" (Shell) failed with exit code 1: last output: one`},
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				if s.exists("/var/two") || strings.Contains(log, "[inline] two") {
					t.Error("ran past the failing line")
				}
			},
		},
		{
			name:   "CRLF script gets a hint",
			cs:     []template.Customizer{{Type: template.CustomizeShell, Name: "crlf", ScriptURI: u("/crlf.sh")}},
			errHas: []string{"CRLF"},
		},
		{
			name: "File over 20 MiB refused",
			cs: []template.Customizer{
				shell("first", "touch /var/first-ran"),
				{Type: template.CustomizeFile, Name: "huge", SourceURI: u("/huge.bin"), Destination: "/tmp/huge"},
			},
			errHas: []string{`customizer 2/2 "huge" (File) failed`, "20971520 byte limit"},
			is:     nil,
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				if s.exists("/tmp/huge") || s.exists("/var/first-ran") {
					t.Error("something reached the guest")
				}
			},
		},
		{
			name:   "PowerShell without pwsh",
			cs:     []template.Customizer{{Type: template.CustomizePowerShell, Name: "ps", Inline: []string{"Write-Output hi"}}},
			errHas: []string{`customizer 1/1 "ps" (PowerShell) failed: the image has no PowerShell (pwsh); install it in an earlier Shell customizer or use a Shell customizer`},
		},
		{
			name:  "PowerShell validExitCodes",
			setup: func(s *sandbox) { s.shim("pwsh", pwshShim) },
			cs: []template.Customizer{
				{Type: template.CustomizePowerShell, Name: "five-ok", Inline: []string{"echo ps-ran", "exit 5"}, ValidExitCodes: []int{0, 5}, RunElevated: true},
				{Type: template.CustomizePowerShell, Name: "five-bad", Inline: []string{"exit 5"}},
			},
			errHas: []string{`customizer 2/2 "five-bad" (PowerShell) failed with exit code 5`},
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				if steps[0].Err != nil || steps[0].ExitCode != 5 || !strings.Contains(log, "[five-ok] ps-ran") {
					t.Errorf("first step: %+v", steps[0])
				}
			},
		},
		{
			name:   "WindowsRestart unsupported",
			cs:     []template.Customizer{shell("first", "touch /var/first-ran"), {Type: template.CustomizeWindowsRestart}},
			errHas: []string{`customizer 2/2 "WindowsRestart-2" (WindowsRestart) failed: not supported: Windows guests are not supported yet`},
			is:     ErrUnsupported,
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				if s.exists("/var/first-ran") {
					t.Error("ran before refusing")
				}
			},
		},
		{
			name: "reboot mid-script",
			cs: []template.Customizer{
				shell("reboot", "echo before", "sudo reboot", "sleep 3", "touch /var/after-reboot-in-script"),
				shell("after", "touch /var/after"),
			},
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				if !steps[0].Rebooted || steps[0].Err != nil || s.rebootCount() != 1 {
					t.Errorf("step %+v reboots %d", steps[0], s.rebootCount())
				}
				if s.exists("/var/after-reboot-in-script") || !s.exists("/var/after") {
					t.Error("wrong steps ran")
				}
				if !strings.Contains(log, "[reboot] the guest rebooted during this step") {
					t.Error("log does not say so")
				}
			},
		},
		{
			name: "command exits 0 with a reboot pending",
			cs: []template.Customizer{
				shell("delayed", "sudo shutdown -r +1", "echo scheduled"),
				shell("after", "test ! -e /run/systemd/shutdown/scheduled", "touch /var/after"),
			},
			check: func(t *testing.T, s *sandbox, steps []Step, log string) {
				if !steps[0].Rebooted || steps[0].ExitCode != 0 || s.rebootCount() != 1 || !s.exists("/var/after") {
					t.Errorf("step %+v reboots %d", steps[0], s.rebootCount())
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			var log syncBuf
			var events []Step
			steps, err := Run(context.Background(), s, tc.cs, Options{Log: &log, ReadyTimeout: -1, Progress: func(st Step) { events = append(events, st) }})
			t.Logf("log:\n%s", log.String())
			if len(tc.errHas) == 0 && err != nil {
				t.Fatal(err)
			}
			if len(tc.errHas) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				var se *StepError
				if !errors.As(err, &se) {
					t.Fatalf("%T is not a *StepError", err)
				}
				for _, want := range tc.errHas {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error is not %v", tc.is)
				}
			}
			// Progress: every step reached starts then ends, in order.
			for i, st := range steps {
				if len(events) < 2*i+2 || events[2*i].Done || !events[2*i+1].Done || events[2*i+1].Index != st.Index {
					if st.Err == nil || len(events) != 2*i+1 { // a preflight failure reports only its end
						t.Errorf("progress events %+v", events)
					}
					break
				}
			}
			if tc.check != nil {
				tc.check(t, s, steps, log.String())
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	s := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for !s.exists("/var/started") {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := Run(ctx, s, []template.Customizer{shell("long", "touch /var/started", "sleep 30", "touch /var/finished")}, Options{ReadyTimeout: -1})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `customizer 1/1 "long" (Shell) did not finish: context canceled`) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	time.Sleep(500 * time.Millisecond)
	if s.exists("/var/finished") {
		t.Fatal("the script went on")
	}
}

// A reboot that lands between steps (after the probe): the next step's first
// call meets it, and the step is started again from scratch, running once.
func TestRunRebootBetweenSteps(t *testing.T) {
	// A script written in the step's own session is one call; a large one
	// is uploaded first (call 1), then run (call 2).
	large := strings.Repeat("# padding\n", maxInlineScript/10+1)
	for _, tc := range []struct {
		failAt int
		lines  []string
	}{{1, nil}, {1, []string{large}}, {2, []string{large}}} {
		failAt := tc.failAt
		s := newSandbox(t)
		g := &rebootBetween{sandbox: s, failAt: failAt}
		var log syncBuf
		steps, err := Run(context.Background(), g, []template.Customizer{shell("count", append(tc.lines, "echo x >>/var/count")...)}, Options{Log: &log, ReadyTimeout: -1})
		if err != nil {
			t.Fatalf("failAt %d: %v\n%s", failAt, err, log.String())
		}
		if s.read("/var/count") != "x\n" || s.rebootCount() != 1 || steps[0].Rebooted {
			t.Fatalf("failAt %d: count %q reboots %d step %+v\n%s", failAt, s.read("/var/count"), s.rebootCount(), steps[0], log.String())
		}
		if !strings.Contains(log.String(), "before this step's command started") {
			t.Errorf("log: %s", log.String())
		}
	}
}

// TestNoWaitAfterRestoredSteps: a run that resumes after reused steps (a
// guest restored from a layer) starts its next step at once, as the build
// that made the layer did, even with cloud-init still running; a run from
// the first step waits.
func TestNoWaitAfterRestoredSteps(t *testing.T) {
	for _, skip := range []int{0, 1} {
		t.Run(fmt.Sprintf("skip %d", skip), func(t *testing.T) {
			s := newSandbox(t)
			s.shim("cloud-init", "#!/bin/sh\nif [ -e /run/ci-done ]; then echo 'status: done'; else echo 'status: running'; fi\n")
			go func() {
				time.Sleep(2 * time.Second)
				os.WriteFile(s.path("/run/ci-done"), nil, 0o644)
			}()
			var log syncBuf
			steps, err := Run(context.Background(), s, []template.Customizer{shell("one", "touch /var/one"), shell("two", "touch /var/two")},
				Options{Log: &log, ReadyTimeout: time.Minute, Skip: skip})
			must(t, err)
			if len(steps) != 2 || steps[0].Reused != (skip == 1) || !s.exists("/var/two") || s.exists("/var/one") == (skip == 1) {
				t.Errorf("steps %+v", steps)
			}
			if waited := strings.Contains(log.String(), "[wait-ready] waiting for: cloud-init (running)"); waited != (skip == 0) {
				t.Errorf("waited for readiness: %v, want %v; log:\n%s", waited, skip == 0, log.String())
			}
		})
	}
}

func TestWaitReady(t *testing.T) {
	s := newSandbox(t)
	// cloud-init still running until /run/ci-done appears.
	s.shim("cloud-init", "#!/bin/sh\nif [ -e /run/ci-done ]; then echo 'status: done'; else echo 'status: running'; fi\n")
	s.write("/var/lib/dpkg/lock-frontend", "", 0o640)
	f, err := os.OpenFile(s.path("/var/lib/dpkg/lock-frontend"), os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	must(t, syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk))
	fd := f.Fd()
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(3 * time.Second)
		os.WriteFile(s.path("/run/ci-done"), nil, 0o644)
		time.Sleep(3 * time.Second)
		unlock := syscall.Flock_t{Type: syscall.F_UNLCK}
		syscall.FcntlFlock(fd, syscall.F_SETLK, &unlock)
	}()
	var log syncBuf
	start := time.Now()
	if _, err := Run(context.Background(), s, []template.Customizer{shell("apt", "echo go")}, Options{Log: &log, ReadyTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("%s\n%s", d, log.String())
	for _, want := range []string{"[wait-ready] waiting for: cloud-init (running), lock /var/lib/dpkg/lock-frontend", "[wait-ready] waiting for: lock /var/lib/dpkg/lock-frontend", "[wait-ready] ready after"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if d < 5*time.Second {
		t.Errorf("did not wait: %s", d)
	}

	// Bounded: a lock never released costs the timeout, then the run goes on.
	<-released
	must(t, syscall.FcntlFlock(fd, syscall.F_SETLK, &lk))
	log = syncBuf{}
	if err := WaitReady(context.Background(), s, Options{Log: &log, ReadyTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "still busy after 2s: lock /var/lib/dpkg/lock-frontend; continuing anyway") {
		t.Errorf("log: %s", log.String())
	}
}

func TestValidateAndPrefetch(t *testing.T) {
	s := newSandbox(t)
	var events []Step
	steps, err := Validate(context.Background(), s, []template.Customizer{
		shell("nginx-enabled", "test -f /var/enabled"),
	}, Options{ReadyTimeout: -1, Progress: func(st Step) { events = append(events, st) }})
	if err == nil || !strings.HasPrefix(err.Error(), `validator 1/1 "nginx-enabled" (Shell) failed with exit code 1`) {
		t.Fatalf("err %v", err)
	}
	if len(steps) != 1 || steps[0].Kind != KindValidator || len(events) != 2 || events[1].ExitCode != 1 {
		t.Fatalf("steps %+v events %+v", steps, events)
	}

	script := []byte("echo hi\n")
	srv := newFiles(t, map[string][]byte{"/s.sh": script})
	f := &Fetcher{}
	err = f.Prefetch(context.Background(), []template.Customizer{
		{Type: template.CustomizeShell, Name: "ok", ScriptURI: srv.URL + "/s.sh", SHA256Checksum: digest(script)},
		shell("inline", "true"),
		{Type: template.CustomizeShell, Name: "bad", ScriptURI: srv.URL + "/s.sh", SHA256Checksum: strings.Repeat("1", 64)},
		{Type: template.CustomizeFile, Name: "gone", SourceURI: srv.URL + "/gone", Destination: "/tmp/gone"},
	})
	for _, want := range []string{`customizer 3/4 "bad" (Shell): sha256 mismatch`, `customizer 4/4 "gone" (File): download ` + srv.URL + "/gone: HTTP 404"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("prefetch error %v lacks %q", err, want)
		}
	}
	if srv.hits.Load() != 3 {
		t.Errorf("%d requests, want 3", srv.hits.Load())
	}
}

// TestStagedFetcher: a service build reads the files staged at submission
// and nothing else. The URIs point where nothing listens, so any network
// fetch would fail with "connection refused" instead of the errors asked for.
func TestStagedFetcher(t *testing.T) {
	script := []byte("echo staged\n")
	dir := t.TempDir()
	p := filepath.Join(dir, "000-s.sh")
	must(t, os.WriteFile(p, script, 0o600))
	staged, missing := closedURL(t), closedURL(t)+"?other"
	f := NewStagedFetcher(map[string]download.Local{staged: {URI: staged, Path: p, SHA256: digest(script), Size: int64(len(script))}})
	tests := []struct {
		name, uri, sum string
		kind           download.Kind
		errHas         string
	}{
		{name: "staged", uri: staged, sum: digest(script)},
		{name: "staged, no digest", uri: staged},
		{name: "not staged", uri: missing, errHas: "was not staged when the template was submitted"},
		{name: "template digest differs", uri: staged, sum: strings.Repeat("0", 64), errHas: "sha256 mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := f.Fetch(context.Background(), tc.uri, tc.sum, tc.kind)
			if tc.errHas == "" {
				if err != nil || !bytes.Equal(a.Data, script) || a.SHA256 != digest(script) {
					t.Fatalf("got %+v, %v", a, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err %v, want it to mention %q", err, tc.errHas)
			}
		})
	}
	// A staged copy changed on disk after it was verified is refused.
	must(t, os.WriteFile(p, []byte("echo tampered\n"), 0o600))
	if _, err := NewStagedFetcher(map[string]download.Local{staged: {URI: staged, Path: p, SHA256: digest(script)}}).
		Fetch(context.Background(), staged, "", download.Script); err == nil || !strings.Contains(err.Error(), "changed since it was verified") {
		t.Fatalf("tampered copy: %v", err)
	}
}

// TestWaitReadyAptDaily: a running apt-daily unit is waited for, and one
// that is inactive is not.
func TestWaitReadyAptDaily(t *testing.T) {
	s := newSandbox(t)
	s.shim("systemctl", "#!/bin/sh\n[ \"$1\" = list-jobs ] || exit 1\n"+
		"[ -e /run/apt-done ] || echo '12 apt-daily.service start running'\n")
	go func() {
		time.Sleep(2 * time.Second)
		os.WriteFile(s.path("/run/apt-done"), nil, 0o644)
	}()
	var log syncBuf
	if err := WaitReady(context.Background(), s, Options{Log: &log, ReadyTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[wait-ready] waiting for: apt-daily", "[wait-ready] ready after"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	log = syncBuf{}
	if err := WaitReady(context.Background(), s, Options{Log: &log, ReadyTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if log.String() != "" {
		t.Errorf("a ready guest logged %q", log.String())
	}
}

// TestWaitReadyBooting: cloud-init that has not started yet is waited for
// while the boot's targets still have jobs, and not once the boot is over.
func TestWaitReadyBooting(t *testing.T) {
	s := newSandbox(t)
	s.shim("systemctl", "#!/bin/sh\n[ \"$1\" = list-jobs ] || exit 1\n"+
		"[ -e /run/booted ] || echo '1 multi-user.target start waiting'\n")
	s.shim("cloud-init", "#!/bin/sh\necho 'status: not started'\n")
	go func() {
		time.Sleep(2 * time.Second)
		os.WriteFile(s.path("/run/booted"), nil, 0o644)
	}()
	var log syncBuf
	if err := WaitReady(context.Background(), s, Options{Log: &log, ReadyTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[wait-ready] waiting for: cloud-init (not started yet)", "[wait-ready] ready after"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

// TestWriteInline: a step's script reaches the guest byte for byte through
// the here-document, as a new 0755 file, or is declined for an upload.
func TestWriteInline(t *testing.T) {
	tests := []struct {
		name   string
		script string
		inline bool
	}{
		{"inline commands", "#!/bin/sh -e\necho hi\n", true},
		{"quotes and expansions", "echo \"$HOME\" '$(id)' `date` \\\necho $((1+2))\ncat <<EOF\n$USER\nEOF\n", true},
		{"CRLF", "echo one\r\necho two\r\n", true},
		{"no newline at the end", "echo hi", false},
		{"NUL", "echo a\x00b\n", false},
		{"large", strings.Repeat("# padding\n", maxInlineScript/10+1), false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, ok := writeInline([]byte(tc.script), "/tmp/goldsmith-1-abc.sh")
			if ok != tc.inline {
				t.Fatalf("inline %v, want %v", ok, tc.inline)
			}
			if !ok {
				return
			}
			s := newSandbox(t)
			var out, errb bytes.Buffer
			code, err := s.Run(context.Background(), cmd+"stat -c %a /tmp/goldsmith-1-abc.sh", &out, &errb)
			if err != nil || code != 0 {
				t.Fatalf("exit %d, %v: %s", code, err, errb.String())
			}
			if got := s.read("/tmp/goldsmith-1-abc.sh"); got != tc.script {
				t.Errorf("the guest has %q, want %q", got, tc.script)
			}
			if strings.TrimSpace(out.String()) != "755" {
				t.Errorf("mode %q", out.String())
			}
			// A file already there (planted) is not written through.
			code, _ = s.Run(context.Background(), cmd+"echo wrote", &out, &errb)
			if code != 126 || !strings.Contains(errb.String(), "cannot write the step's script") {
				t.Errorf("over an existing file: exit %d, stderr %q", code, errb.String())
			}
		})
	}
}

// TestShellStepOneSession: a Shell step is one guest call (script written
// and run in the same session), and its script is gone afterwards.
func TestShellStepOneSession(t *testing.T) {
	s := newSandbox(t)
	steps, err := Run(context.Background(), s, []template.Customizer{shell("one", "echo $0 >/var/script-path")}, Options{ReadyTimeout: -1})
	must(t, err)
	if len(steps) != 1 || steps[0].ExitCode != 0 {
		t.Fatalf("steps %+v", steps)
	}
	if s.calls != 1 {
		t.Errorf("%d guest calls, want 1", s.calls)
	}
	if p := strings.TrimSpace(s.read("/var/script-path")); !strings.HasPrefix(p, "/tmp/goldsmith-1-") || s.exists(p) {
		t.Errorf("script %q ran or was left behind", p)
	}
}
