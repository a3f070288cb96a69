package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/source"
	tmpl "github.com/goldsmith-dev/goldsmith/template"
)

// testDataDir is shared by every test run on the machine, so the platform
// image is built once (see catalog's tests).
func testDataDir() string {
	if d := os.Getenv("GOLDSMITH_TEST_DATA"); d != "" {
		return d
	}
	return "/var/tmp/goldsmith-test"
}

func needVM(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: boots real VMs")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("building the platform image needs root")
	}
}

const setupScript = `#!/bin/bash
set -euxo pipefail
echo "setup-os ran on $(uname -r)" | sudo tee /etc/goldsmith-marker
`

// scriptServer serves the test's scripts on 127.0.0.1.
func scriptServer(t *testing.T, extra map[string]string) *httptest.Server {
	files := map[string]string{
		"/scripts/setup-os.sh": setupScript,
		"/files/motd":          "Built by goldsmith.\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// loadTemplate fills a testdata template's {{.URL}} and {{.SetupSHA}}.
func loadTemplate(t *testing.T, name string, data any) *tmpl.Template {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := template.Must(template.New(name).Parse(string(raw))).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	found, err := tmpl.Load(buf.Bytes(), tmpl.LoadOptions{})
	if err != nil || found[0].Err != nil {
		t.Fatalf("load %s: %v %v", name, err, found)
	}
	return found[0].Template
}

// inlineTemplate is a small template with the given customizers.
func inlineTemplate(t *testing.T, customizers string) *tmpl.Template {
	t.Helper()
	doc := `{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-07-01", "location": "westus2",
	  "identity": {"type": "None"},
	  "properties": {
	    "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
	    "customize": ` + customizers + `,
	    "distribute": [{"type": "VHD", "runOutputName": "out"}]}}`
	found, err := tmpl.Load([]byte(doc), tmpl.LoadOptions{})
	if err != nil || found[0].Err != nil {
		t.Fatalf("load: %v %v", err, found)
	}
	return found[0].Template
}

func newBuilder(t *testing.T) *Builder {
	t.Helper()
	data := testDataDir()
	run := disk.Exec{}
	cat, err := catalog.Open(data, catalog.WithRunner(run))
	if err != nil {
		t.Fatal(err)
	}
	return &Builder{
		Images:   source.Resolver{Platform: cat},
		Disks:    disk.QemuImg{Run: run},
		StartVM:  StartMachine,
		Fetcher:  &customize.Fetcher{},
		CacheDir: filepath.Join(data, "cache"),
	}
}

// syncBuffer collects the live log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// qemuUsing counts QEMU processes whose command line mentions dir.
func qemuUsing(t *testing.T, dir string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("qemu-system")) && bytes.Contains(b, []byte(dir)) {
			n++
		}
	}
	return n
}

// assertClean checks that a run left no VM and no scratch files.
func assertClean(t *testing.T, work string) {
	t.Helper()
	if n := qemuUsing(t, work); n > 0 {
		t.Errorf("%d qemu processes still use %s", n, work)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work dir %s still exists (%v)", work, err)
	}
}

// TestBuildWebServer is the end-to-end build: a script by URI with its
// checksum, a File, apt installing nginx from Debian's mirror, a reboot in
// the middle, then generalize and a managed image and a fixed VHD. The VHD
// is then booted in a fresh VM to check what the customizers left and that
// the build user is gone.
func TestBuildWebServer(t *testing.T) {
	needVM(t)
	srv := scriptServer(t, nil)
	tp := loadTemplate(t, "webserver.json", map[string]string{"URL": srv.URL, "SetupSHA": sha(setupScript)})
	b := newBuilder(t)
	work, out := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "out")
	var live syncBuffer
	var phases []Phase
	var mu sync.Mutex
	res, err := b.Run(context.Background(), Request{Template: tp, WorkDir: work, OutputDir: out, Log: &live,
		Progress: func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		}})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, tail(live.String(), 60))
	}
	assertClean(t, work)
	if got := strings.Join(phaseNames(phases), ","); got != "Building,Customizing,Generalizing,Distributing" {
		t.Errorf("phases %s", got)
	}
	m := res.Manifest
	if len(m.Steps) != 5 || !m.Steps[3].Rebooted || m.Steps[0].SHA256 != sha(setupScript) || m.Generalize == "" {
		t.Errorf("manifest steps: %+v generalize %q", m.Steps, m.Generalize)
	}
	if !hasPackage(m.Packages, "nginx") || m.Source.URN == "" || !strings.HasPrefix(m.Source.URN, "Debian:debian-12:12:12.") {
		t.Errorf("manifest source %+v, %d packages", m.Source, len(m.Packages))
	}
	var vhd string
	for _, o := range res.Outputs {
		sum, _, err := disk.SHA256File(context.Background(), o.Path)
		if err != nil || sum != o.SHA256 {
			t.Errorf("output %s: sha256 %s, recorded %s (%v)", o.Path, sum, o.SHA256, err)
		}
		if o.Type == tmpl.DistributeVHD {
			vhd = o.Path
		}
	}
	if _, err := disk.CheckFixedVHD(vhd); err != nil {
		t.Fatalf("VHD: %v", err)
	}
	for _, f := range []string{"customization.log", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// Boot the fixed VHD on its own (its GRUB, no -kernel) in a fresh VM.
	check := filepath.Join(t.TempDir(), "check.qcow2")
	if err := (disk.QemuImg{Run: disk.Exec{}}).CreateOverlay(context.Background(), check, vhd, "vpc", 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var console syncBuffer
	vm, err := machine.Start(ctx, machine.Config{Disk: check, DiskFormat: "qcow2", User: "inspector", CacheDir: b.CacheDir, Console: &console})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.Comm().WaitForSSH(ctx); err != nil {
		t.Fatalf("the built image did not boot to SSH: %v\n%s", err, tail(console.String(), 30))
	}
	for _, c := range []struct{ cmd, want string }{
		{"cat /etc/goldsmith-marker", "setup-os ran"},
		{"systemctl is-enabled nginx", "enabled"},
		{"cat /etc/motd", "Built by goldsmith."},
		{"id packer >/dev/null 2>&1 && echo present || echo absent", "absent"},
		{"test -e /home/packer && echo present || echo absent", "absent"},
		{"ls /etc/sudoers.d/ | grep -c packer || true", "0"},
	} {
		var stdout bytes.Buffer
		code, err := vm.Comm().Run(ctx, c.cmd, &stdout, &stdout)
		if err != nil || code != 0 || !strings.Contains(stdout.String(), c.want) {
			t.Errorf("%s: exit %d err %v output %q, want %q", c.cmd, code, err, stdout.String(), c.want)
		}
	}
}

func hasPackage(ps []ManifestPackage, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

func phaseNames(ps []Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestBuildFailures: each failure gives a clear message and leaves nothing
// behind. The download failures happen before any VM starts.
func TestBuildFailures(t *testing.T) {
	needVM(t)
	srv := scriptServer(t, map[string]string{
		"/scripts/exit3.sh": "#!/bin/sh\necho about to fail\nexit 3\n",
	})
	b := newBuilder(t)
	tests := []struct {
		name        string
		customizers string
		timeout     time.Duration
		cancelAt    string // cancel when the log shows this
		wantErr     error
		contains    []string
		noVM        bool // failed before the VM started
	}{
		{name: "unreachable script", customizers: `[{"type": "Shell", "name": "gone", "scriptUri": "http://127.0.0.1:1/nothing.sh"}]`,
			contains: []string{"gone", "http://127.0.0.1:1/nothing.sh"}, noVM: true},
		{name: "checksum mismatch", customizers: `[{"type": "Shell", "name": "tampered", "scriptUri": "` + srv.URL + `/scripts/setup-os.sh", "sha256Checksum": "` + strings.Repeat("0", 64) + `"}]`,
			contains: []string{"tampered", strings.Repeat("0", 64), sha(setupScript)}, noVM: true},
		{name: "script exits 3", customizers: `[{"type": "Shell", "name": "ok", "inline": ["true"]}, {"type": "Shell", "name": "fails", "scriptUri": "` + srv.URL + `/scripts/exit3.sh"}]`,
			contains: []string{"2/2", `"fails"`, "exit code 3", "about to fail"}},
		{name: "script never ends", customizers: `[{"type": "Shell", "name": "forever", "inline": ["sleep 100000"]}]`,
			timeout: 150 * time.Second, wantErr: ErrTimeout, contains: []string{"phase Customizing", `"forever"`}},
		{name: "canceled mid-customizer", customizers: `[{"type": "Shell", "name": "long", "inline": ["echo started-long", "sleep 100000"]}]`,
			cancelAt: "started-long", wantErr: ErrCanceled, contains: []string{"canceled", `"long"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work, out := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "out")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			live := &watchBuffer{want: tt.cancelAt, hit: cancel}
			_, err := b.Run(ctx, Request{Template: inlineTemplate(t, tt.customizers), WorkDir: work, OutputDir: out, Log: live, Timeout: tt.timeout})
			if err == nil {
				t.Fatal("the build succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			if strings.Contains(live.String(), "build VM started") == tt.noVM {
				t.Errorf("VM started: %v, want %v", !tt.noVM, !tt.noVM)
			}
			assertClean(t, work)
			if outputs, _ := filepath.Glob(filepath.Join(out, "*.vhd")); len(outputs) > 0 {
				t.Errorf("a failed build left outputs: %v", outputs)
			}
		})
	}
}

// watchBuffer collects the log and calls hit once it shows want.
type watchBuffer struct {
	syncBuffer
	want string
	hit  func()
	once sync.Once
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if w.want != "" && strings.Contains(w.syncBuffer.String(), w.want) {
		w.once.Do(w.hit)
	}
	return n, err
}
