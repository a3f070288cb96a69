package build

// The pipeline's fast tests: a real Builder with real qemu-img for the
// disks, a real HTTP server for the scripts, and fakeVM for the build VM.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/source"
	tmpl "github.com/goldsmith-dev/goldsmith/template"
)

// fakeImages resolves every source to one small raw disk.
type fakeImages struct {
	img source.Image
	j   *journal
}

func (f *fakeImages) Resolve(ctx context.Context, src tmpl.Source) (source.Image, error) {
	f.j.add("resolve source")
	return f.img, nil
}

// journaledDisks is qemu-img, with its calls recorded.
type journaledDisks struct {
	ImageTool
	j *journal
}

func (d journaledDisks) CreateOverlay(ctx context.Context, path, backing, backingFormat string, size int64) error {
	d.j.add("create overlay")
	return d.ImageTool.CreateOverlay(ctx, path, backing, backingFormat, size)
}

func (d journaledDisks) Convert(ctx context.Context, src, srcFormat, dst string, opt disk.ConvertOptions) error {
	d.j.add("convert " + string(opt.Format))
	return d.ImageTool.Convert(ctx, src, srcFormat, dst, opt)
}

// baseDisk writes a 16 MiB raw disk with some data in it, once per test.
func baseDisk(t *testing.T) source.Image {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	p := filepath.Join(t.TempDir(), "base.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 16 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("goldsmith test base disk\n"), 1<<20); err != nil {
		t.Fatal(err)
	}
	sum, _, err := disk.SHA256File(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return source.Image{URN: "Debian:debian-12:12:12.20240701.1", Disk: p, DiskFormat: "raw", DiskSHA256: sum,
		VirtualSize: size, OSType: tmpl.OSLinux}
}

// fakeBuild is a Builder over fake VMs.
type fakeBuild struct {
	b       *Builder
	starter *fakeStarter
	j       *journal
	work    string
	out     string
}

func newFakeBuild(t *testing.T, rules ...rule) *fakeBuild {
	t.Helper()
	j := &journal{}
	st := &fakeStarter{journal: j, rules: rules}
	dir := t.TempDir()
	return &fakeBuild{
		b: &Builder{
			Images:   &fakeImages{img: baseDisk(t), j: j},
			Disks:    journaledDisks{ImageTool: disk.QemuImg{Run: disk.Exec{}}, j: j},
			StartVM:  st.start,
			Fetcher:  &customize.Fetcher{},
			CacheDir: filepath.Join(dir, "cache"),
		},
		starter: st, j: j,
		work: filepath.Join(dir, "work"), out: filepath.Join(dir, "out"),
	}
}

func (f *fakeBuild) request(tp *tmpl.Template) Request {
	return Request{Template: tp, WorkDir: f.work, OutputDir: f.out}
}

// assertCleanedUp checks what every path must leave: the VM closed once,
// while its disk still existed (so before the work dir went), and the work
// dir gone.
func (f *fakeBuild) assertCleanedUp(t *testing.T, vmStarted bool) {
	t.Helper()
	if _, err := os.Stat(f.work); !os.IsNotExist(err) {
		t.Errorf("work dir %s still exists (%v)", f.work, err)
	}
	vm := f.starter.last()
	if !vmStarted {
		if vm != nil {
			t.Errorf("a VM was started")
		}
		return
	}
	if vm == nil {
		t.Fatal("no VM was started")
	}
	if closed, _ := vm.counts(); closed != 1 {
		t.Errorf("VM closed %d times, want 1", closed)
	}
	entries := f.j.all()
	if last := entries[len(entries)-1]; last != "close" {
		t.Errorf("the last thing done was %q, want the VM's close (while its disk existed)\n%s", last, f.j)
	}
}

// outputDisks lists the disks in the output dir.
func (f *fakeBuild) outputDisks() []string {
	var disks []string
	entries, _ := os.ReadDir(f.out)
	for _, e := range entries {
		if e.Name() != "customization.log" && e.Name() != "manifest.json" {
			disks = append(disks, e.Name())
		}
	}
	return disks
}

// readManifest reads manifest.json as written.
func (f *fakeBuild) readManifest(t *testing.T) *Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	return &m
}

// props makes a template from the JSON of its properties after source.
func props(t *testing.T, apiVersion, properties string) *tmpl.Template {
	t.Helper()
	doc := `{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "` + apiVersion + `", "location": "westus2",
	  "identity": {"type": "None"},
	  "properties": {
	    "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
	    ` + properties + `}}`
	found, err := tmpl.Load([]byte(doc), tmpl.LoadOptions{})
	if err != nil || found[0].Err != nil {
		t.Fatalf("load: %v %v", err, found)
	}
	return found[0].Template
}

const vhdOnly = `"distribute": [{"type": "VHD", "runOutputName": "out"}]`

func fileSHA256(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), int64(len(b))
}

// TestFakeBuild is a whole build on a fake VM: a script by URI with its
// checksum, a File, a step that reboots the guest, a validator, generalize,
// and three outputs (two of one format). It checks what the guest was asked
// to do, the order of everything, the outputs and the manifest.
func TestFakeBuild(t *testing.T) {
	script := "#!/bin/bash\necho setting up\n"
	motd := "Built by goldsmith.\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/setup.sh":
			io.WriteString(w, script)
		case "/motd":
			io.WriteString(w, motd)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := newFakeBuild(t,
		rule{match: "sudo reboot", reboot: true},
		// generalize lists the packages before it does anything else.
		rule{match: " goldsmith-generalize auto ", stdout: "goldsmith-customize:package bash 5.2.15-2\n" +
			"goldsmith-customize:package nginx 1.22.1-9\n" + defaultRules[0].stdout},
	)
	image := func(name string) string {
		return `{"type": "managedImage", "location": "westus2", "runOutputName": "` + name +
			`", "imageId": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/images/providers/Microsoft.Compute/images/` + name + `"}`
	}
	tp := props(t, "2022-07-01", `
	    "customize": [
	      {"type": "Shell", "name": "setup-os", "scriptUri": "`+srv.URL+`/setup.sh", "sha256Checksum": "`+sha(script)+`"},
	      {"type": "File", "name": "motd", "sourceUri": "`+srv.URL+`/motd", "destination": "/tmp/motd"},
	      {"type": "Shell", "name": "reboot", "inline": ["sudo reboot"]},
	      {"type": "Shell", "name": "after-reboot", "inline": ["test -f /tmp/motd"]}
	    ],
	    "validate": {"inVMValidations": [{"type": "Shell", "name": "check", "inline": ["test -f /etc/os-release"]}]},
	    "distribute": [`+image("golden")+`, {"type": "VHD", "runOutputName": "vhd"}, `+image("golden-copy")+`]`)
	var mu sync.Mutex
	var phases []Phase
	req := f.request(tp)
	req.Progress = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}
	res, err := f.b.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, f.j)
	}
	f.assertCleanedUp(t, true)

	// What happened, in order. Commands are named by the first line of the
	// script they ran; the runner's own commands by their first line.
	// Formats are converted in parallel: their order is free.
	var order, converts []string
	for _, e := range f.j.all() {
		switch {
		case strings.HasPrefix(e, "upload "), strings.HasPrefix(e, "run sh -c"):
			continue // uploaded script names are random; readiness checks
		case strings.HasPrefix(e, "convert "):
			converts = append(converts, e)
			e = "convert"
			if len(order) > 0 && order[len(order)-1] == e {
				continue
			}
		}
		order = append(order, e)
	}
	slices.Sort(converts)
	// The VHD is written by disk.WriteRawHashed, not converted by qemu-img.
	if !slices.Equal(converts, []string{"convert qcow2"}) {
		t.Errorf("conversions %v, want one for the qcow2 targets", converts)
	}
	wantOrder := []string{
		"resolve source", "create overlay", "start VM",
		"run script /tmp/goldsmith-1-*.sh: echo setting up",
		"run script /tmp/goldsmith-3-*.sh: sudo reboot", "reboot (boot 2)",
		"run script /tmp/goldsmith-4-*.sh: test -f /tmp/motd",
		"run script /tmp/goldsmith-1-*.sh: test -f /etc/os-release",
		"run generalize auto",
		"power-off",
		"convert",
		"close",
	}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("journal:\n got %s\nwant %s", strings.Join(order, "\n     "), strings.Join(wantOrder, "\n     "))
	}
	if got := f.starter.last().uploads["/tmp/motd"]; string(got) != motd {
		t.Errorf("/tmp/motd uploaded as %q", got)
	}
	if got := strings.Join(phaseNames(phases), ","); got != "Building,Customizing,Validating,Generalizing,Distributing" {
		t.Errorf("progress phases %s", got)
	}

	// Outputs: one conversion per format, the same bytes for the copy.
	if got := f.outputDisks(); !slices.Equal(got, []string{"golden-copy.qcow2", "golden.qcow2", "vhd.vhd"}) {
		t.Errorf("output dir: %v", got)
	}
	if len(res.Outputs) != 3 {
		t.Fatalf("outputs %+v", res.Outputs)
	}
	for i, want := range []struct{ name, format string }{{"golden", "qcow2"}, {"vhd", "vhd"}, {"golden-copy", "qcow2"}} {
		o := res.Outputs[i]
		sum, size := fileSHA256(t, o.Path)
		if o.RunOutputName != want.name || o.Format != want.format || o.SHA256 != sum || o.Size != size ||
			filepath.Dir(o.Path) != f.out {
			t.Errorf("output %d: %+v; want %s %s, sha256 %s, %d bytes", i, o, want.name, want.format, sum, size)
		}
	}
	if res.Outputs[0].SHA256 != res.Outputs[2].SHA256 {
		t.Error("two managed images of one build differ")
	}
	if _, err := disk.CheckFixedVHD(res.Outputs[1].Path); err != nil {
		t.Error(err)
	}

	// The manifest, as returned and as written.
	m := res.Manifest
	if written := f.readManifest(t); !reflect.DeepEqual(jsonOf(t, written), jsonOf(t, m)) {
		t.Errorf("manifest.json differs from the result's manifest:\n%s\n%s", jsonOf(t, written), jsonOf(t, m))
	}
	if m.Result != "Succeeded" || m.Message != "" || m.Accel != "tcg" || m.Generalize != "builtin" || m.OSType != tmpl.OSLinux {
		t.Errorf("manifest: result %q message %q accel %q generalize %q osType %q", m.Result, m.Message, m.Accel, m.Generalize, m.OSType)
	}
	base := f.b.Images.(*fakeImages).img
	if m.Source != (ManifestSource{Type: tmpl.SourcePlatformImage, URN: base.URN, ExactVersion: "12.20240701.1", SHA256: base.DiskSHA256}) {
		t.Errorf("manifest source %+v", m.Source)
	}
	var phaseList []string
	for _, p := range m.Phases {
		phaseList = append(phaseList, string(p.Phase))
		if p.Seconds < 0 {
			t.Errorf("phase %s took %f s", p.Phase, p.Seconds)
		}
	}
	if got := strings.Join(phaseList, ","); got != "Building,Customizing,Validating,Generalizing,Distributing" {
		t.Errorf("manifest phases %s", got)
	}
	type stepSummary struct {
		Name     string
		Type     tmpl.CustomizerType
		ExitCode int
		Rebooted bool
		URI      string
	}
	var steps []stepSummary
	for _, s := range append(append([]ManifestStep{}, m.Steps...), m.Validators...) {
		steps = append(steps, stepSummary{s.Name, s.Type, s.ExitCode, s.Rebooted, s.URI})
		if s.SHA256 == "" || s.Error != "" {
			t.Errorf("step %s: sha256 %q error %q", s.Name, s.SHA256, s.Error)
		}
	}
	wantSteps := []stepSummary{
		{"setup-os", tmpl.CustomizeShell, 0, false, srv.URL + "/setup.sh"},
		{"motd", tmpl.CustomizeFile, 0, false, srv.URL + "/motd"},
		{"reboot", tmpl.CustomizeShell, -1, true, ""},
		{"after-reboot", tmpl.CustomizeShell, 0, false, ""},
		{"check", tmpl.CustomizeShell, 0, false, ""},
	}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("manifest steps\n got %+v\nwant %+v", steps, wantSteps)
	}
	if m.Steps[0].SHA256 != sha(script) || m.Steps[1].SHA256 != sha(motd) {
		t.Errorf("manifest digests %s %s, want the script's and the file's", m.Steps[0].SHA256, m.Steps[1].SHA256)
	}
	if !slices.Equal(m.Packages, []ManifestPackage{{"bash", "5.2.15-2"}, {"nginx", "1.22.1-9"}}) {
		t.Errorf("packages %+v", m.Packages)
	}
	if !reflect.DeepEqual(m.Outputs, res.Outputs) {
		t.Errorf("manifest outputs %+v, result's %+v", m.Outputs, res.Outputs)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFakeBuildEnds: every way a build ends early gives the user's message
// and leaves the same clean state: VM closed before its disk was removed,
// work dir gone, no output disk, a manifest that says how it ended.
func TestFakeBuildEnds(t *testing.T) {
	two := `"customize": [{"type": "Shell", "name": "ok", "inline": ["true"]},
	                  {"type": "Shell", "name": "long", "inline": ["echo started-long", "sleep 100000"]}], ` + vhdOnly
	tests := []struct {
		name       string
		properties string
		rules      []rule
		startErr   error
		sshWait    func(context.Context) error
		timeout    time.Duration
		cancelOn   string // cancel once a command with this starts
		cancelSSH  bool   // cancel while waiting for SSH
		wantErr    error
		contains   []string
		result     string
		noVM       bool
	}{
		{name: "customizer exits 3", properties: two, rules: []rule{{match: "sleep 100000", stdout: "about to fail\n", exit: 3}},
			contains: []string{"customize: ", `customizer 2/2 "long" (Shell)`, "exit code 3", "about to fail"}, result: "Failed"},
		{name: "VM does not start", properties: two, startErr: errors.New("qemu: no such file"),
			contains: []string{"boot the build VM: start the build VM: qemu: no such file"}, result: "Failed", noVM: true},
		{name: "no SSH", properties: two, sshWait: func(context.Context) error { return errors.New("connection refused") },
			contains: []string{"did not answer SSH within 10m0s: connection refused", "last console lines:\nfake console: login:"}, result: "Failed"},
		{name: "canceled in a customizer", properties: two, rules: []rule{{match: "sleep 100000", hang: true}}, cancelOn: "sleep 100000",
			wantErr: ErrCanceled, result: "Canceled",
			contains: []string{`the build was canceled while phase Customizing was running customizer 2/2 "long" (Shell)`}},
		{name: "canceled while booting", properties: two, sshWait: hangUntilDone, cancelSSH: true,
			wantErr: ErrCanceled, result: "Canceled",
			contains: []string{"the build was canceled while phase Building was running (boot the build VM)"}},
		{name: "timed out in a customizer", properties: two, rules: []rule{{match: "sleep 100000", hang: true}}, timeout: time.Second,
			wantErr: ErrTimeout, result: "Failed",
			contains: []string{"the build timed out after ", `(timeout 1s) while phase Customizing was running customizer 2/2 "long" (Shell)`}},
		{name: "timed out in generalize", properties: two, rules: []rule{{match: " goldsmith-generalize ", hang: true}}, timeout: time.Second,
			wantErr: ErrTimeout, result: "Failed",
			contains: []string{"(timeout 1s) while phase Generalizing was running (generalize)"}},
		{name: "validator fails", properties: `"customize": [{"type": "Shell", "name": "ok", "inline": ["true"]}],
			"validate": {"inVMValidations": [{"type": "Shell", "name": "check", "inline": ["test -f /nothing"]}]}, ` + vhdOnly,
			rules:    []rule{{match: "test -f /nothing", exit: 1}},
			contains: []string{"validate: ", `validator 1/1 "check" (Shell)`, "exit code 1"}, result: "Failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeBuild(t, tt.rules...)
			f.starter.err, f.starter.sshWait = tt.startErr, tt.sshWait
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelOn != "" {
				started := make(chan struct{})
				f.starter.rules = append([]rule{{match: tt.cancelOn, hang: true, started: started}}, f.starter.rules...)
				go func() {
					if waitClosed(started) {
						cancel()
					}
				}()
			}
			if tt.cancelSSH {
				f.starter.sshWait = func(ctx context.Context) error { cancel(); return hangUntilDone(ctx) }
			}
			req := f.request(props(t, "2022-07-01", tt.properties))
			req.Timeout = tt.timeout
			_, err := f.b.Run(ctx, req)
			if err == nil {
				t.Fatalf("the build succeeded\n%s", f.j)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
			f.assertCleanedUp(t, !tt.noVM)
			if disks := f.outputDisks(); len(disks) > 0 {
				t.Errorf("outputs left: %v", disks)
			}
			if f.j.has("convert") {
				t.Error("a failed build converted its disk")
			}
			m := f.readManifest(t)
			if m.Result != tt.result || m.Message != err.Error() {
				t.Errorf("manifest result %q message %q, want %q and the error", m.Result, m.Message, tt.result)
			}
			log, _ := os.ReadFile(filepath.Join(f.out, "customization.log"))
			if !strings.Contains(string(log), "build failed: "+err.Error()) {
				t.Errorf("customization.log does not end with the error:\n%s", log)
			}
		})
	}
}

// TestFakeBuildAbort: with errorHandling "abort", a failed customizer or
// validator keeps the VM for inspection: OnAbort gets an ssh command for
// it, and the run's cleanup waits for OnAbort; without it, or with
// "cleanup", OnAbort is never called.
func TestFakeBuildAbort(t *testing.T) {
	failing := `"customize": [{"type": "Shell", "name": "breaks", "inline": ["false-step"]}]`
	validator := `"customize": [{"type": "Shell", "name": "ok", "inline": ["true"]}],
	  "validate": {"inVMValidations": [{"type": "Shell", "name": "check", "inline": ["false-step"]}]}`
	tests := []struct {
		name, properties string
		abort            bool
		contains         string
	}{
		{name: "customizer, abort", properties: failing + `, "errorHandling": {"onCustomizerError": "abort"}`, abort: true,
			contains: `customizer 1/1 "breaks" (Shell) failed with exit code 2`},
		{name: "validator, abort", properties: validator + `, "errorHandling": {"onValidationError": "abort"}`, abort: true,
			contains: `validator 1/1 "check" (Shell) failed with exit code 2`},
		{name: "customizer, cleanup", properties: failing + `, "errorHandling": {"onCustomizerError": "cleanup", "onValidationError": "abort"}`},
		{name: "validator, customizers abort", properties: validator + `, "errorHandling": {"onCustomizerError": "abort"}`},
		{name: "no errorHandling", properties: failing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeBuild(t, rule{match: "false-step", exit: 2})
			req := f.request(props(t, "2023-07-01", tt.properties+", "+vhdOnly))
			aborted := make(chan Abort, 1)
			release := make(chan struct{})
			req.OnAbort = func(ctx context.Context, a Abort) {
				aborted <- a
				<-release
			}
			done := make(chan error, 1)
			go func() {
				_, err := f.b.Run(context.Background(), req)
				done <- err
			}()
			var err error
			select {
			case a := <-aborted:
				if !tt.abort {
					t.Fatalf("OnAbort called: %+v", a)
				}
				// The VM is kept while OnAbort runs, and the run waits.
				vm := f.starter.last()
				if closed, _ := vm.counts(); closed != 0 || vm.Status().State != 0 {
					t.Errorf("VM closed %d times, state %s, while kept for inspection", closed, vm.Status().State)
				}
				key, kerr := os.ReadFile(a.KeyFile)
				want := "ssh -i " + a.KeyFile + " -p 40022 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null packer@127.0.0.1"
				if kerr != nil || len(key) == 0 || a.SSHCommand != want || !strings.HasPrefix(a.KeyFile, f.work) {
					t.Errorf("abort %+v (key %q, %v); want ssh command %q", a, key, kerr, want)
				}
				if a.Reason == nil || !strings.Contains(a.Reason.Error(), tt.contains) {
					t.Errorf("abort reason %v, want %q", a.Reason, tt.contains)
				}
				select {
				case err := <-done:
					t.Fatalf("the run ended while OnAbort ran: %v", err)
				case <-time.After(50 * time.Millisecond):
				}
				close(release)
				err = <-done
			case err = <-done:
				if tt.abort {
					t.Fatalf("the run ended without OnAbort: %v", err)
				}
			}
			if err == nil || !strings.Contains(err.Error(), "exit code 2") {
				t.Errorf("error %v", err)
			}
			f.assertCleanedUp(t, true)
			log, _ := os.ReadFile(filepath.Join(f.out, "customization.log"))
			if got := strings.Contains(string(log), "is abort: the build VM is kept running for inspection: ssh -i"); got != tt.abort {
				t.Errorf("log says the VM is kept: %v, want %v", got, tt.abort)
			}
		})
	}
}

// TestFakeSourceValidationOnly: with validate.sourceValidationOnly the
// validators run on the source as it is; nothing is customized, generalized
// or distributed.
func TestFakeSourceValidationOnly(t *testing.T) {
	f := newFakeBuild(t)
	tp := props(t, "2022-07-01", `
	    "customize": [{"type": "Shell", "name": "never", "inline": ["customizer-ran"]}],
	    "validate": {"sourceValidationOnly": true, "inVMValidations": [{"type": "Shell", "name": "check", "inline": ["validator-ran"]}]},
	    `+vhdOnly)
	res, err := f.b.Run(context.Background(), f.request(tp))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, f.j)
	}
	f.assertCleanedUp(t, true)
	if !f.j.has(": validator-ran") {
		t.Errorf("the validator did not run:\n%s", f.j)
	}
	for _, never := range []string{": customizer-ran", "run generalize", "shutdown", "power-off", "convert"} {
		if f.j.has(never) {
			t.Errorf("%q happened:\n%s", never, f.j)
		}
	}
	if disks := f.outputDisks(); len(disks) > 0 || len(res.Outputs) > 0 {
		t.Errorf("outputs: %v %+v", disks, res.Outputs)
	}
	m := res.Manifest
	var phases []string
	for _, p := range m.Phases {
		phases = append(phases, string(p.Phase))
	}
	if m.Result != "Succeeded" || len(m.Steps) != 0 || len(m.Validators) != 1 || m.Generalize != "" ||
		len(m.Outputs) != 0 || strings.Join(phases, ",") != "Building,Validating" {
		t.Errorf("manifest %s", jsonOf(t, m))
	}
}

// TestFakeContinueDistributeOnFailure: a failed validator with
// continueDistributeOnFailure still distributes, and the manifest says why.
func TestFakeContinueDistributeOnFailure(t *testing.T) {
	f := newFakeBuild(t, rule{match: "validator-fails", exit: 1})
	tp := props(t, "2022-07-01", `
	    "customize": [{"type": "Shell", "name": "ok", "inline": ["true"]}],
	    "validate": {"continueDistributeOnFailure": true, "inVMValidations": [{"type": "Shell", "name": "check", "inline": ["validator-fails"]}]},
	    `+vhdOnly)
	res, err := f.b.Run(context.Background(), f.request(tp))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, f.j)
	}
	f.assertCleanedUp(t, true)
	m := res.Manifest
	if len(res.Outputs) != 1 || m.Result != "Succeeded" || !strings.HasPrefix(m.Message, `validation failed: validator 1/1 "check" (Shell) failed with exit code 1`) ||
		len(m.Validators) != 1 || m.Validators[0].ExitCode != 1 || m.Validators[0].Error == "" {
		t.Errorf("outputs %+v, manifest %s", res.Outputs, jsonOf(t, m))
	}
}
