package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/internal/corpus"
	"github.com/goldsmith-dev/goldsmith/internal/standin"
)

// syncBuffer is a bytes.Buffer written by the server and read by the test.
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

// servedAZ is a `goldsmith serve --tls-self-signed` on 127.0.0.1 and what it
// printed at its first start.
type servedAZ struct {
	url, dataDir, clientID, secret, tenant string
}

// startServe runs goldsmith serve's own code (runServe) with TLS on a free
// port of 127.0.0.1. Builds run on the STAND-IN EXECUTOR (internal/standin):
// no VM boots, so a run here proves the API and the CLI's use of it, not
// the build engine (a test hook; serve has no flag for it).
func startServe(t *testing.T) servedAZ {
	t.Helper()
	t.Setenv("GOLDSMITH_TOKEN", "")
	return startServeWith(t, serveFlags{listen: "127.0.0.1:0", dataDir: t.TempDir(), workers: 2, selfSigned: true,
		logLevel: "info", maxISOGiB: 1, tlsNames: []string{"goldsmith.test"}, executor: standin.Executor{Duration: time.Second}})
}

// startServeWith runs goldsmith serve's own code (runServe) with flags f
// until the test ends.
func startServeWith(t *testing.T, f serveFlags) servedAZ {
	t.Helper()
	dir := f.dataDir
	out, errs := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, out, errs, f) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("goldsmith serve: %v", err)
		}
		if t.Failed() {
			t.Logf("goldsmith serve's log:\n%s", errs.String())
		}
	})
	servingRE := regexp.MustCompile(`goldsmith serving (https?://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(20 * time.Second)
	for !servingRE.MatchString(out.String()) {
		select {
		case err := <-done:
			done <- err // for the cleanup, which waits for it
			t.Fatalf("goldsmith serve ended: %v\n%s\n%s", err, out.String(), errs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("goldsmith serve did not start:\n%s\n%s", out.String(), errs.String())
		}
	}
	s := out.String()
	field := func(name string) string {
		m := regexp.MustCompile(name + `:\s+(\S+)`).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("goldsmith serve printed no %s at its first start:\n%s", name, s)
		}
		return m[1]
	}
	return servedAZ{url: servingRE.FindStringSubmatch(s)[1], dataDir: dir, clientID: field("client id"), secret: field("secret"), tenant: field("tenant")}
}

// azCLI runs the Azure CLI with its own config directory, trusting
// goldsmith's CA through REQUESTS_CA_BUNDLE, telemetry off.
type azCLI struct {
	bin string
	env []string
}

func (a azCLI) run(args ...string) (stdout, stderr string, err error) {
	return a.runWithin(60*time.Second, args...)
}

func (a azCLI) runWithin(limit time.Duration, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = a.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// ok runs az, fails the test unless it exits 0, and decodes its JSON output
// (when it printed any).
func (a azCLI) ok(t *testing.T, args ...string) any {
	t.Helper()
	return a.okWithin(t, 60*time.Second, args...)
}

// okWithin is ok for a command that may take up to limit (az waits for a
// long-running operation to end).
func (a azCLI) okWithin(t *testing.T, limit time.Duration, args ...string) any {
	t.Helper()
	start := time.Now()
	o, e, err := a.runWithin(limit, args...)
	t.Logf("az %s (%.1fs)", strings.Join(args, " "), time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("az %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, o, e)
	}
	var v any
	if strings.TrimSpace(o) != "" {
		if err := json.Unmarshal([]byte(o), &v); err != nil {
			t.Fatalf("az %s printed no JSON: %v\n%s", strings.Join(args, " "), err, o)
		}
	}
	return v
}

func jstr(v any, path ...string) string {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func lookupAZ(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("az")
	if err != nil {
		if corpus.Required() {
			t.Fatalf("the Azure CLI (Debian package azure-cli, installed by scripts/setup) is required here (GOLDSMITH_REQUIRE_CORPUS or CI is set): %v", err)
		}
		t.Skipf("the Azure CLI is not installed (scripts/setup installs it): %v", err)
	}
	return bin
}

// TestAzureCLI drives Debian's Azure CLI (azure-cli 2.45) through a
// quickstart-shaped script against goldsmith serve over TLS on loopback:
// register the cloud, sign in as a service principal, make a group, an
// identity, a gallery and an image definition, create templates with `az
// image builder create` and `az resource create --is-full-object` (from
// examples/), run one with `az resource invoke-action --action Run`, follow
// it with `az image builder show`, list its outputs and the gallery
// versions, and delete everything. Without -short the run is a real build
// of the example's downloads (the build engine boots a QEMU VM, runs them
// and distributes to an image, a gallery version and a VHD: a few minutes
// under TCG); with -short it runs on the
// STAND-IN EXECUTOR (internal/standin: no VM boots, the CLI's calls are what
// is proved).
func TestAzureCLI(t *testing.T) {
	bin := lookupAZ(t)
	var srv servedAZ
	runFor, poll := 30*time.Second, time.Second
	if testing.Short() {
		srv = startServe(t)
	} else {
		builderDir := realEngineDir(t)
		t.Setenv("GOLDSMITH_TOKEN", "")
		srv = startServeWith(t, serveFlags{listen: "127.0.0.1:0", dataDir: t.TempDir(), workers: 2, selfSigned: true,
			logLevel: "info", maxISOGiB: 1, tlsNames: []string{"goldsmith.test"}, builderDir: builderDir})
		// Every az call starts Python (seconds of CPU): look rarely.
		runFor, poll = 25*time.Minute, 15*time.Second
	}
	const sub = "00000000-0000-0000-0000-000000000001"

	// The example template's scripts and files, where it expects them
	// (http://127.0.0.1:8089/ in the example, rewritten to this server).
	files := httptest.NewServer(http.FileServer(http.Dir("../../examples")))
	t.Cleanup(files.Close)

	cfg := t.TempDir()
	env := []string{"HOME=" + cfg, "PATH=" + os.Getenv("PATH"), "AZURE_CONFIG_DIR=" + filepath.Join(cfg, "az"),
		"REQUESTS_CA_BUNDLE=" + filepath.Join(srv.dataDir, "tls", "ca.crt"),
		"AZURE_CORE_COLLECT_TELEMETRY=false", "AZURE_CORE_NO_COLOR=true", "AZURE_CORE_SURVEY_MESSAGE=false",
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost"}
	az := azCLI{bin: bin, env: env}

	az.ok(t, "cloud", "register", "-n", "goldsmith", "--endpoint-resource-manager", srv.url+"/")
	az.ok(t, "cloud", "set", "-n", "goldsmith")

	// A wrong secret is refused with a message saying so.
	_, e, err := az.run("login", "--service-principal", "-u", srv.clientID, "-p", strings.Repeat("0", 64), "--tenant", srv.tenant)
	if err == nil || !strings.Contains(e, "Invalid client secret") {
		t.Fatalf("az login with a wrong secret: %v, stderr %q; want a failure naming the invalid secret", err, e)
	}
	_, e, err = az.run("login", "--service-principal", "-u", "no-such-client", "-p", "x", "--tenant", srv.tenant)
	if err == nil || !strings.Contains(e, "was not found") {
		t.Fatalf("az login as an unknown client: %v, stderr %q; want a failure naming the unknown client", err, e)
	}

	accounts := az.ok(t, "login", "--service-principal", "-u", srv.clientID, "-p", srv.secret, "--tenant", srv.tenant, "-o", "json")
	if list, _ := accounts.([]any); len(list) != 1 || jstr(list[0], "id") != sub || jstr(list[0], "user", "type") != "servicePrincipal" {
		t.Fatalf("az login listed %v, want the one subscription %s as a service principal", accounts, sub)
	}

	rg := az.ok(t, "group", "create", "-n", "rg1", "-l", "westus2", "-o", "json")
	if jstr(rg, "properties", "provisioningState") != "Succeeded" {
		t.Fatalf("az group create: %v", rg)
	}
	if exists := az.ok(t, "group", "exists", "-n", "rg1"); exists != true {
		t.Fatalf("az group exists -n rg1 = %v", exists)
	}
	id := az.ok(t, "identity", "create", "-g", "rg1", "-n", "builder", "-o", "json")
	identityID := jstr(id, "id")
	if jstr(id, "principalId") == "" || identityID == "" {
		t.Fatalf("az identity create: %v", id)
	}
	az.ok(t, "sig", "create", "-g", "rg1", "--gallery-name", "corp", "-o", "json")
	az.ok(t, "sig", "image-definition", "create", "-g", "rg1", "--gallery-name", "corp", "--gallery-image-definition", "web",
		"--publisher", "goldsmith", "--offer", "web", "--sku", "12", "--os-type", "Linux", "-o", "json")

	// A template with flags, at the api-version az image builder sends.
	flags := az.ok(t, "image", "builder", "create", "-g", "rg1", "-n", "flags", "--image-source", "Debian:debian-12:12:latest",
		"--identity", identityID, "--scripts", files.URL+"/scripts/setup-os.sh",
		"--managed-image-destinations", "flagsimg=westus2", "-o", "json")
	if jstr(flags, "provisioningState") != "Succeeded" {
		t.Fatalf("az image builder create: %v", flags)
	}

	// The example, as a full object: az picks the api-version from the
	// provider metadata and sends the body as it is.
	data, err := os.ReadFile("../../examples/debian12-webserver.json")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	ex := strings.NewReplacer("http://127.0.0.1:8089", files.URL, "/resourceGroups/images/", "/resourceGroups/rg1/").Replace(string(data))
	if err := json.Unmarshal([]byte(ex), &tmpl); err != nil {
		t.Fatal(err)
	}
	// From api-version 2020-02-14 on a template needs an identity; the
	// example (2019-05-01-preview) has none.
	tmpl["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{identityID: map[string]any{}}}
	if !testing.Short() {
		// The real build keeps the example's downloads (a script by URI
		// with its sha256, a File) and leaves out its apt-get steps and
		// reboot: a test must not depend on Debian's mirror, and the
		// build engine's own tests cover reboots.
		props := tmpl["properties"].(map[string]any)
		custom := props["customize"].([]any)
		props["customize"] = []any{custom[0], custom[1], map[string]any{"type": "Shell", "name": "install-motd",
			"inline": []any{"sudo cp /tmp/motd /etc/motd", "test -s /etc/motd"}}}
	}
	full, _ := json.Marshal(tmpl)
	fullFile := filepath.Join(cfg, "template.json")
	if err := os.WriteFile(fullFile, full, 0o600); err != nil {
		t.Fatal(err)
	}
	created := az.ok(t, "resource", "create", "-g", "rg1", "-n", "web", "--resource-type", "Microsoft.VirtualMachineImages/imageTemplates",
		"--is-full-object", "--properties", "@"+fullFile, "-o", "json")
	templateID := jstr(created, "id")
	if jstr(created, "properties", "provisioningState") != "Succeeded" || templateID == "" {
		t.Fatalf("az resource create: %v", created)
	}

	// az waits for the run's operation to end: a real build takes minutes.
	az.okWithin(t, runFor, "resource", "invoke-action", "--ids", templateID, "--action", "Run")
	var shown any
	for deadline := time.Now().Add(runFor); ; {
		shown = az.ok(t, "image", "builder", "show", "-g", "rg1", "-n", "web", "-o", "json")
		if state := jstr(shown, "lastRunStatus", "runState"); state != "Running" && state != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end: %v", shown)
		}
		time.Sleep(poll)
	}
	if state := jstr(shown, "lastRunStatus", "runState"); state != "Succeeded" {
		t.Fatalf("the run ended %s: %v", state, shown)
	}

	outs, _ := az.ok(t, "image", "builder", "show-runs", "-g", "rg1", "-n", "web", "-o", "json").([]any)
	want := map[string]string{
		"web-golden": "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Compute/images/web-golden",
		"web-sig":    "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Compute/galleries/corp/images/web/versions/",
		"web-vhd":    "",
	}
	if len(outs) != len(want) {
		t.Fatalf("az image builder show-runs listed %d outputs, want %d: %v", len(outs), len(want), outs)
	}
	for _, o := range outs {
		name, artifact := jstr(o, "name"), jstr(o, "artifactId")
		prefix, ok := want[name]
		switch {
		case !ok || jstr(o, "provisioningState") != "Succeeded":
			t.Errorf("run output %v", o)
		case name == "web-vhd":
			if uri := jstr(o, "artifactUri"); !strings.HasPrefix(uri, srv.url+"/") {
				t.Errorf("the VHD's artifactUri %q is not on the URL the client used (%s)", uri, srv.url)
			}
		case !strings.EqualFold(artifact, prefix) && !(strings.HasSuffix(prefix, "/") && strings.HasPrefix(strings.ToLower(artifact), strings.ToLower(prefix))):
			t.Errorf("run output %s: artifactId %q, want %q", name, artifact, prefix)
		}
	}
	versions, _ := az.ok(t, "sig", "image-version", "list", "-g", "rg1", "--gallery-name", "corp", "--gallery-image-definition", "web", "-o", "json").([]any)
	if len(versions) != 1 {
		t.Fatalf("az sig image-version list: %v, want the run's one version", versions)
	}

	// The run records who started it: the principal az signed in as.
	runs := getJSON(t, srv, "/goldsmith/v1"+templateID+"/runs/latest")
	if by := jstr(runs, "startedBy"); !strings.Contains(by, srv.clientID) {
		t.Errorf("the run was started by %q, want the principal %s", by, srv.clientID)
	}

	az.ok(t, "image", "builder", "delete", "-g", "rg1", "-n", "web")
	// The group's deletion takes the other template with it.
	az.ok(t, "group", "delete", "-n", "rg1", "--yes")
}

// getJSON reads a goldsmith endpoint with the static token serve made.
func getJSON(t *testing.T, srv servedAZ, path string) any {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(srv.dataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := trustingClient(filepath.Join(srv.dataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", path, resp.Status, errors.Join(err, fmt.Errorf("%v", v)))
	}
	return v
}
