package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/goldsmith-dev/goldsmith/internal/corpus"
	"github.com/goldsmith-dev/goldsmith/internal/standin"
)

// lookupChromium finds Debian's chromium (scripts/setup installs it): the
// test fails without it in CI, and is skipped elsewhere.
func lookupChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if corpus.Required() {
		t.Fatal("chromium (Debian package chromium, installed by scripts/setup) is required here (GOLDSMITH_REQUIRE_CORPUS or CI is set)")
	}
	t.Skip("chromium is not installed (scripts/setup installs it)")
	return ""
}

// testDataDir is the platform image cache shared with the build engine's
// tests, so the Debian image is built once per machine.
func testDataDir() string {
	if d := os.Getenv("GOLDSMITH_TEST_DATA"); d != "" {
		return d
	}
	return "/var/tmp/goldsmith-test"
}

// realEngineDir skips t unless the real build engine can run here (its
// tools, and root to build the platform image), and returns the data
// directory whose platform image cache the engine's tests share.
func realEngineDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (the real build engine needs it; -short uses the stand-in)", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("building the platform image needs root (-short uses the stand-in)")
	}
	return testDataDir()
}

// TestConsoleInBrowser drives the web console in headless Chromium against
// `goldsmith serve` (its own code, runServe) on 127.0.0.1: sign in; create
// examples/hello-vhd.json after seeing and fixing a deliberately wrong field
// shown inline; run it and see log lines arrive while it runs and the phase
// timeline fill; see Succeeded; download the VHD through the page's link and
// check its footer; delete the template and see it gone; and a change
// without the CSRF token gets 403. Screenshots of each page go to
// $GOLDSMITH_SCREENSHOTS (or the test's temporary directory).
//
// With -short the builds run on the STAND-IN EXECUTOR (internal/standin: no
// VM boots, the console and the service are what is proved); without it the
// build engine boots a QEMU VM (minutes under TCG).
func TestConsoleInBrowser(t *testing.T) {
	chromium := lookupChromium(t)
	const token = "console-browser-test-token"
	t.Setenv("GOLDSMITH_TOKEN", token)
	f := serveFlags{listen: "127.0.0.1:0", dataDir: t.TempDir(), workers: 1, logLevel: "info", maxISOGiB: 1}
	budget := 3 * time.Minute
	if testing.Short() {
		// Long enough to watch the log and the timeline while it runs.
		f.executor = standin.Executor{Duration: 6 * time.Second, DiskSize: 2 << 20}
	} else {
		f.builderDir = realEngineDir(t)
		budget = 20 * time.Minute
	}
	srv := startServeWith(t, f)
	shots := os.Getenv("GOLDSMITH_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	// The first Run starts the browser; its context must not time out.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	b := &tab{t: t, ctx: ctx, shots: shots}
	// A signed-out browser sees only the sign-in page.
	b.do(chromedp.Navigate(srv.url + "/console/templates"))
	b.waitJS("the sign-in page", `location.pathname === "/console/signin" && !!document.getElementById("token")`, 10*time.Second)
	b.shot("signin")
	b.do(chromedp.SetValue(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS(`#token-form button`)))
	b.waitJS("the templates page after sign-in", `location.pathname === "/console/templates" && !!document.querySelector("nav")`, 10*time.Second)

	// Create the example after fixing a wrong field the form shows inline.
	example, err := os.ReadFile("../../examples/hello-vhd.json")
	if err != nil {
		t.Fatal(err)
	}
	good := string(example)
	wrong := strings.Replace(good, `"type": "Shell"`, `"type": "Shel"`, 1)
	b.do(chromedp.Navigate(srv.url+"/console/templates/new"), chromedp.WaitVisible(chromedp.ID("source")))
	b.do(chromedp.SetValue(chromedp.ID("group"), "console-e2e"), chromedp.SetValue(chromedp.ID("name"), "hello"),
		chromedp.SetValue(chromedp.ID("source"), wrong))
	b.js(`document.getElementById("source").dispatchEvent(new Event("input", {bubbles: true}))`)
	b.waitJS("the inline problem at properties.customize[0].type",
		`[...document.querySelectorAll("#check .problems code.path")].some(e => e.textContent === "properties.customize[0].type") && document.getElementById("create-button").disabled`,
		10*time.Second)
	b.shot("new-template-problem")
	b.do(chromedp.SetValue(chromedp.ID("source"), good))
	b.js(`document.getElementById("source").dispatchEvent(new Event("input", {bubbles: true}))`)
	b.waitJS("no problems", `document.getElementById("problems-h").textContent === "No problems" && !document.getElementById("create-button").disabled`, 10*time.Second)
	b.shot("new-template-ok")
	b.do(chromedp.Click(chromedp.ID("create-button")))
	b.waitJS("the template page", `location.pathname.endsWith("/console-e2e/hello")`, 10*time.Second)
	// Submission is asynchronous: the page updates itself until it is done.
	b.waitJS("provisioning Succeeded", `(document.getElementById("provisioning") || {}).textContent === "Succeeded" && !!document.getElementById("action-run")`, 60*time.Second)
	b.shot("template")

	// Run, confirmed.
	b.do(chromedp.Click(chromedp.ID("action-run")))
	b.waitJS("the run confirmation", `!!document.getElementById("confirm")`, 10*time.Second)
	b.shot("confirm-run")
	b.do(chromedp.Click(chromedp.ID("confirm")))
	b.waitJS("the run page", `location.pathname.includes("/runs/") && !!document.getElementById("log")`, 10*time.Second)
	templateID := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/console-e2e/providers/Microsoft.VirtualMachineImages/imageTemplates/hello"

	// Log lines arrive while the run goes (the API says it is still
	// running after the page has them), and the timeline fills.
	type live struct {
		Streamed int    `json:"streamed"`
		Phases   int    `json:"phases"`
		State    string `json:"state"`
	}
	probe := `({streamed: Number(document.getElementById("log").dataset.streamed || 0),
		phases: document.querySelectorAll("#timeline li").length,
		state: document.getElementById("run-state").textContent.trim()})`
	var streamedLive bool
	phasesSeen := map[int]bool{}
	deadline := time.Now().Add(budget - time.Minute)
	for {
		var l live
		l, err = chromedp.Run(ctx, chromedp.Evaluate[live](probe))
		if err != nil {
			t.Fatalf("read the run page: %v", err)
		}
		phasesSeen[l.Phases] = true
		if l.Streamed > 0 && !streamedLive {
			if state := runState(t, srv.url, token, templateID); state == "Running" {
				streamedLive = true
				t.Logf("%d log lines arrived while the run was %s; %d phases on the timeline", l.Streamed, state, l.Phases)
				b.shot("run-live")
			}
		}
		if l.State != "Running" && l.State != "Canceling" {
			t.Logf("the run ended %s", l.State)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end in time (page says %+v)", l)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !streamedLive {
		t.Error("no log line arrived in the page while the run was going")
	}
	if len(phasesSeen) < 2 {
		t.Errorf("the timeline did not fill as the run went: saw phase counts %v", phasesSeen)
	}
	b.waitJS("Succeeded with its outputs", `document.getElementById("run-state").textContent.trim() === "Succeeded" && !!document.querySelector("a.download")`, 30*time.Second)
	var phases []string
	phases, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#timeline li")].map(e => e.dataset.phase)`))
	if err != nil || len(phases) < 4 || phases[len(phases)-1] != "Distributing" {
		t.Errorf("the finished timeline: %v (%v), want Queued … Distributing", phases, err)
	}
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector("#steps td") && [...document.querySelectorAll("#steps tbody tr")].length === 1`)); err != nil || !ok {
		t.Errorf("the customizers table does not list the one customizer (%v)", err)
	}
	b.shot("run-succeeded")

	// Download the VHD through the page's link.
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		yes := true
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &yes})
		return err
	}), chromedp.Click(chromedp.CSS("a.download")))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the VHD download was canceled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(downloads, ev.GUID)
			break
		}
	}
	checkVHDFooter(t, file)

	// The other pages.
	for _, p := range []struct{ path, name string }{{"/", "overview"}, {"/console/templates", "templates"},
		{"/console/galleries", "galleries"}, {"/console/images", "images"}, {"/console/catalog", "catalog"}} {
		b.do(chromedp.Navigate(srv.url + p.path))
		b.waitJS(p.name, `!!document.querySelector("main h1")`, 10*time.Second)
		b.shot(p.name)
	}
	b.do(chromedp.EmulateViewport(390, 844))
	b.do(chromedp.Navigate(srv.url + "/"))
	b.waitJS("the overview on a phone", `!!document.querySelector("main h1")`, 10*time.Second)
	b.shot("overview-phone")
	b.do(chromedp.EmulateViewport(1280, 900))

	// A change without the CSRF token is refused; with it, it is taken.
	status := func(withToken bool) int {
		expr := fmt.Sprintf(`(async () => {
			const h = %v ? {"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content} : {};
			const r = await fetch("/console/t/00000000-0000-0000-0000-000000000000/console-e2e/hello/delete", {method: "POST", headers: h, redirect: "manual"});
			return r.status; })()`, withToken)
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := status(false); n != http.StatusForbidden {
		t.Errorf("delete without the CSRF token: %d, want 403", n)
	}
	if runState(t, srv.url, token, templateID) == "" {
		t.Fatal("the template went although the change had no CSRF token")
	}

	// Delete, confirmed, and see it gone.
	b.do(chromedp.Navigate(srv.url + "/console/t/00000000-0000-0000-0000-000000000000/console-e2e/hello"))
	b.waitJS("the template page", `!!document.getElementById("action-delete")`, 10*time.Second)
	b.do(chromedp.Click(chromedp.ID("action-delete")))
	b.waitJS("the delete confirmation", `!!document.getElementById("confirm")`, 10*time.Second)
	b.shot("confirm-delete")
	b.do(chromedp.Click(chromedp.ID("confirm")))
	b.waitJS("the template gone from the list", `location.pathname === "/console/templates" && !!document.getElementById("no-templates")`, 60*time.Second)
	b.shot("templates-after-delete")
	t.Logf("screenshots in %s", shots)
}

// tab is the browser tab a test drives.
type tab struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *tab) js(expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[chromedp.Void](expr)); err != nil {
		b.t.Fatal(err)
	}
}

// waitJS waits until expr is true in the page.
func (b *tab) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("timeout")
			html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			b.t.Fatalf("timed out waiting for %s (%v); the page:\n%s", what, err, html)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as NAME.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// runState asks the API (bearer token) for the template's latest run state;
// "" when the template does not exist.
func runState(t *testing.T, base, token, templateID string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/goldsmith/v1"+templateID+"/runs/latest", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct {
		State string `json:"state"`
	}
	if res.StatusCode != http.StatusOK {
		return ""
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.State
}

// checkVHDFooter checks a fixed VHD's footer: the last 512 bytes, cookie
// "conectix", disk type 2 (fixed), current size = the file less the footer.
func checkVHDFooter(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("the downloaded VHD: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < 512 {
		t.Fatalf("the downloaded VHD is %d bytes (%v)", st.Size(), err)
	}
	footer := make([]byte, 512)
	if _, err := f.ReadAt(footer, st.Size()-512); err != nil {
		t.Fatal(err)
	}
	size := int64(0)
	for _, b := range footer[48:56] {
		size = size<<8 | int64(b)
	}
	diskType := uint32(footer[60])<<24 | uint32(footer[61])<<16 | uint32(footer[62])<<8 | uint32(footer[63])
	if string(footer[:8]) != "conectix" || diskType != 2 || size != st.Size()-512 {
		t.Errorf("the downloaded VHD's footer: cookie %q, disk type %d, current size %d for a %d-byte file", footer[:8], diskType, size, st.Size())
	}
	t.Logf("downloaded a %d-byte fixed VHD through the page's link", st.Size())
}
