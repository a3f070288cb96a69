package arm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/resource"
)

const gv = "2024-03-03"

// regionBlob is where a region's store keeps a blob.
func regionBlob(s *site, region, sum string) string {
	st, _ := s.Svc.Regions().Store(region)
	return st.(*blob.Dir).Path(sum)
}

func getJSON(t *testing.T, s *site, path, version string) map[string]any {
	t.Helper()
	resp, b := s.call(t, http.MethodGet, path, version, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", path, resp.Status, b)
	}
	return b
}

func artifactOf(t *testing.T, s *site, id string) resource.Artifact {
	t.Helper()
	r, err := s.Svc.GetResource(context.Background(), id)
	if err != nil || r.Artifact == nil {
		t.Fatalf("%s: %v (artifact %v)", id, err, r.Artifact)
	}
	return *r.Artifact
}

// TestDistribution distributes one (stand-in) build to a managed image, a
// gallery version in two regions, a VHD and a managed image in a missing
// group; checks the replicas, the signed VHD URL, the partial failure and
// its retry, the sources that read the stores, and that deleting frees the
// bytes.
func TestDistribution(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(200 * time.Millisecond)})
	putGroup(t, s, "rg1")
	gal := rgPath("rg1") + "/providers/Microsoft.Compute/galleries/gal"
	def := gal + "/images/base"
	s.call(t, "PUT", gal, gv, map[string]any{"location": "westus2"})
	s.call(t, "PUT", def, gv, map[string]any{"location": "westus2", "properties": map[string]any{"osType": "Linux", "osState": "Generalized",
		"identifier": map[string]any{"publisher": "p", "offer": "o", "sku": "s"}}})
	img := rgPath("rg1") + "/providers/Microsoft.Compute/images/img"
	late := rgPath("late") + "/providers/Microsoft.Compute/images/img"
	body := linuxTemplate("rg1", inline("echo hi"))
	body["properties"].(map[string]any)["distribute"] = []any{
		map[string]any{"type": "ManagedImage", "runOutputName": "managed", "location": "westus2", "imageId": img, "artifactTags": map[string]any{"team": "a"}},
		map[string]any{"type": "SharedImage", "runOutputName": "sig", "galleryImageId": def,
			"targetRegions": []any{map[string]any{"name": "westus2"}, map[string]any{"name": "East US", "replicaCount": 2, "storageAccountType": "Standard_ZRS"}}},
		map[string]any{"type": "VHD", "runOutputName": "vhd"},
		map[string]any{"type": "ManagedImage", "runOutputName": "late", "location": "westus2", "imageId": late},
	}
	submit(t, s, "rg1", "t1", v24, body)
	pollOp(t, s, run(t, s, "rg1", "t1"))
	got := getJSON(t, s, tmplPath("rg1", "t1"), v24)
	if st := str(got, "properties", "lastRunStatus", "runState"); st != "PartiallySucceeded" {
		t.Fatalf("runState %s: %v", st, dig(got, "properties", "lastRunStatus"))
	}
	msg := str(got, "properties", "lastRunStatus", "message")
	if !strings.Contains(msg, "late (ManagedImage)") || !strings.Contains(msg, "'late'") || strings.Contains(msg, "managed (") {
		t.Errorf("message does not name the failed target and why: %s", msg)
	}
	outs := map[string]map[string]any{}
	for _, o := range getJSON(t, s, tmplPath("rg1", "t1")+"/runOutputs", v24)["value"].([]any) {
		outs[str(o.(map[string]any), "name")] = o.(map[string]any)
	}
	for name, want := range map[string]string{"managed": "Succeeded", "sig": "Succeeded", "vhd": "Succeeded", "late": "Failed"} {
		if st := str(outs[name], "properties", "provisioningState"); st != want {
			t.Errorf("runOutput %s: %s, want %s", name, st, want)
		}
	}

	// The managed image and the gallery version, their replicas verified.
	im := getJSON(t, s, img, "2024-11-01")
	if str(im, "tags", "team") != "a" || str(im, "properties", "storageProfile", "osDisk", "osType") != "Linux" || str(im, "properties", "hyperVGeneration") != "V1" {
		t.Errorf("image: %v", im)
	}
	verID := str(outs["sig"], "properties", "artifactId")
	ver := getJSON(t, s, verID, gv)
	if str(ver, "name") != "1.0.0" || str(ver, "properties", "provisioningState") != "Succeeded" ||
		str(ver, "properties", "replicationStatus", "aggregatedState") != "Completed" {
		t.Errorf("version: %v", ver)
	}
	for _, e := range dig(ver, "properties", "replicationStatus", "summary").([]any) {
		if m := e.(map[string]any); m["state"] != "Completed" || m["progress"] != float64(100) {
			t.Errorf("replication of %v", m)
		}
	}
	art := artifactOf(t, s, verID)
	if strings.Join(art.Regions, ",") != "westus2,eastus" {
		t.Errorf("version regions %v", art.Regions)
	}
	for _, region := range art.Regions {
		sum, _, err := disk.SHA256File(context.Background(), regionBlob(s, region, art.SHA256))
		if err != nil || sum != art.SHA256 {
			t.Errorf("replica in %s: sha256 %s (%v), want %s", region, sum, err, art.SHA256)
		}
	}
	if a := artifactOf(t, s, img); a.SHA256 != art.SHA256 {
		t.Errorf("the image and the version hold the same bytes under different sums")
	}

	// The VHD: a signed URL, no token, Range, wrong or expired signature refused.
	vhdURL := str(outs["vhd"], "properties", "artifactUri")
	data := fetch(t, vhdURL, "", http.StatusOK)
	f := filepath.Join(t.TempDir(), "out.vhd")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.CheckFixedVHD(f); err != nil {
		t.Errorf("downloaded VHD: %v", err)
	}
	if part := fetch(t, vhdURL, "bytes=510-511", http.StatusPartialContent); string(part) != "\x55\xaa" {
		t.Errorf("range: %q", part)
	}
	u, _ := url.Parse(vhdURL)
	q := u.Query()
	q.Set("sig", strings.Repeat("A", 43))
	u.RawQuery = q.Encode()
	fetch(t, u.String(), "", http.StatusForbidden)
	rel := strings.TrimPrefix(u.Path, "/goldsmith/v1/blobs/")
	u.RawQuery = s.Svc.BlobSigner().Sign(rel, time.Now().Add(-time.Minute)).Encode()
	fetch(t, u.String(), "", http.StatusForbidden)
	u.RawQuery = ""
	fetch(t, u.String(), "", http.StatusUnauthorized)

	// Retry the failed target once its group exists, without building again.
	putGroup(t, s, "late")
	resp, b := s.call(t, http.MethodPost, "/goldsmith/v1"+tmplPath("rg1", "t1")+"/runs/latest/distribute", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %s %v", resp.Status, b)
	}
	pollOp(t, s, resp.Header.Get("Azure-AsyncOperation"))
	got = getJSON(t, s, tmplPath("rg1", "t1"), v24)
	if st := str(got, "properties", "lastRunStatus", "runState"); st != "Succeeded" {
		t.Fatalf("after retry: %v", dig(got, "properties", "lastRunStatus"))
	}
	if st := str(getJSON(t, s, tmplPath("rg1", "t1")+"/runOutputs/late", v24), "properties", "provisioningState"); st != "Succeeded" {
		t.Errorf("late after retry: %s", st)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.DataDir, "kept")); len(entries) != 0 {
		t.Errorf("kept outputs left after every target succeeded: %v", entries)
	}
	if resp, _ := s.call(t, http.MethodPost, "/goldsmith/v1"+tmplPath("rg1", "t1")+"/runs/latest/distribute", "", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("retrying a finished distribution: %s", resp.Status)
	}

	// The disk endpoint serves a stored disk with its digest.
	resp2 := get(t, s.URL+"/goldsmith/v1"+verID+"/disk?region=eastus", testToken)
	diskData, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 200 || resp2.Header.Get("X-Goldsmith-Disk-SHA256") != art.SHA256 || int64(len(diskData)) != art.Size {
		t.Errorf("disk download: %s %v (%d bytes)", resp2.Status, resp2.Header, len(diskData))
	}

	// Sources that read the stores, checked for the template's region.
	child := linuxTemplate("rg1", inline("echo child"))
	child["properties"].(map[string]any)["source"] = map[string]any{"type": "SharedImageVersion", "imageVersionId": def + "/versions/latest"}
	child["properties"].(map[string]any)["distribute"] = []any{map[string]any{"type": "SharedImage", "runOutputName": "sig", "galleryImageId": def}}
	if _, c := submit(t, s, "rg1", "child", v24, child); str(c, "properties", "provisioningState") != "Succeeded" {
		t.Fatalf("child: %v", dig(c, "properties", "provisioningError"))
	}
	pollOp(t, s, run(t, s, "rg1", "child"))
	c := getJSON(t, s, tmplPath("rg1", "child"), v24)
	if str(c, "properties", "lastRunStatus", "runState") != "Succeeded" || str(c, "properties", "source", "exactVersion") != verID {
		t.Errorf("child run: %v, source %v", dig(c, "properties", "lastRunStatus"), dig(c, "properties", "source"))
	}
	for _, tc := range []struct {
		name, loc, code string
		src             map[string]any
	}{
		{"img-elsewhere", "westeurope", "BadManagedImageSource", map[string]any{"type": "ManagedImage", "imageId": img}},
		{"sig-elsewhere", "westeurope", "BadSharedImageVersionSource", map[string]any{"type": "SharedImageVersion", "imageVersionId": verID}},
		{"sig-missing", "westus2", "BadSharedImageVersionSource", map[string]any{"type": "SharedImageVersion", "imageVersionId": def + "/versions/9.9.9"}},
	} {
		b := linuxTemplate("rg1", inline("echo x"))
		b["location"] = tc.loc
		b["properties"].(map[string]any)["source"] = tc.src
		resp, _ := s.call(t, http.MethodPut, tmplPath("rg1", tc.name), v24, b)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %s", tc.name, resp.Status)
		}
		pollOp(t, s, resp.Header.Get("Azure-AsyncOperation"))
		got := getJSON(t, s, tmplPath("rg1", tc.name), v24)
		if code := str(got, "properties", "provisioningError", "provisioningErrorCode"); code != tc.code {
			t.Errorf("%s: provisioningError %v, want %s", tc.name, dig(got, "properties", "provisioningError"), tc.code)
		}
	}
	b2 := linuxTemplate("rg1")
	b2["location"] = "southcentralus"
	if resp, e := s.call(t, http.MethodPut, tmplPath("rg1", "nowhere"), v24, b2); resp.StatusCode != 400 || str(e, "error", "code") != "LocationNotAvailableForResourceType" {
		t.Errorf("unconfigured region: %s %v", resp.Status, e)
	}

	// Deleting: 409 while nested resources exist; bytes freed once unreferenced.
	if resp, _ := s.call(t, http.MethodDelete, def, gv, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("deleting a definition with versions: %s", resp.Status)
	}
	if resp, _ := s.call(t, http.MethodDelete, gal, gv, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("deleting a gallery with definitions: %s", resp.Status)
	}
	for _, id := range []string{tmplPath("rg1", "child")} {
		if resp, _ := s.call(t, http.MethodDelete, id, v24, nil); resp.StatusCode != http.StatusAccepted {
			t.Errorf("DELETE %s: %s", id, resp.Status)
		}
	}
	childVer := artifactOf(t, s, def+"/versions/1.0.1")
	if resp, _ := s.call(t, http.MethodDelete, verID, gv, nil); resp.StatusCode != 200 {
		t.Fatalf("delete version: %s", resp.Status)
	}
	if fileExists(regionBlob(s, "eastus", art.SHA256)) {
		t.Error("the eastus replica outlived the only version that used it")
	}
	if !fileExists(regionBlob(s, "westus2", art.SHA256)) {
		t.Error("the westus2 blob went while managed images still use it")
	}
	for _, id := range []string{img, late} {
		if resp, _ := s.call(t, http.MethodDelete, id, "2024-11-01", nil); resp.StatusCode != 200 {
			t.Fatalf("delete %s: %s", id, resp.Status)
		}
	}
	if fileExists(regionBlob(s, "westus2", art.SHA256)) {
		t.Error("the westus2 blob outlived every image that used it")
	}
	if !fileExists(regionBlob(s, "westus2", childVer.SHA256)) {
		t.Error("the child's version lost its blob")
	}
	for _, id := range []string{def + "/versions/1.0.1", def, gal} {
		if resp, _ := s.call(t, http.MethodDelete, id, gv, nil); resp.StatusCode != 200 {
			t.Fatalf("delete %s: %s", id, resp.Status)
		}
	}
	if fileExists(regionBlob(s, "westus2", childVer.SHA256)) {
		t.Error("a blob outlived the gallery")
	}
}

func get(t *testing.T, u, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// fetch GETs u without a bearer token (optionally a Range) and checks the status.
func fetch(t *testing.T, u, rng string, want int) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		var e map[string]any
		_ = json.Unmarshal(data, &e)
		t.Fatalf("GET %s: %s, want %d (%v)", u, resp.Status, want, e)
	}
	return data
}
