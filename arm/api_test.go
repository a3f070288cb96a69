package arm

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	sub = "11111111-2222-3333-4444-555555555555"
	v24 = "2024-02-01"
	v20 = "2020-02-14"
	v19 = "2019-02-01-preview"
	v18 = "2018-02-01-preview"
)

func rgPath(rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }

func tmplPath(rg, name string) string {
	return rgPath(rg) + "/providers/Microsoft.VirtualMachineImages/imageTemplates/" + name
}

// linuxTemplate is a valid 2020-02-14+ template with the given customizers
// and a managed image target in rg.
func linuxTemplate(rg string, customize ...map[string]any) map[string]any {
	cust := make([]any, len(customize))
	for i, c := range customize {
		cust[i] = c
	}
	return map[string]any{
		"location": "westus2",
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{
			rgPath(rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1": map[string]any{}}},
		"properties": map[string]any{
			"source":    map[string]any{"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
			"customize": cust,
			"distribute": []any{map[string]any{"type": "ManagedImage", "runOutputName": "img", "location": "westus2",
				"imageId": rgPath(rg) + "/providers/Microsoft.Compute/images/out"}},
		},
	}
}

func inline(cmds ...string) map[string]any {
	return map[string]any{"type": "Shell", "name": "run " + strings.Join(cmds, "; "), "inline": cmds}
}

func putGroup(t *testing.T, s *site, rg string) {
	t.Helper()
	resp, body := s.call(t, http.MethodPut, rgPath(rg), "2021-04-01", map[string]any{"location": "westus2"})
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("create group %s: %s %v", rg, resp.Status, body)
	}
}

// pollOp follows an Azure-AsyncOperation URL until the operation ends.
func pollOp(t *testing.T, s *site, url string) map[string]any {
	t.Helper()
	var op map[string]any
	waitFor(t, "operation "+url, 30*time.Second, func() bool {
		resp, body := s.call(t, http.MethodGet, url, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("operation status answered %s: %v", resp.Status, body)
		}
		op = body
		return str(body, "status") != "InProgress"
	})
	return op
}

// submit PUTs a template and waits for its submission to end.
func submit(t *testing.T, s *site, rg, name, version string, body map[string]any) (map[string]any, map[string]any) {
	t.Helper()
	resp, created := s.call(t, http.MethodPut, tmplPath(rg, name), version, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT template: %s %v", resp.Status, created)
	}
	if got := str(created, "properties", "provisioningState"); got != "Creating" {
		t.Errorf("PUT answered provisioningState %q, want Creating", got)
	}
	async := resp.Header.Get("Azure-AsyncOperation")
	if !strings.HasPrefix(async, s.URL+"/subscriptions/"+sub+"/providers/Microsoft.VirtualMachineImages/locations/westus2/operations/") {
		t.Fatalf("Azure-AsyncOperation = %q, want an absolute operation URL", async)
	}
	op := pollOp(t, s, async)
	_, got := s.call(t, http.MethodGet, tmplPath(rg, name), version, nil)
	return op, got
}

func run(t *testing.T, s *site, rg, name string) (asyncOp string) {
	t.Helper()
	resp, body := s.call(t, http.MethodPost, tmplPath(rg, name)+"/run", v24, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("run: %s %v", resp.Status, body)
	}
	for _, h := range []string{"Azure-AsyncOperation", "Location"} {
		if !strings.HasPrefix(resp.Header.Get(h), "http://") {
			t.Errorf("run answered %s %q, want an absolute URL", h, resp.Header.Get(h))
		}
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("run answered without Retry-After")
	}
	return resp.Header.Get("Azure-AsyncOperation")
}

func TestBadRequests(t *testing.T) {
	s := startSite(t, siteOptions{})
	putGroup(t, s, "rg1")
	tests := []struct {
		name, method, path, version string
		body                        any
		token                       string
		status                      int
		code                        string
		flat                        bool // AIB's unwrapped envelope
	}{
		{"no token", "GET", tmplPath("rg1", "t"), v24, nil, "-", 401, "AuthenticationFailed", false},
		{"wrong token", "GET", tmplPath("rg1", "t"), v24, nil, "nope", 401, "InvalidAuthenticationToken", false},
		{"missing api-version", "GET", tmplPath("rg1", "t"), "", nil, "", 400, "MissingApiVersionParameter", false},
		{"unknown AIB api-version", "GET", tmplPath("rg1", "t"), "2099-01-01", nil, "", 400, "NoRegisteredProviderFound", false},
		{"unknown resource group api-version", "GET", rgPath("rg1"), "2099-01-01", nil, "", 400, "InvalidApiVersionParameter", false},
		{"unknown compute api-version", "GET", rgPath("rg1") + "/providers/Microsoft.Compute/images", "2001-01-01", nil, "", 400, "NoRegisteredProviderFound", false},
		{"malformed JSON", "PUT", tmplPath("rg1", "t"), v24, `{"location": "westus2",`, "", 400, "InvalidRequestContent", false},
		{"malformed JSON, flat envelope", "PUT", tmplPath("rg1", "t"), v20, `{"location": `, "", 400, "InvalidRequestContent", true},
		{"body not an object", "PUT", tmplPath("rg1", "t"), v24, `[1,2]`, "", 400, "InvalidRequestContent", false},
		{"empty body", "PUT", tmplPath("rg1", "t"), v24, ``, "", 400, "InvalidRequestContent", false},
		{"no location", "PUT", tmplPath("rg1", "t"), v24, map[string]any{"properties": map[string]any{}}, "", 400, "LocationRequired", false},
		{"bad name for the version", "PUT", tmplPath("rg1", "a.b"), v19, linuxTemplate("rg1"), "", 400, "InvalidParameter", true},
		{"unknown template", "GET", tmplPath("rg1", "nope"), v24, nil, "", 404, "ResourceNotFound", false},
		{"unknown template, flat envelope", "GET", tmplPath("rg1", "nope"), v18, nil, "", 404, "ResourceNotFound", true},
		{"template in unknown group", "GET", tmplPath("nogroup", "t"), v24, nil, "", 404, "ResourceGroupNotFound", false},
		{"PUT template in unknown group", "PUT", tmplPath("nogroup", "t"), v24, linuxTemplate("nogroup"), "", 404, "ResourceGroupNotFound", false},
		{"list templates of unknown group", "GET", rgPath("nogroup") + "/providers/Microsoft.VirtualMachineImages/imageTemplates", v24, nil, "", 404, "ResourceGroupNotFound", false},
		{"run unknown template", "POST", tmplPath("rg1", "nope") + "/run", v24, nil, "", 404, "ResourceNotFound", false},
		{"cancel unknown template", "POST", tmplPath("rg1", "nope") + "/cancel", v24, nil, "", 404, "ResourceNotFound", false},
		{"runOutput of unknown template", "GET", tmplPath("rg1", "nope") + "/runOutputs/x", v24, nil, "", 404, "ResourceNotFound", false},
		{"unknown operation", "GET", "/subscriptions/" + sub + "/providers/Microsoft.VirtualMachineImages/locations/westus2/operations/x", v24, nil, "", 404, "ResourceNotFound", false},
		{"unknown group", "GET", rgPath("nogroup"), "2021-04-01", nil, "", 404, "ResourceGroupNotFound", false},
		{"delete unknown group", "DELETE", rgPath("nogroup"), "2021-04-01", nil, "", 404, "ResourceGroupNotFound", false},
		{"unknown resource type", "GET", rgPath("rg1") + "/providers/Microsoft.Storage/storageAccounts/x", v24, nil, "", 404, "InvalidResourceType", false},
		{"image definition in unknown gallery", "PUT", rgPath("rg1") + "/providers/Microsoft.Compute/galleries/g/images/d", "2024-03-03",
			map[string]any{"location": "westus2", "properties": map[string]any{"osType": "Linux", "osState": "Generalized",
				"identifier": map[string]any{"publisher": "p", "offer": "o", "sku": "s"}}}, "", 404, "ParentResourceNotFound", false},
		{"images are made by runs", "PUT", rgPath("rg1") + "/providers/Microsoft.Compute/images/i", "2024-11-01",
			map[string]any{"location": "westus2"}, "", 405, "MethodNotAllowed", false},
		{"unknown image", "GET", rgPath("rg1") + "/providers/Microsoft.Compute/images/i", "2024-11-01", nil, "", 404, "ResourceNotFound", false},
		{"triggers before 2022-07-01", "GET", tmplPath("rg1", "t") + "/triggers", v20, nil, "", 400, "NoRegisteredProviderFound", true},
		{"bad skiptoken", "GET", rgPath("rg1") + "/providers/Microsoft.VirtualMachineImages/imageTemplates?$skiptoken=not*base64", v24, nil, "", 400, "InvalidSkipToken", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := testToken
			switch tt.token {
			case "-":
				token = ""
			case "":
			default:
				token = tt.token
			}
			resp, body := s.callWith(t, tt.method, tt.path, tt.version, tt.body, token)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s, want %d; body %v", resp.Status, tt.status, body)
			}
			code := str(body, "error", "code")
			if tt.flat {
				code = str(body, "code")
				if body["error"] != nil {
					t.Errorf("api-version %s answers AIB's unwrapped error, got %v", tt.version, body)
				}
			}
			if code != tt.code {
				t.Errorf("code %q, want %q; body %v", code, tt.code, body)
			}
			if resp.Header.Get("x-ms-error-code") != tt.code {
				t.Errorf("x-ms-error-code %q, want %q", resp.Header.Get("x-ms-error-code"), tt.code)
			}
		})
	}
	// Nothing half-written: the group still has no templates.
	_, list := s.call(t, "GET", rgPath("rg1")+"/providers/Microsoft.VirtualMachineImages/imageTemplates", v24, nil)
	if vals, _ := list["value"].([]any); len(vals) != 0 {
		t.Errorf("after bad requests the group has templates: %v", vals)
	}
	// Absent resources delete with 204.
	for _, p := range []string{tmplPath("rg1", "nope"), rgPath("rg1") + "/providers/Microsoft.Compute/images/nope"} {
		v := v24
		if strings.Contains(p, "Compute") {
			v = "2024-11-01"
		}
		if resp, _ := s.call(t, "DELETE", p, v, nil); resp.StatusCode != http.StatusNoContent {
			t.Errorf("DELETE %s: %s, want 204", p, resp.Status)
		}
	}
}

// A template that does not validate is kept, Failed, with AIB's code; it
// can be read in every apiVersion's shape and deleted.
func TestInvalidTemplateIsKeptFailed(t *testing.T) {
	s := startSite(t, siteOptions{})
	putGroup(t, s, "rg1")
	body := linuxTemplate("rg1", map[string]any{"type": "Bogus", "name": "x"})
	op, got := submit(t, s, "rg1", "Broken", v24, body)
	if str(op, "status") != "Failed" || str(op, "error", "code") != "BadCustomizerType" {
		t.Fatalf("operation = %v, want Failed with BadCustomizerType", op)
	}
	if str(got, "properties", "provisioningState") != "Failed" || str(got, "properties", "provisioningError", "provisioningErrorCode") != "BadCustomizerType" {
		t.Fatalf("template = %v", got["properties"])
	}
	if !strings.Contains(str(got, "properties", "provisioningError", "message"), "Bogus") {
		t.Errorf("provisioningError message does not name the bad type: %v", got["properties"])
	}
	if resp, _ := s.call(t, "GET", tmplPath("rg1", "broken"), v20, nil); resp.StatusCode != 200 {
		t.Errorf("GET in another casing and apiVersion: %s", resp.Status)
	}
	resp, b := s.call(t, "POST", tmplPath("rg1", "Broken")+"/run", v24, nil)
	if resp.StatusCode != http.StatusBadRequest || str(b, "error", "code") != "InvalidTemplateState" {
		t.Errorf("run of a failed template: %s %v", resp.Status, b)
	}
	deleteTemplate(t, s, "rg1", "Broken")
}

func deleteTemplate(t *testing.T, s *site, rg, name string) {
	t.Helper()
	resp, body := s.call(t, "DELETE", tmplPath(rg, name), v24, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE: %s %v", resp.Status, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, s.URL) {
		t.Fatalf("DELETE Location %q is not absolute", loc)
	}
	waitFor(t, "deletion", 30*time.Second, func() bool {
		r, b := s.call(t, "GET", loc, "", nil)
		switch r.StatusCode {
		case http.StatusAccepted:
			return false
		case http.StatusNoContent:
			return true
		}
		t.Fatalf("Location answered %s %v", r.Status, b)
		return true
	})
	if resp, _ := s.call(t, "GET", tmplPath(rg, name), v24, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after delete: %s", resp.Status)
	}
}

func TestSubmissionDownloads(t *testing.T) {
	script := "#!/bin/sh\necho hi\n"
	sum := sha256.Sum256([]byte(script))
	good := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("ab", 32)
	files := fileServer(t, map[string]string{"/ok.sh": script})
	huge := oversized(t)
	tests := []struct {
		name     string
		cust     map[string]any
		state    string
		code     string
		contains []string
	}{
		{"verified", map[string]any{"type": "Shell", "scriptUri": files.URL + "/ok.sh", "sha256Checksum": good}, "Succeeded", "", nil},
		{"no checksum", map[string]any{"type": "Shell", "scriptUri": files.URL + "/ok.sh"}, "Succeeded", "", nil},
		{"checksum mismatch", map[string]any{"type": "Shell", "scriptUri": files.URL + "/ok.sh", "sha256Checksum": wrong}, "Failed", "NoCustomizerScript",
			[]string{files.URL + "/ok.sh", "expected " + wrong, "actual " + good}},
		{"missing file", map[string]any{"type": "File", "sourceUri": files.URL + "/gone.txt", "destination": "/tmp/x"}, "Failed", "NoCustomizerScript",
			[]string{files.URL + "/gone.txt", "404"}},
		{"script over the cap", map[string]any{"type": "Shell", "scriptUri": huge.URL + "/length/script.sh"}, "Failed", "NoCustomizerScript",
			[]string{huge.URL + "/length/script.sh", "67108865 bytes is over the 67108864 byte limit for a script"}},
		{"script over the cap, no Content-Length", map[string]any{"type": "Shell", "scriptUri": huge.URL + "/stream/script.sh"}, "Failed", "NoCustomizerScript",
			[]string{huge.URL + "/stream/script.sh", "more than the 67108864 byte limit for a script"}},
		{"File over 20 MB", map[string]any{"type": "File", "sourceUri": huge.URL + "/stream/big.bin", "destination": "/tmp/big.bin"}, "Failed", "NoCustomizerScript",
			[]string{huge.URL + "/stream/big.bin", "more than the 20971520 byte limit for a File customizer's source", "< 20MB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSite(t, siteOptions{})
			putGroup(t, s, "rg1")
			op, got := submit(t, s, "rg1", "t1", v24, linuxTemplate("rg1", tt.cust))
			props, _ := got["properties"].(map[string]any)
			if props["provisioningState"] != tt.state {
				t.Fatalf("provisioningState %v, want %s (%v)", props["provisioningState"], tt.state, props["provisioningError"])
			}
			staging := str(got, "properties", "exactStagingResourceGroup")
			if staging == "" {
				t.Fatal("no exactStagingResourceGroup")
			}
			// Staged files are blobs in the (local) staging store; nothing
			// of a download stays behind.
			stagedFiles, _ := filepath.Glob(filepath.Join(s.DataDir, "staging", ".blobs", "sha256", "*", "*"))
			if left, _ := os.ReadDir(filepath.Join(s.DataDir, "downloads")); len(left) != 0 {
				t.Errorf("the submission left %d entries in downloads/", len(left))
			}
			if tt.state == "Succeeded" {
				if len(stagedFiles) != 1 {
					t.Errorf("staged files %v, want the script", stagedFiles)
				} else if data, _ := os.ReadFile(stagedFiles[0]); string(data) != script {
					t.Errorf("staged file holds %q", data)
				}
				return
			}
			if str(op, "error", "code") != tt.code || str(got, "properties", "provisioningError", "provisioningErrorCode") != tt.code {
				t.Errorf("operation %v / template %v, want code %s", op, props["provisioningError"], tt.code)
			}
			msg := str(got, "properties", "provisioningError", "message")
			for _, want := range tt.contains {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			if len(stagedFiles) != 0 {
				t.Errorf("a failed submission left staged files: %v", stagedFiles)
			}
			deleteTemplate(t, s, "rg1", "t1")
			gid := staging[strings.LastIndex(staging, "/")+1:]
			if resp, _ := s.call(t, "GET", rgPath(gid), "2021-04-01", nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("staging group %s outlived its template: %s", gid, resp.Status)
			}
		})
	}
}

// oversized serves one byte more than the script cap (64 MiB), generated as
// it goes: under /length/ with its Content-Length, under /stream/ without.
func oversized(t *testing.T) *httptest.Server {
	t.Helper()
	const size = 64<<20 + 1 // download.MaxScriptBytes + 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/length/") {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		} else {
			w.(http.Flusher).Flush() // headers out without a length: chunked
		}
		_, _ = io.CopyN(w, zeros{}, size)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestRunConflictLogsAndCancel(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(4 * time.Second)})
	putGroup(t, s, "rg1")
	if op, _ := submit(t, s, "rg1", "t1", v24, linuxTemplate("rg1", inline("echo one"), inline("echo two"))); str(op, "status") != "Succeeded" {
		t.Fatalf("submission: %v", op)
	}
	runOp := run(t, s, "rg1", "t1")
	resp, body := s.call(t, "POST", tmplPath("rg1", "t1")+"/run", v24, nil)
	if resp.StatusCode != http.StatusConflict || str(body, "error", "code") != "Conflict" {
		t.Errorf("second run: %s %v, want 409 Conflict", resp.Status, body)
	}
	// Follow the log live: lines arrive while the run goes.
	req, _ := http.NewRequest("GET", s.URL+"/goldsmith/v1"+tmplPath("rg1", "t1")+"/runs/latest/log?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	lresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer lresp.Body.Close()
	sc := bufio.NewScanner(lresp.Body)
	sawCustomizing := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "==> Customizing") {
			sawCustomizing = true
			break
		}
	}
	if !sawCustomizing {
		t.Fatal("the followed log never showed the Customizing phase")
	}
	_, got := s.call(t, "GET", tmplPath("rg1", "t1"), v24, nil)
	if str(got, "properties", "lastRunStatus", "runState") != "Running" || str(got, "properties", "lastRunStatus", "runSubState") != "Customizing" {
		t.Errorf("lastRunStatus while customizing: %v", dig(got, "properties", "lastRunStatus"))
	}
	// The build VM process is alive now.
	pids, _ := filepath.Glob(filepath.Join(s.DataDir, "work", "*", "vm.pid"))
	if len(pids) != 1 {
		t.Fatalf("pid files %v", pids)
	}
	resp, _ = s.call(t, "POST", tmplPath("rg1", "t1")+"/cancel", v24, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: %s", resp.Status)
	}
	cancelOp := pollOp(t, s, resp.Header.Get("Azure-AsyncOperation"))
	if str(cancelOp, "status") != "Succeeded" {
		t.Errorf("cancel operation %v", cancelOp)
	}
	if op := pollOp(t, s, runOp); str(op, "status") != "Canceled" {
		t.Errorf("run operation %v, want Canceled", op)
	}
	_, got = s.call(t, "GET", tmplPath("rg1", "t1"), v24, nil)
	if str(got, "properties", "lastRunStatus", "runState") != "Canceled" || !strings.Contains(str(got, "properties", "lastRunStatus", "message"), "Customizing") {
		t.Errorf("lastRunStatus after cancel: %v", dig(got, "properties", "lastRunStatus"))
	}
	// The followed log ends with the run, and says why.
	rest := ""
	for sc.Scan() {
		rest += sc.Text() + "\n"
	}
	if !strings.Contains(rest, "canceled") {
		t.Errorf("the log's end does not mention the cancel:\n%s", rest)
	}
	if left, _ := filepath.Glob(filepath.Join(s.DataDir, "work", "*")); len(left) != 0 {
		t.Errorf("scratch left after cancel: %v", left)
	}
	// Cancel with nothing running.
	if resp, _ := s.call(t, "POST", tmplPath("rg1", "t1")+"/cancel", v24, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("cancel with nothing running: %s", resp.Status)
	}
}

// Cancel works in every phase, including before the run starts.
func TestCancelEveryPhase(t *testing.T) {
	for _, phase := range []string{"Queued", "Building", "Customizing", "Distributing"} {
		t.Run(phase, func(t *testing.T) {
			s := startSite(t, siteOptions{Executor: standIn(3 * time.Second), Workers: 1})
			putGroup(t, s, "rg1")
			submit(t, s, "rg1", "t1", v24, linuxTemplate("rg1", inline("echo hi")))
			if phase == "Queued" {
				// Keep the only worker busy with another template.
				submit(t, s, "rg1", "busy", v24, linuxTemplate("rg1", inline("echo hi")))
				run(t, s, "rg1", "busy")
				waitFor(t, "busy to start", 10*time.Second, func() bool {
					_, got := s.call(t, "GET", tmplPath("rg1", "busy"), v24, nil)
					return str(got, "properties", "lastRunStatus", "runSubState") == "Building"
				})
			}
			runOp := run(t, s, "rg1", "t1")
			waitFor(t, "phase "+phase, 10*time.Second, func() bool {
				_, got := s.call(t, "GET", tmplPath("rg1", "t1"), v24, nil)
				return str(got, "properties", "lastRunStatus", "runSubState") == phase
			})
			resp, _ := s.call(t, "POST", tmplPath("rg1", "t1")+"/cancel", v24, nil)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("cancel: %s", resp.Status)
			}
			if op := pollOp(t, s, runOp); str(op, "status") != "Canceled" {
				t.Fatalf("run operation %v", op)
			}
			_, got := s.call(t, "GET", tmplPath("rg1", "t1"), v24, nil)
			if str(got, "properties", "lastRunStatus", "runState") != "Canceled" {
				t.Errorf("lastRunStatus %v", dig(got, "properties", "lastRunStatus"))
			}
			if resp, _ := s.call(t, "GET", rgPath("rg1")+"/providers/Microsoft.Compute/images/out", "2024-11-01", nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("a canceled run published its image: %s", resp.Status)
			}
		})
	}
}

// TestFailedRunAndPartialDistribution runs on the stand-in executor
// (resource.StandInExecutor), which fails a Shell customizer with "exit N"
// using the build engine's own error (customize.StepError), so the message
// asserted is the real engine's wording.
func TestFailedRunAndPartialDistribution(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(200 * time.Millisecond)})
	putGroup(t, s, "rg1")
	submit(t, s, "rg1", "fails", v24, linuxTemplate("rg1", inline("echo hi", "exit 3")))
	op := pollOp(t, s, run(t, s, "rg1", "fails"))
	_, got := s.call(t, "GET", tmplPath("rg1", "fails"), v24, nil)
	msg := str(got, "properties", "lastRunStatus", "message")
	if str(op, "status") != "Failed" || str(op, "error", "code") != "PackerBuildFailed" || str(got, "properties", "lastRunStatus", "runState") != "Failed" ||
		!strings.Contains(msg, `customizer 1/1 "run echo hi; exit 3" (Shell) failed with exit code 3`) {
		t.Errorf("failed run: op %v, lastRunStatus %v", op, dig(got, "properties", "lastRunStatus"))
	}

	// One target into a gallery definition that does not exist.
	body := linuxTemplate("rg1", inline("echo hi"))
	props := body["properties"].(map[string]any)
	props["distribute"] = append(props["distribute"].([]any), map[string]any{"type": "SharedImage", "runOutputName": "sig",
		"galleryImageId": rgPath("rg1") + "/providers/Microsoft.Compute/galleries/g/images/missing"})
	submit(t, s, "rg1", "partial", v24, body)
	op = pollOp(t, s, run(t, s, "rg1", "partial"))
	_, got = s.call(t, "GET", tmplPath("rg1", "partial"), v24, nil)
	if str(op, "status") != "Succeeded" || str(got, "properties", "lastRunStatus", "runState") != "PartiallySucceeded" ||
		!strings.Contains(str(got, "properties", "lastRunStatus", "message"), "missing") {
		t.Errorf("partial run: op %v, lastRunStatus %v", op, dig(got, "properties", "lastRunStatus"))
	}
	_, sig := s.call(t, "GET", tmplPath("rg1", "partial")+"/runOutputs/sig", v24, nil)
	_, img := s.call(t, "GET", tmplPath("rg1", "partial")+"/runOutputs/img", v24, nil)
	if str(sig, "properties", "provisioningState") != "Failed" || str(img, "properties", "provisioningState") != "Succeeded" {
		t.Errorf("runOutputs: sig %v img %v", sig, img)
	}
}

// Each apiVersion reads a template in its own shape.
func TestAPIVersionShapes(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(100 * time.Millisecond)})
	putGroup(t, s, "rg1")
	body := map[string]any{
		"location": "West US 2",
		"properties": map[string]any{
			"source":    map[string]any{"type": "PlatformImage", "publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "18.04.201903060"},
			"customize": []any{map[string]any{"type": "Shell", "name": "x", "inline": []any{"echo hi"}}},
			"distribute": []any{map[string]any{"type": "ManagedImage", "runOutputName": "img", "location": "westus2",
				"imageId": rgPath("rg1") + "/providers/Microsoft.Compute/images/old"}},
		},
	}
	if op, _ := submit(t, s, "rg1", "Old", v19, body); str(op, "status") != "Succeeded" {
		t.Fatalf("2019-02-01-preview submission: %v", op)
	}
	pollOp(t, s, run(t, s, "rg1", "Old"))
	tests := []struct {
		version, custType, distType, runState string
		identity, systemData                  bool
	}{
		{v18, "shell", "managedImage", "succeeded", false, false},
		{v19, "Shell", "ManagedImage", "Succeeded", false, false},
		{v24, "Shell", "ManagedImage", "Succeeded", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			_, got := s.call(t, "GET", tmplPath("rg1", "OLD"), tt.version, nil)
			if got["name"] != "Old" || got["location"] != "westus2" {
				t.Errorf("name %v location %v", got["name"], got["location"])
			}
			p := got["properties"].(map[string]any)
			c := p["customize"].([]any)[0].(map[string]any)
			d := p["distribute"].([]any)[0].(map[string]any)
			if c["type"] != tt.custType || d["type"] != tt.distType {
				t.Errorf("customizer %v, distributor %v", c["type"], d["type"])
			}
			if rs := str(got, "properties", "lastRunStatus", "runState"); rs != tt.runState {
				t.Errorf("runState %q, want %q", rs, tt.runState)
			}
			if _, ok := got["systemData"]; ok != tt.systemData {
				t.Errorf("systemData present %v, want %v", ok, tt.systemData)
			}
		})
	}
	// runOutputs: 2018 has artifactId only.
	_, ro := s.call(t, "GET", tmplPath("rg1", "Old")+"/runOutputs/img", v18, nil)
	if str(ro, "properties", "artifactId") == "" {
		t.Errorf("runOutput %v", ro)
	}
}

func TestPatchPerVersion(t *testing.T) {
	s := startSite(t, siteOptions{})
	putGroup(t, s, "rg1")
	submit(t, s, "rg1", "t1", v24, linuxTemplate("rg1", inline("echo hi")))
	newDist := []any{map[string]any{"type": "VHD", "runOutputName": "vhd"}}
	tests := []struct {
		version string
		body    map[string]any
		status  int
	}{
		{v19, map[string]any{"tags": map[string]any{"a": "1"}}, 200},
		{v19, map[string]any{"identity": map[string]any{"type": "None"}}, 400},
		{"2022-07-01", map[string]any{"properties": map[string]any{"distribute": newDist}}, 400},
		{"2023-07-01", map[string]any{"properties": map[string]any{"vmProfile": map[string]any{"vmSize": "Standard_D4s_v3"}}}, 400},
		{"2023-07-01", map[string]any{"properties": map[string]any{"distribute": newDist}}, 200},
		{v24, map[string]any{"properties": map[string]any{"vmProfile": map[string]any{"vmSize": "Standard_D4s_v3"}}}, 200},
		{v24, map[string]any{"properties": map[string]any{"distribute": []any{map[string]any{"type": "Nope", "runOutputName": "x"}}}}, 400},
		{v24, map[string]any{"properties": map[string]any{"source": map[string]any{}}}, 400},
	}
	for _, tt := range tests {
		resp, body := s.call(t, "PATCH", tmplPath("rg1", "t1"), tt.version, tt.body)
		if resp.StatusCode != tt.status {
			t.Errorf("PATCH %s %v: %s %v, want %d", tt.version, tt.body, resp.Status, body, tt.status)
		}
	}
	_, got := s.call(t, "GET", tmplPath("rg1", "t1"), v24, nil)
	d := got["properties"].(map[string]any)["distribute"].([]any)
	if len(d) != 1 || d[0].(map[string]any)["type"] != "VHD" || str(got, "properties", "vmProfile", "vmSize") != "Standard_D4s_v3" ||
		str(got, "tags", "a") != "1" {
		t.Errorf("after PATCHes: tags %v distribute %v vmProfile %v", got["tags"], d, dig(got, "properties", "vmProfile"))
	}
}

func TestListPagingAndCasing(t *testing.T) {
	s := startSite(t, siteOptions{PageSize: 2})
	for _, rg := range []string{"Alpha", "beta", "Gamma", "delta", "EPSILON"} {
		putGroup(t, s, rg)
	}
	var names []string
	next := "/subscriptions/" + sub + "/resourcegroups?api-version=2021-04-01"
	pages := 0
	for next != "" {
		resp, body := s.call(t, "GET", next, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list: %s %v", resp.Status, body)
		}
		pages++
		for _, v := range body["value"].([]any) {
			names = append(names, v.(map[string]any)["name"].(string))
		}
		next, _ = body["nextLink"].(string)
		if next != "" && !strings.HasPrefix(next, s.URL+"/") {
			t.Fatalf("nextLink %q is not absolute", next)
		}
	}
	if pages != 3 || strings.Join(names, ",") != "Alpha,beta,delta,EPSILON,Gamma" {
		t.Errorf("%d pages: %v", pages, names)
	}
	// Names are case-insensitive and keep their casing.
	_, g := s.call(t, "GET", rgPath("ALPHA"), "2021-04-01", nil)
	if g["name"] != "Alpha" {
		t.Errorf("group read back as %v", g["name"])
	}
	resp, _ := s.call(t, "PUT", rgPath("alpha"), "2021-04-01", map[string]any{"location": "westus2", "tags": map[string]any{"k": "v"}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("PUT over a group in other casing: %s, want 200", resp.Status)
	}
	resp, body := s.call(t, "PUT", rgPath("alpha"), "2021-04-01", map[string]any{"location": "eastus"})
	if resp.StatusCode != http.StatusConflict || str(body, "error", "code") != "InvalidResourceGroupLocation" {
		t.Errorf("moving a group: %s %v", resp.Status, body)
	}
}

func TestGalleryResources(t *testing.T) {
	s := startSite(t, siteOptions{})
	putGroup(t, s, "rg1")
	gal := rgPath("rg1") + "/providers/Microsoft.Compute/galleries/gal"
	def := gal + "/images/def"
	const gv = "2024-03-03"
	if resp, b := s.call(t, "PUT", gal, gv, map[string]any{"location": "westus2"}); resp.StatusCode != 201 || str(b, "properties", "provisioningState") != "Succeeded" {
		t.Fatalf("gallery: %s %v", resp.Status, b)
	}
	defBody := map[string]any{"location": "westus2", "properties": map[string]any{"osType": "linux", "osState": "Generalized",
		"identifier": map[string]any{"publisher": "p", "offer": "o", "sku": "s"}}}
	resp, b := s.call(t, "PUT", def, gv, defBody)
	if resp.StatusCode != 201 || str(b, "properties", "osType") != "Linux" || str(b, "properties", "hyperVGeneration") != "V1" {
		t.Fatalf("definition: %s %v", resp.Status, b)
	}
	defBody["properties"].(map[string]any)["osType"] = "Windows"
	if resp, b := s.call(t, "PUT", def, gv, defBody); resp.StatusCode != 409 || str(b, "error", "code") != "PropertyChangeNotAllowed" {
		t.Errorf("changing osType: %s %v", resp.Status, b)
	}
	if resp, b := s.call(t, "DELETE", gal, gv, nil); resp.StatusCode != 409 {
		t.Errorf("deleting a gallery with definitions: %s %v", resp.Status, b)
	}
	_, l := s.call(t, "GET", gal+"/images", gv, nil)
	if vals := l["value"].([]any); len(vals) != 1 {
		t.Errorf("definitions: %v", vals)
	}
	for _, p := range []string{def, gal} {
		if resp, _ := s.call(t, "DELETE", p, gv, nil); resp.StatusCode != 200 {
			t.Errorf("DELETE %s: %s", p, resp.Status)
		}
	}
	id := rgPath("rg1") + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/me"
	_, a := s.call(t, "PUT", id, "2023-01-31", map[string]any{"location": "westus2"})
	_, b2 := s.call(t, "PUT", id, "2023-01-31", map[string]any{"location": "westus2", "tags": map[string]any{"x": "y"}})
	if str(a, "properties", "principalId") == "" || str(a, "properties", "principalId") != str(b2, "properties", "principalId") {
		t.Errorf("identity principalId not kept: %v / %v", a, b2)
	}
}

// A SourceImage trigger runs a template when a new version of its source
// definition is published.
func TestSourceImageTrigger(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(200 * time.Millisecond)})
	putGroup(t, s, "rg1")
	gal := rgPath("rg1") + "/providers/Microsoft.Compute/galleries/gal"
	def := gal + "/images/base"
	s.call(t, "PUT", gal, "2024-03-03", map[string]any{"location": "westus2"})
	s.call(t, "PUT", def, "2024-03-03", map[string]any{"location": "westus2", "properties": map[string]any{"osType": "Linux", "osState": "Generalized",
		"identifier": map[string]any{"publisher": "p", "offer": "o", "sku": "s"}}})
	base := linuxTemplate("rg1", inline("echo base"))
	base["properties"].(map[string]any)["distribute"] = []any{map[string]any{"type": "SharedImage", "runOutputName": "sig", "galleryImageId": def}}
	submit(t, s, "rg1", "base", v24, base)
	child := linuxTemplate("rg1", inline("echo child"))
	child["properties"].(map[string]any)["source"] = map[string]any{"type": "SharedImageVersion", "imageVersionId": def + "/versions/latest"}
	submit(t, s, "rg1", "child", v24, child)
	resp, b := s.call(t, "PUT", tmplPath("rg1", "child")+"/triggers/onNewBase", v24, map[string]any{"properties": map[string]any{"kind": "SourceImage"}})
	if resp.StatusCode != 201 || str(b, "properties", "status", "code") != "Healthy" {
		t.Fatalf("trigger: %s %v", resp.Status, b)
	}
	pollOp(t, s, run(t, s, "rg1", "base"))
	waitFor(t, "the trigger to run child", 20*time.Second, func() bool {
		_, got := s.call(t, "GET", tmplPath("rg1", "child"), v24, nil)
		return str(got, "properties", "lastRunStatus", "runState") == "Succeeded"
	})
	if resp, _ := s.call(t, "DELETE", tmplPath("rg1", "child")+"/triggers/onNewBase", v24, nil); resp.StatusCode != http.StatusAccepted {
		t.Errorf("trigger delete: %s", resp.Status)
	}
}

func TestProviderOperations(t *testing.T) {
	s := startSite(t, siteOptions{})
	resp, b := s.call(t, "GET", "/providers/Microsoft.VirtualMachineImages/operations", v24, nil)
	if resp.StatusCode != 200 || len(b["value"].([]any)) == 0 {
		t.Fatalf("%s %v", resp.Status, b)
	}
}

// TestGroupDeleteOneWorker: deleting a group that holds a template ends
// with one worker, the default of goldsmith serve (the group's job waits for
// the template's deletion job, which needs the worker too).
func TestGroupDeleteOneWorker(t *testing.T) {
	s := startSite(t, siteOptions{Executor: standIn(0), Workers: 1})
	putGroup(t, s, "gone")
	if op, _ := submit(t, s, "gone", "t1", v24, linuxTemplate("gone", inline("echo hi"))); str(op, "status") != "Succeeded" {
		t.Fatalf("submission: %v", op)
	}
	resp, body := s.call(t, http.MethodDelete, rgPath("gone"), "2021-04-01", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE group: %s %v", resp.Status, body)
	}
	loc := resp.Header.Get("Location")
	waitFor(t, "the group's deletion", 30*time.Second, func() bool {
		r, b := s.call(t, http.MethodGet, loc, "", nil)
		switch r.StatusCode {
		case http.StatusAccepted:
			return false
		case http.StatusOK, http.StatusNoContent:
			return true
		}
		t.Fatalf("Location answered %s %v", r.Status, b)
		return true
	})
	if r, _ := s.call(t, http.MethodGet, tmplPath("gone", "t1"), v24, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("the template is still there: %s", r.Status)
	}
	if r, _ := s.call(t, http.MethodGet, rgPath("gone"), "2021-04-01", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("the group is still there: %s", r.Status)
	}
}
