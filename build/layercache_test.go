package build

// The layer cache's fast tests: real Builders over fake VMs that checkpoint
// onto real qcow2 overlays (qemu-img), a real layer.Cache with its real
// flocks in a temp dir, and scripts served on 127.0.0.1. Each test follows
// what the cache did through the manifest's layers, the customizers the
// fake guest ran, the files in the cache dir, and the customization log.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/layer"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/source"
	tmpl "github.com/goldsmith-dev/goldsmith/template"
)

// layerEnv is one source image and one layer cache shared by a test's
// builds. Each build gets a fresh Builder and Fetcher, as a new goldsmith
// process would.
type layerEnv struct {
	base  source.Image
	dir   string // the cache's directory
	cache *layer.Cache
	// cacheLog is the cache's own log (evictions).
	cacheLog *syncBuffer
}

func newLayerEnv(t *testing.T) *layerEnv {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (layer keys name its version)")
	}
	e := &layerEnv{base: baseDisk(t), dir: filepath.Join(t.TempDir(), "layers"), cacheLog: &syncBuffer{}}
	e.open(t, 0)
	return e
}

// open (re)opens the cache with a size bound (0: none).
func (e *layerEnv) open(t *testing.T, maxBytes int64) {
	t.Helper()
	c, err := layer.Open(e.dir, maxBytes, slog.New(slog.NewTextHandler(e.cacheLog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e.cache = c
}

// buildOpts vary one build.
type buildOpts struct {
	rules   []rule
	ctx     context.Context
	timeout time.Duration
	// wrap, if set, wraps the fake starter (to delay or break a boot).
	wrap func(VMStarter) VMStarter
}

// cachedBuild is one finished build over the env's cache.
type cachedBuild struct {
	res *Result
	err error
	j   *journal
	m   *Manifest // as written to manifest.json
	log string    // customization.log
}

func (e *layerEnv) build(t *testing.T, tp *tmpl.Template, o buildOpts) *cachedBuild {
	t.Helper()
	j := &journal{}
	st := &fakeStarter{journal: j, rules: o.rules}
	start := VMStarter(st.start)
	if o.wrap != nil {
		start = o.wrap(start)
	}
	dir := t.TempDir()
	b := &Builder{
		Images:   &fakeImages{img: e.base, j: j},
		Disks:    journaledDisks{ImageTool: disk.QemuImg{Run: disk.Exec{}}, j: j},
		StartVM:  start,
		Fetcher:  &customize.Fetcher{},
		CacheDir: filepath.Join(dir, "cache"),
		Accel:    machine.AccelTCG,
		Layers:   e.cache,
	}
	ctx := o.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	work, out := filepath.Join(dir, "work"), filepath.Join(dir, "out")
	res, err := b.Run(ctx, Request{Template: tp, WorkDir: work, OutputDir: out, LayerCache: true, Timeout: o.timeout})
	cb := &cachedBuild{res: res, err: err, j: j}
	raw, rerr := os.ReadFile(filepath.Join(out, "manifest.json"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	cb.m = &Manifest{}
	if err := json.Unmarshal(raw, cb.m); err != nil {
		t.Fatal(err)
	}
	logb, _ := os.ReadFile(filepath.Join(out, "customization.log"))
	cb.log = string(logb)
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work dir left: %v", err)
	}
	return cb
}

// ok fails the test unless the build succeeded.
func (cb *cachedBuild) ok(t *testing.T) *cachedBuild {
	t.Helper()
	if cb.err != nil {
		t.Fatalf("build: %v\njournal:\n%s\nlog:\n%s", cb.err, cb.j, cb.log)
	}
	return cb
}

// ran lists the customizers the fake guest ran, by the first line of each
// one's script.
func (cb *cachedBuild) ran() []string {
	var out []string
	for _, e := range cb.j.all() {
		rest, ok := strings.CutPrefix(e, "run script /tmp/goldsmith-")
		if !ok {
			continue
		}
		if _, first, ok := strings.Cut(rest, ": "); ok {
			out = append(out, first)
		}
	}
	return out
}

// built is the manifest's built layers as step numbers.
func (cb *cachedBuild) built() []int {
	out := []int{}
	if cb.m.Layers == nil {
		return out
	}
	for _, l := range cb.m.Layers.Built {
		out = append(out, l.Step)
	}
	return out
}

// key is the key of the layer this build saved after step customizers.
func (cb *cachedBuild) key(t *testing.T, step int) string {
	t.Helper()
	if cb.m.Layers != nil {
		for _, l := range cb.m.Layers.Built {
			if l.Step == step {
				return l.Key
			}
		}
	}
	t.Fatalf("the build saved no layer %d: %s", step, jsonOf(t, cb.m.Layers))
	return ""
}

// assertLayers checks the manifest's layers: the layer restored ("" for a
// cold boot), how many customizers it gave, and the layers saved.
func (cb *cachedBuild) assertLayers(t *testing.T, restored string, reused int, built []int) {
	t.Helper()
	l := cb.m.Layers
	if l == nil {
		t.Fatalf("manifest has no layers")
	}
	if l.Restored != restored || l.ReusedCustomizers != reused || !slices.Equal(cb.built(), built) {
		t.Errorf("manifest layers: restored %.12s reused %d built %v; want restored %.12s reused %d built %v",
			l.Restored, l.ReusedCustomizers, cb.built(), restored, reused, built)
	}
	for i, s := range cb.m.Steps {
		if want := i < reused; s.Reused != want {
			t.Errorf("manifest customizer %d reused=%v, want %v", i+1, s.Reused, want)
		}
	}
}

func (cb *cachedBuild) assertRan(t *testing.T, want ...string) {
	t.Helper()
	if got := cb.ran(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("customizers run: %q, want %q\njournal:\n%s", got, want, cb.j)
	}
}

func (cb *cachedBuild) assertLog(t *testing.T, lines ...string) {
	t.Helper()
	for _, s := range lines {
		if !strings.Contains(cb.log, s) {
			t.Errorf("customization.log lacks %q:\n%s", s, cb.log)
		}
	}
}

func (cb *cachedBuild) assertNotLog(t *testing.T, lines ...string) {
	t.Helper()
	for _, s := range lines {
		if strings.Contains(cb.log, s) {
			t.Errorf("customization.log has %q:\n%s", s, cb.log)
		}
	}
}

// layerDirs lists the cache directory: each entry's name and files.
func layerDirs(t *testing.T, dir string) map[string][]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		var files []string
		if e.IsDir() {
			sub, _ := os.ReadDir(filepath.Join(dir, e.Name()))
			for _, f := range sub {
				files = append(files, f.Name())
			}
		}
		out[e.Name()] = files
	}
	return out
}

// assertCache checks that the cache holds exactly the given layers, and
// that it is consistent: every entry a committed layer with its four files
// (no pending directory, no temp file), every layer's parent present, and
// every disk a qcow2 whose backing chain exists and runs through its
// parent's disk down to the source image.
func (e *layerEnv) assertCache(t *testing.T, want ...string) map[string]layer.Meta {
	t.Helper()
	dirs := layerDirs(t, e.dir)
	var got []string
	for k := range dirs {
		got = append(got, k)
	}
	sort.Strings(got)
	want = slices.Clone(want)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("cache holds %v, want %v", shortKeys(got), shortKeys(want))
	}
	metas := map[string]layer.Meta{}
	for k, files := range dirs {
		if !slices.Equal(files, []string{"disk.qcow2", "lock", "meta.json", "state"}) {
			t.Errorf("layer %.12s holds %v, want disk.qcow2 lock meta.json state", k, files)
			continue
		}
		raw, err := os.ReadFile(filepath.Join(e.dir, k, "meta.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m layer.Meta
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("layer %.12s meta.json: %v", k, err)
		}
		if m.Key != k {
			t.Errorf("layer %.12s's meta names key %.12s", k, m.Key)
		}
		metas[k] = m
	}
	for k, m := range metas {
		wantBacking := e.base.Disk
		if m.Step > 0 {
			p, ok := metas[m.Parent]
			if !ok {
				t.Errorf("layer %.12s (step %d): parent %.12s is not in the cache", k, m.Step, m.Parent)
				continue
			}
			if p.Step != m.Step-1 {
				t.Errorf("layer %.12s is step %d, its parent step %d", k, m.Step, p.Step)
			}
			wantBacking = filepath.Join(e.dir, m.Parent, "disk.qcow2")
		} else if m.Parent != "" {
			t.Errorf("layer %.12s is step 0 with parent %.12s", k, m.Parent)
		}
		chain := backingChain(t, filepath.Join(e.dir, k, "disk.qcow2"))
		if len(chain) != m.Step+2 || chain[1] != wantBacking || chain[len(chain)-1] != e.base.Disk {
			t.Errorf("layer %.12s (step %d): backing chain %v, want %d disks through %s down to %s",
				k, m.Step, chain, m.Step+2, wantBacking, e.base.Disk)
		}
	}
	return metas
}

// backingChain is a disk and its backing files, as qemu-img opens them:
// it fails when any of them is missing.
func backingChain(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--backing-chain", "--output=json", path).CombinedOutput()
	if err != nil {
		t.Errorf("qemu-img info --backing-chain %s: %v\n%s", path, err, out)
		return nil
	}
	var infos []struct {
		Filename string `json:"filename"`
		Format   string `json:"format"`
	}
	if err := json.Unmarshal(out, &infos); err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	var chain []string
	for _, in := range infos {
		chain = append(chain, in.Filename)
	}
	return chain
}

func shortKeys(ks []string) []string {
	var out []string
	for _, k := range ks {
		out = append(out, fmt.Sprintf("%.12s", k))
	}
	return out
}

// stepsTemplate is a template whose customizers are the given JSON objects.
func stepsTemplate(t *testing.T, customizers ...string) *tmpl.Template {
	t.Helper()
	return props(t, "2022-07-01", `"customize": [`+strings.Join(customizers, ", ")+`], `+vhdOnly)
}

// inline is a Shell customizer running one line.
func inline(name, line string) string {
	return fmt.Sprintf(`{"type": "Shell", "name": %q, "inline": [%q]}`, name, line)
}

// TestLayerCacheHit: the same template again restores the last layer and
// runs no customizer; with only the last customizer changed it restores
// layer 2, runs customizer 3 alone, and saves it as a new layer 3.
func TestLayerCacheHit(t *testing.T) {
	e := newLayerEnv(t)
	tA := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "echo three"))

	a := e.build(t, tA, buildOpts{}).ok(t)
	a.assertLayers(t, "", 0, []int{0, 1, 2, 3})
	a.assertRan(t, "echo one", "echo two", "echo three")
	a.assertLog(t, "layer cache: no layer for this source and VM shape yet; booting the source image, and saving a layer after each step",
		"layer cache: saved layer 0 (the booted source image)",
		`layer cache: saved layer 1 (after customizer 1/3 "one" (Shell))`,
		`layer cache: saved layer 3 (after customizer 3/3 "three" (Shell))`)
	if !a.j.has("start VM") || a.j.has("start VM from") {
		t.Errorf("the first build did not boot the source:\n%s", a.j)
	}
	metas := e.assertCache(t, a.key(t, 0), a.key(t, 1), a.key(t, 2), a.key(t, 3))
	for i := 0; i <= 3; i++ {
		if m := metas[a.key(t, i)]; m.Step != i || m.SourceSHA256 != e.base.DiskSHA256 || m.Identity.User != BuildUser {
			t.Errorf("layer %d meta: %+v", i, m)
		}
	}

	again := e.build(t, tA, buildOpts{}).ok(t)
	again.assertLayers(t, a.key(t, 3), 3, []int{})
	again.assertRan(t)
	again.assertLog(t, fmt.Sprintf("layer cache: reusing customizers 1-3 of 3 (layer %.12s, made ", a.key(t, 3)), "); running 0",
		fmt.Sprintf("build VM restored from layer %.12s", a.key(t, 3)),
		"[one] reused from the layer cache: not run", "[three] reused from the layer cache: not run")
	if !again.j.has("start VM from state") || again.j.has("checkpoint") {
		t.Errorf("the rebuild did not restore, or saved a layer:\n%s", again.j)
	}
	if len(again.res.Outputs) != 1 {
		t.Errorf("outputs %+v", again.res.Outputs)
	}
	e.assertCache(t, a.key(t, 0), a.key(t, 1), a.key(t, 2), a.key(t, 3))

	tB := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "echo three, changed"))
	b := e.build(t, tB, buildOpts{}).ok(t)
	b.assertLayers(t, a.key(t, 2), 2, []int{3})
	b.assertRan(t, "echo three, changed")
	b.assertLog(t, fmt.Sprintf("layer cache: reusing customizers 1-2 of 3 (layer %.12s, made ", a.key(t, 2)), "); running 1",
		`layer cache: saved layer 3 (after customizer 3/3 "three" (Shell))`)
	if b.key(t, 3) == a.key(t, 3) {
		t.Error("the changed customizer 3 was saved under the old layer 3's key")
	}
	metas = e.assertCache(t, a.key(t, 0), a.key(t, 1), a.key(t, 2), a.key(t, 3), b.key(t, 3))
	if m := metas[b.key(t, 3)]; m.Parent != a.key(t, 2) || m.Step != 3 {
		t.Errorf("new layer 3: parent %.12s step %d, want layer 2 (%.12s)", m.Parent, m.Step, a.key(t, 2))
	}

	// And the new layer is a hit in turn.
	b2 := e.build(t, tB, buildOpts{}).ok(t)
	b2.assertLayers(t, b.key(t, 3), 3, []int{})
	b2.assertRan(t)
}

// scriptFiles serves mutable scripts on 127.0.0.1.
type scriptFiles struct {
	mu    sync.Mutex
	files map[string]string
	srv   *httptest.Server
}

func newScriptFiles(t *testing.T) *scriptFiles {
	s := &scriptFiles{files: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scriptFiles) set(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
}

// TestLayerCacheMiss: a change to an earlier customizer, to its definition
// or to the bytes of the script it downloads, restores the layer before it
// and reuses nothing after it; a change after the customizers (distribute)
// changes no layer.
func TestLayerCacheMiss(t *testing.T) {
	// variant is a template of three customizers: the first downloads
	// /one.sh, the others run inline lines.
	type variant struct {
		script   string // /one.sh's bytes when the build runs
		checksum bool   // the first customizer names the script's sha256
		name2    string
		line2    string
		output   string
	}
	a := variant{script: "#!/bin/sh\necho one\n", checksum: true, name2: "two", line2: "echo two", output: "out"}
	tests := []struct {
		name   string
		change func(*variant)
		from   int // the layer the rebuild restores
		ran    []string
	}{
		{"second customizer's line", func(v *variant) { v.line2 = "echo two, changed" }, 1, []string{"echo two, changed", "echo three"}},
		{"second customizer's name", func(v *variant) { v.name2 = "second" }, 1, []string{"echo two", "echo three"}},
		{"first customizer's script bytes, checksum updated", func(v *variant) { v.script = "#!/bin/sh\necho one, changed\n" },
			0, []string{"echo one, changed", "echo two", "echo three"}},
		{"first customizer's script bytes, no checksum", func(v *variant) { v.checksum = false; v.script = "#!/bin/sh\necho one, changed\n" },
			0, []string{"echo one, changed", "echo two", "echo three"}},
		{"distribute target", func(v *variant) { v.output = "other" }, 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLayerEnv(t)
			files := newScriptFiles(t)
			template := func(v variant) *tmpl.Template {
				one := fmt.Sprintf(`{"type": "Shell", "name": "one", "scriptUri": "%s/one.sh"`, files.srv.URL)
				if v.checksum {
					one += fmt.Sprintf(`, "sha256Checksum": "%s"`, sha(v.script))
				}
				one += "}"
				return props(t, "2022-07-01", `"customize": [`+one+`, `+inline(v.name2, v.line2)+`, `+inline("three", "echo three")+`],
				  "distribute": [{"type": "VHD", "runOutputName": "`+v.output+`"}]`)
			}
			b := a
			tt.change(&b)
			if !b.checksum {
				a.checksum = false // the same template before and after
			}
			files.set("/one.sh", a.script)
			first := e.build(t, template(a), buildOpts{}).ok(t)
			first.assertLayers(t, "", 0, []int{0, 1, 2, 3})
			first.assertRan(t, "echo one", "echo two", "echo three")

			files.set("/one.sh", b.script)
			second := e.build(t, template(b), buildOpts{}).ok(t)
			var built []int
			want := []string{first.key(t, 0), first.key(t, 1), first.key(t, 2), first.key(t, 3)}
			for i := tt.from + 1; i <= 3; i++ {
				built = append(built, i)
				if second.key(t, i) == first.key(t, i) {
					t.Errorf("layer %d kept its key", i)
				}
				want = append(want, second.key(t, i))
			}
			if built == nil {
				built = []int{}
			}
			second.assertLayers(t, first.key(t, tt.from), tt.from, built)
			second.assertRan(t, tt.ran...)
			if tt.from == 0 {
				second.assertLog(t, fmt.Sprintf("layer cache: restoring the booted source image (layer %.12s); running all 3 customizers", first.key(t, 0)))
			} else {
				second.assertLog(t, fmt.Sprintf("layer cache: reusing customizers 1-%d of 3 (layer %.12s, made ", tt.from, first.key(t, tt.from)))
			}
			e.assertCache(t, want...)
		})
	}
}

// TestLayerCacheFailure: a customizer that fails leaves the layers of the
// customizers before it and none of its own (nor a pending directory); the
// fixed template then starts after them.
func TestLayerCacheFailure(t *testing.T) {
	e := newLayerEnv(t)
	broken := stepsTemplate(t, inline("one", "echo one"), inline("two", "exit-one"), inline("three", "echo three"))
	f := e.build(t, broken, buildOpts{rules: []rule{{match: "exit-one", exit: 1}}})
	if f.err == nil || !strings.Contains(f.err.Error(), `customizer 2/3 "two" (Shell) failed with exit code 1`) {
		t.Fatalf("error %v", f.err)
	}
	f.assertLayers(t, "", 0, []int{0, 1})
	f.assertRan(t, "echo one", "exit-one")
	f.assertLog(t, "layer cache: saved layer 1")
	f.assertNotLog(t, "saved layer 2", "were removed")
	e.assertCache(t, f.key(t, 0), f.key(t, 1))

	fixed := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "echo three"))
	g := e.build(t, fixed, buildOpts{}).ok(t)
	g.assertLayers(t, f.key(t, 1), 1, []int{2, 3})
	g.assertRan(t, "echo two", "echo three")
	e.assertCache(t, f.key(t, 0), f.key(t, 1), g.key(t, 2), g.key(t, 3))
}

// TestLayerCacheInterrupted: a run that is canceled or times out keeps none
// of the layers it made; the layers earlier runs made stay.
func TestLayerCacheInterrupted(t *testing.T) {
	tests := []struct {
		name    string
		earlier bool // an earlier run made layers 0 and 1
		timeout time.Duration
		wantErr error
	}{
		{"canceled, empty cache", false, 0, ErrCanceled},
		{"canceled, after an earlier run", true, 0, ErrCanceled},
		{"timed out, after an earlier run", true, 2 * time.Second, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLayerEnv(t)
			var kept []string
			if tt.earlier {
				p := e.build(t, stepsTemplate(t, inline("one", "echo one")), buildOpts{}).ok(t)
				kept = []string{p.key(t, 0), p.key(t, 1)}
			}
			started := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.timeout == 0 {
				go func() {
					if waitClosed(started) {
						cancel()
					}
				}()
			}
			tp := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "hang-here"))
			r := e.build(t, tp, buildOpts{ctx: ctx, timeout: tt.timeout,
				rules: []rule{{match: "hang-here", hang: true, started: started}}})
			if !errors.Is(r.err, tt.wantErr) {
				t.Fatalf("error %v, want %v\n%s", r.err, tt.wantErr, r.j)
			}
			if !strings.Contains(r.err.Error(), `customizer 3/3 "three" (Shell)`) {
				t.Errorf("error %v: not interrupted in customizer 3", r.err)
			}
			// The run did save its layers as it went; they are gone, and
			// the manifest lists none.
			want := []int{0, 1, 2}
			from := ""
			if tt.earlier {
				want, from = []int{2}, kept[1]
			}
			if len(r.built()) != 0 || r.m.Layers.Restored != from {
				t.Errorf("the run restored %.12s and lists saved layers %v, want %.12s and none", r.m.Layers.Restored, r.built(), from)
			}
			r.assertLog(t, fmt.Sprintf("layer cache: the run was interrupted: its %d layers were removed", len(want)))
			e.assertCache(t, kept...)
		})
	}
}

// TestLayerCacheEviction: a cache bounded so that a second build's layers
// push it over evicts after that run: the least recently used layers, and
// never one a running build uses.
func TestLayerCacheEviction(t *testing.T) {
	e := newLayerEnv(t)
	tA := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "echo three"))
	// B shares only the booted source (layer 0) with A.
	tB := stepsTemplate(t, inline("one", "echo B one"), inline("two", "echo two"), inline("three", "echo three"))
	a := e.build(t, tA, buildOpts{}).ok(t)
	metas := e.assertCache(t, a.key(t, 0), a.key(t, 1), a.key(t, 2), a.key(t, 3))
	var sizeA, smallest int64
	for _, m := range metas {
		sizeA += m.Bytes
		if smallest == 0 || m.Bytes < smallest {
			smallest = m.Bytes
		}
	}
	if smallest <= 0 {
		t.Fatalf("layer sizes %v", metas)
	}
	// Room for A's four layers and half of one more.
	e.open(t, sizeA+smallest/2)

	// While C, which uses A's layer 3, runs, B's build pushes the cache
	// over: A's layers are in use, so B's own are evicted.
	tC := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "echo three"), inline("four", "hang-here"))
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cDone := make(chan *cachedBuild, 1)
	go func() {
		cDone <- e.build(t, tC, buildOpts{ctx: ctx, rules: []rule{{match: "hang-here", hang: true, started: started}}})
	}()
	if !waitClosed(started) {
		t.Fatal("C did not reach its fourth customizer")
	}
	b := e.build(t, tB, buildOpts{}).ok(t)
	b.assertLayers(t, a.key(t, 0), 0, []int{1, 2, 3})
	b.assertRan(t, "echo B one", "echo two", "echo three")
	// (C's pending layer 4 is there too: the whole cache is checked once
	// C has ended.)
	if got := listKeys(t, e.cache); !slices.Equal(got, sorted(a.key(t, 0), a.key(t, 1), a.key(t, 2), a.key(t, 3))) {
		t.Errorf("after B the cache lists %v, want A's four layers", shortKeys(got))
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(e.cacheLog.String(), fmt.Sprintf(`msg="layer cache: evicted" key=%.12s step=%d`, b.key(t, i), i)) {
			t.Errorf("the cache's log does not say B's layer %d was evicted:\n%s", i, e.cacheLog)
		}
	}
	cancel()
	c := <-cDone
	if !errors.Is(c.err, ErrCanceled) {
		t.Fatalf("C: %v", c.err)
	}
	c.assertLayers(t, a.key(t, 3), 3, []int{}) // layer 4 was pending when it was canceled
	e.assertCache(t, a.key(t, 0), a.key(t, 1), a.key(t, 2), a.key(t, 3))

	// Nothing runs now: B again pushes the cache over, and A's layers
	// after the shared layer 0, the least recently used, go.
	e.cacheLog = &syncBuffer{}
	e.open(t, sizeA+smallest/2)
	b2 := e.build(t, tB, buildOpts{}).ok(t)
	b2.assertLayers(t, a.key(t, 0), 0, []int{1, 2, 3})
	e.assertCache(t, a.key(t, 0), b2.key(t, 1), b2.key(t, 2), b2.key(t, 3))
	for i := 1; i <= 3; i++ {
		if !strings.Contains(e.cacheLog.String(), fmt.Sprintf(`msg="layer cache: evicted" key=%.12s step=%d`, a.key(t, i), i)) {
			t.Errorf("the cache's log does not say A's layer %d was evicted:\n%s", i, e.cacheLog)
		}
	}
	var total int64
	list, _ := e.cache.List()
	for _, m := range list {
		total += m.Bytes
	}
	if total > sizeA+smallest/2 {
		t.Errorf("the cache holds %d bytes, over its bound %d", total, sizeA+smallest/2)
	}
}

// TestLayerCacheConcurrent: builds started at once on one cache, of
// templates that share a prefix, all succeed and leave the cache
// consistent, whoever makes a shared layer.
func TestLayerCacheConcurrent(t *testing.T) {
	one, two := inline("one", "echo one"), inline("two", "echo two")
	tX := stepsTemplate(t, one, two, inline("three", "echo X"))
	tY := stepsTemplate(t, one, two, inline("three", "echo Y"))
	busy := "layer is being made by another build; no more layers this run"

	// Layers 0-2 exist: both builds restore layer 2 at once and save
	// their own layer 3.
	t.Run("both restore a shared layer", func(t *testing.T) {
		e := newLayerEnv(t)
		p := e.build(t, stepsTemplate(t, one, two), buildOpts{}).ok(t)
		x, y := concurrently(t, e, tX, tY, nil)
		for _, r := range []*cachedBuild{x, y} {
			r.ok(t)
			r.assertLayers(t, p.key(t, 2), 2, []int{3})
		}
		x.assertRan(t, "echo X")
		y.assertRan(t, "echo Y")
		e.assertCache(t, p.key(t, 0), p.key(t, 1), p.key(t, 2), x.key(t, 3), y.key(t, 3))
	})

	// X reserves layer 0 and is held before its boot until Y has looked
	// the cache up: Y finds layer 0 being made, and builds without saving.
	t.Run("one makes, the other is busy", func(t *testing.T) {
		e := newLayerEnv(t)
		xReserved, yBooting := make(chan struct{}), make(chan struct{})
		wrap := func(first bool) func(VMStarter) VMStarter {
			return func(start VMStarter) VMStarter {
				return func(ctx context.Context, cfg machine.Config) (VM, error) {
					if first {
						close(xReserved)
						if !waitClosed(yBooting) {
							return nil, errors.New("Y never booted")
						}
					} else {
						close(yBooting)
					}
					return start(ctx, cfg)
				}
			}
		}
		x, y := concurrently(t, e, tX, tY, func(i int) buildOpts {
			if i == 1 {
				<-xReserved
			}
			return buildOpts{wrap: wrap(i == 0)}
		})
		x.ok(t).assertLayers(t, "", 0, []int{0, 1, 2, 3})
		y.ok(t).assertLayers(t, "", 0, []int{})
		x.assertRan(t, "echo one", "echo two", "echo X")
		y.assertRan(t, "echo one", "echo two", "echo Y")
		y.assertLog(t, fmt.Sprintf("layer cache: layer 0: layer %.12s: %s", x.key(t, 0), busy))
		e.assertCache(t, x.key(t, 0), x.key(t, 1), x.key(t, 2), x.key(t, 3))
	})

	// No ordering: whatever interleaving happens, both succeed, every
	// layer saved is complete and consistent, and a build that saved no
	// layer says why.
	t.Run("free race", func(t *testing.T) {
		for round := 0; round < 3; round++ {
			e := newLayerEnv(t)
			x, y := concurrently(t, e, tX, tY, nil)
			var all []string
			for _, r := range []*cachedBuild{x.ok(t), y.ok(t)} {
				if r.m.Layers == nil {
					t.Fatal("no layers in the manifest")
				}
				for _, l := range r.m.Layers.Built {
					all = append(all, l.Key)
				}
				want := 4 // from layer 0 on
				if r.m.Layers.Restored != "" {
					want = 3 - r.m.Layers.ReusedCustomizers
				}
				if len(r.built()) < want && !strings.Contains(r.log, busy) &&
					!strings.Contains(r.log, "file already exists; no more layers this run") {
					t.Errorf("a build saved layers %v after restoring %d customizers, without saying why:\n%s",
						r.built(), r.m.Layers.ReusedCustomizers, r.log)
				}
			}
			x.assertRan(t, append([]string{"echo one", "echo two"}[x.m.Layers.ReusedCustomizers:], "echo X")...)
			y.assertRan(t, append([]string{"echo one", "echo two"}[y.m.Layers.ReusedCustomizers:], "echo Y")...)
			e.assertCache(t, all...)
		}
	})
}

// listKeys is the committed layers' keys, sorted.
func listKeys(t *testing.T, c *layer.Cache) []string {
	t.Helper()
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range list {
		out = append(out, m.Key)
	}
	sort.Strings(out)
	return out
}

func sorted(ks ...string) []string {
	sort.Strings(ks)
	return ks
}

// concurrently runs two builds over one cache at once; opts, if set, gives
// build i its options (called in its goroutine).
func concurrently(t *testing.T, e *layerEnv, a, b *tmpl.Template, opts func(i int) buildOpts) (*cachedBuild, *cachedBuild) {
	t.Helper()
	var out [2]*cachedBuild
	var wg sync.WaitGroup
	for i, tp := range []*tmpl.Template{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o buildOpts
			if opts != nil {
				o = opts(i)
			}
			out[i] = e.build(t, tp, o)
		}()
	}
	wg.Wait()
	return out[0], out[1]
}

// TestLayerCacheRestoreFails: when the restore of a layer fails the build
// boots the source instead, runs every customizer, succeeds, and saves no
// layer; the cache is as it was.
func TestLayerCacheRestoreFails(t *testing.T) {
	tA := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "echo three"))
	tB := stepsTemplate(t, inline("one", "echo one"), inline("two", "echo two"), inline("three", "echo three, changed"))
	// noSSH: a restored guest that never answers (a state QEMU loads but
	// the guest does not survive).
	noSSH := func(start VMStarter) VMStarter {
		return func(ctx context.Context, cfg machine.Config) (VM, error) {
			vm, err := start(ctx, cfg)
			if err == nil && cfg.Restore != nil {
				vm.(*fakeVM).sshWait = func(context.Context) error { return errors.New("connection reset by peer") }
			}
			return vm, err
		}
	}
	tests := []struct {
		name     string
		rebuild  *tmpl.Template
		from     int
		break_   func(t *testing.T, stateFile string)
		wrap     func(VMStarter) VMStarter
		contains string
	}{
		{name: "state file removed, full hit", rebuild: tA, from: 3,
			break_: func(t *testing.T, p string) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}, contains: "no such file or directory"},
		{name: "state file removed, last customizer changed", rebuild: tB, from: 2,
			break_: func(t *testing.T, p string) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}, contains: "no such file or directory"},
		{name: "restored guest does not answer", rebuild: tB, from: 2, wrap: noSSH, contains: "connection reset by peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLayerEnv(t)
			a := e.build(t, tA, buildOpts{}).ok(t)
			hit := a.key(t, tt.from)
			if tt.break_ != nil {
				tt.break_(t, filepath.Join(e.dir, hit, "state"))
			}
			r := e.build(t, tt.rebuild, buildOpts{wrap: tt.wrap}).ok(t)
			r.assertLayers(t, "", 0, []int{})
			r.assertRan(t, append([]string{"echo one", "echo two"}, tt.rebuild.Properties.Customize[2].Inline...)...)
			r.assertLog(t, fmt.Sprintf("layer cache: restoring layer %.12s failed: ", hit), tt.contains+"; booting the source image instead")
			r.assertNotLog(t, "saved layer")
			if got := r.j.all(); !slices.Contains(got, "start VM from state") || !slices.Contains(got, "start VM") {
				t.Errorf("journal: want a restore, then a cold boot:\n%s", r.j)
			}
			// The layer that could not be restored is gone, with the layers
			// that build on it; the ones below it stay.
			r.assertLog(t, fmt.Sprintf("layer cache: removed layer %.12s", hit))
			var left []string
			for i := range tt.from {
				left = append(left, a.key(t, i))
			}
			e.assertCache(t, left...)
		})
	}
}
