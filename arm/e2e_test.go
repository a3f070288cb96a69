package arm

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
)

// e2eDataDir is the cache shared with the build engine's tests, so the
// platform image is built once per machine.
func e2eDataDir() string {
	if d := os.Getenv("GOLDSMITH_TEST_DATA"); d != "" {
		return d
	}
	return "/var/tmp/goldsmith-test"
}

// TestDistributionEndToEnd builds a real image once (QEMU) and distributes
// it to a managed image, a gallery version in two regions and a VHD; checks
// every replica's sha256 and the VHD downloaded through its artifactUri;
// then builds a second template from the first one's gallery version.
func TestDistributionEndToEnd(t *testing.T) {
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
	data := e2eDataDir()
	run := disk.Exec{}
	cat, err := catalog.Open(data, catalog.WithRunner(run))
	if err != nil {
		t.Fatal(err)
	}
	b := &build.Builder{
		Disks:    disk.QemuImg{Run: run},
		StartVM:  build.StartMachine,
		Fetcher:  &customize.Fetcher{},
		CacheDir: filepath.Join(data, "cache"),
	}
	s := startSite(t, siteOptions{Builder: b, Platform: cat, Workers: 1})

	putGroup(t, s, "rg1")
	gal := rgPath("rg1") + "/providers/Microsoft.Compute/galleries/gal"
	def := gal + "/images/web"
	s.call(t, "PUT", gal, gv, map[string]any{"location": "westus2"})
	s.call(t, "PUT", def, gv, map[string]any{"location": "westus2", "properties": map[string]any{"osType": "Linux", "osState": "Generalized",
		"identifier": map[string]any{"publisher": "goldsmith", "offer": "e2e", "sku": "web"}}})
	img := rgPath("rg1") + "/providers/Microsoft.Compute/images/web"
	first := linuxTemplate("rg1", inline("echo built-by-goldsmith-e2e | sudo tee /etc/goldsmith-e2e"))
	first["properties"].(map[string]any)["distribute"] = []any{
		map[string]any{"type": "ManagedImage", "runOutputName": "managed", "location": "westus2", "imageId": img},
		map[string]any{"type": "SharedImage", "runOutputName": "sig", "galleryImageId": def,
			"targetRegions": []any{map[string]any{"name": "westus2"}, map[string]any{"name": "eastus"}}},
		map[string]any{"type": "VHD", "runOutputName": "vhd"},
	}
	submit(t, s, "rg1", "first", v24, first)
	start := time.Now()
	op := pollRun(t, s, run1(t, s, "first"))
	t.Logf("first build and distribution: %s, %v", time.Since(start).Round(time.Second), op["status"])
	got := getJSON(t, s, tmplPath("rg1", "first"), v24)
	if st := str(got, "properties", "lastRunStatus", "runState"); st != "Succeeded" {
		t.Fatalf("first run: %v", dig(got, "properties", "lastRunStatus"))
	}
	// The log holds the phases and the customizer's own output.
	logResp := get(t, s.URL+"/goldsmith/v1"+tmplPath("rg1", "first")+"/runs/latest/log", testToken)
	logText, _ := io.ReadAll(logResp.Body)
	logResp.Body.Close()
	for _, want := range []string{"==> Building", "==> Customizing", "==> Distributing", "built-by-goldsmith-e2e"} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("customization.log lacks %q:\n%s", want, tail(string(logText), 4000))
		}
	}
	outs := map[string]map[string]any{}
	for _, o := range getJSON(t, s, tmplPath("rg1", "first")+"/runOutputs", v24)["value"].([]any) {
		outs[str(o.(map[string]any), "name")] = o.(map[string]any)
	}
	verID := str(outs["sig"], "properties", "artifactId")
	for _, id := range []string{img, verID} {
		art := artifactOf(t, s, id)
		for _, region := range art.Regions {
			sum, _, err := disk.SHA256File(context.Background(), regionBlob(s, region, art.SHA256))
			if err != nil || sum != art.SHA256 {
				t.Errorf("%s in %s: sha256 %s (%v), want %s", id, region, sum, err, art.SHA256)
			}
		}
		t.Logf("%s: %s %d bytes, virtual %d, regions %v", id, art.Format, art.Size, art.VirtualSize, art.Regions)
	}
	if regions := artifactOf(t, s, verID).Regions; strings.Join(regions, ",") != "westus2,eastus" {
		t.Errorf("version regions %v", regions)
	}
	vhd := filepath.Join(t.TempDir(), "out.vhd")
	resp := get(t, str(outs["vhd"], "properties", "artifactUri"), "")
	f, err := os.Create(vhd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := disk.WriteSparse(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	f.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("VHD download: %s", resp.Status)
	}
	if ft, err := disk.CheckFixedVHD(vhd); err != nil {
		t.Errorf("downloaded VHD: %v", err)
	} else {
		t.Logf("VHD: fixed, %d bytes virtual", ft.CurrentSize)
	}

	// A second template builds on the first one's gallery version.
	second := linuxTemplate("rg1", inline(`test "$(cat /etc/goldsmith-e2e)" = built-by-goldsmith-e2e`, "echo second | sudo tee -a /etc/goldsmith-e2e"))
	second["properties"].(map[string]any)["source"] = map[string]any{"type": "SharedImageVersion", "imageVersionId": def + "/versions/latest"}
	second["properties"].(map[string]any)["distribute"] = []any{map[string]any{"type": "VHD", "runOutputName": "vhd"}}
	if _, c := submit(t, s, "rg1", "second", v24, second); str(c, "properties", "provisioningState") != "Succeeded" {
		t.Fatalf("second: %v", dig(c, "properties", "provisioningError"))
	}
	start = time.Now()
	pollRun(t, s, run1(t, s, "second"))
	got = getJSON(t, s, tmplPath("rg1", "second"), v24)
	t.Logf("second build: %s", time.Since(start).Round(time.Second))
	if st := str(got, "properties", "lastRunStatus", "runState"); st != "Succeeded" {
		logs := get(t, s.URL+"/goldsmith/v1"+tmplPath("rg1", "second")+"/runs/latest/log", testToken)
		defer logs.Body.Close()
		buf := new(strings.Builder)
		_, _ = io.Copy(buf, logs.Body)
		t.Fatalf("second run: %v\n%s", dig(got, "properties", "lastRunStatus"), tail(buf.String(), 4000))
	}
	if ev := str(got, "properties", "source", "exactVersion"); ev != verID {
		t.Errorf("second's source exactVersion %q, want %s", ev, verID)
	}
}

// run1 starts a run.
func run1(t *testing.T, s *site, name string) string {
	t.Helper()
	resp, body := s.call(t, http.MethodPost, tmplPath("rg1", name)+"/run", v24, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("run: %s %v", resp.Status, body)
	}
	return resp.Header.Get("Azure-AsyncOperation")
}

// pollRun waits for a real build's operation (minutes under TCG).
func pollRun(t *testing.T, s *site, url string) map[string]any {
	t.Helper()
	var op map[string]any
	waitFor(t, "run "+url, 25*time.Minute, func() bool {
		time.Sleep(time.Second)
		_, body := s.call(t, http.MethodGet, url, "", nil)
		op = body
		return str(body, "status") != "InProgress"
	})
	return op
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
