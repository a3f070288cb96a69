package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/arm"
	"github.com/goldsmith-dev/goldsmith/internal/standin"
	"github.com/goldsmith-dev/goldsmith/server"
)

const clientTestToken = "client-test-token"

// startServer runs a goldsmith server on 127.0.0.1, assembled by package
// server as `goldsmith serve` assembles it, with the stand-in executor: no
// VM boots, so the runs' outputs prove the client and the service, not the
// build engine. It returns the server's URL; GOLDSMITH_TOKEN is set for the
// client commands.
func startServer(t *testing.T, buildTime time.Duration) string {
	t.Helper()
	srv, err := server.Open(context.Background(), server.Config{DataDir: t.TempDir(), Workers: 2,
		Executor: standin.Executor{Duration: buildTime}, StaticTokens: []string{clientTestToken}, QueuePoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	api, err := arm.New(arm.Options{Service: srv.Service(), Auth: srv.Authority(), RetryAfter: time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	hs := httptest.NewServer(api)
	t.Cleanup(func() { hs.Close(); stop(); <-done; srv.Close() })
	t.Setenv("GOLDSMITH_TOKEN", clientTestToken)
	t.Setenv("GOLDSMITH_RESOURCE_GROUP", "")
	return hs.URL
}

// TestClientCommands drives every client command against a live server,
// in order: each step sees what the steps before it made.
func TestClientCommands(t *testing.T) {
	url := startServer(t, time.Second)
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings, in order
		stderr []string
	}{
		{"group create", []string{"group", "create", "rg1", "-l", "westus2"}, exitOK,
			[]string{"NAME", "LOCATION", "STATE", "rg1", "westus2", "Succeeded"}, nil},
		{"gallery create", []string{"gallery", "create", "gal", "-g", "rg1"}, exitOK,
			[]string{"gal", "rg1", "westus2", "Succeeded"}, nil},
		{"gallery image create", []string{"gallery", "image", "create", "gal", "def", "-g", "rg1", "--publisher", "p", "--offer", "o", "--sku", "s"}, exitOK,
			[]string{"def", "gal", "Linux", "Generalized", "V1", "p:o:s"}, nil},
		{"gallery image create without identifier", []string{"gallery", "image", "create", "gal", "def2", "-g", "rg1"}, exitUsage,
			nil, []string{"--publisher, --offer and --sku are required"}},
		{"template create", []string{"template", "create", "-f", "testdata/client/web.json", "-g", "rg1"}, exitOK,
			[]string{"NAME", "PROVISIONING", "web", "rg1", "Succeeded"}, nil},
		{"template create a failing build", []string{"template", "create", "-f", "testdata/client/fails.json", "-g", "rg1"}, exitOK,
			[]string{"fails", "Succeeded"}, nil},
		{"template create an invalid template", []string{"template", "create", "-f", "testdata/invalid.json", "-g", "rg1", "--name", "broken"}, exitFailure,
			[]string{"broken", "rg1", "Failed", "The template has 3 errors"}, nil},
		{"template ls", []string{"template", "ls", "-g", "rg1"}, exitOK,
			[]string{"broken", "Failed", "fails", "Succeeded", "web", "Succeeded"}, nil},
		{"template run --wait", []string{"template", "run", "web", "-g", "rg1", "--wait"}, exitOK,
			[]string{"web", "Succeeded", "Succeeded", "RUN OUTPUT", "img", "Succeeded",
				"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.Compute/images/out"},
			[]string{"Distributing"}}, // the phases seen depend on when the client polls
		{"template show", []string{"template", "show", "web", "-g", "rg1"}, exitOK,
			[]string{"LAST RUN", "PHASE", "web", "Succeeded", "Succeeded", "Distributing"}, nil},
		{"template logs", []string{"template", "logs", "web", "-g", "rg1"}, exitOK,
			[]string{"==> Building", "echo hello from the client test", "==> Distributing"}, nil},
		{"image ls", []string{"image", "ls", "-g", "rg1"}, exitOK,
			[]string{"NAME", "SIZE GB", "out", "rg1", "westus2", "Linux", "V1", "1"}, nil},
		{"image show", []string{"image", "show", "out", "-g", "rg1"}, exitOK, []string{"out", "rg1", "Linux"}, nil},
		{"image show of a missing image", []string{"image", "show", "nope", "-g", "rg1"}, exitFailure, nil, []string{"ResourceNotFound", "HTTP 404"}},
		{"template run of a failing build", []string{"template", "run", "fails", "-g", "rg1", "--wait"}, exitFailure,
			[]string{"fails", "Succeeded", "Failed", "Customizing", `"fail"`}, nil}, // the stand-in fails it, by the template's "exit 3"
		{"template run without waiting", []string{"template", "run", "web", "-g", "rg1"}, exitOK,
			[]string{"Run of web started; follow it with: goldsmith template logs web -g rg1 -f"}, nil},
		{"template cancel", []string{"template", "cancel", "web", "-g", "rg1"}, exitOK, []string{"web", "Canceled"}, nil},
		{"template cancel with nothing running", []string{"template", "cancel", "web", "-g", "rg1"}, exitFailure,
			nil, []string{"has no run in progress to cancel"}},
		{"template delete", []string{"template", "delete", "web", "-g", "rg1"}, exitOK, []string{"deleted web"}, nil},
		{"template delete again", []string{"template", "delete", "web", "-g", "rg1"}, exitOK, []string{"web does not exist"}, nil},
		{"template show after delete", []string{"template", "show", "web", "-g", "rg1"}, exitFailure, nil, []string{"ResourceNotFound"}},
		{"no resource group", []string{"template", "show", "web"}, exitUsage, nil, []string{"--resource-group (-g) is required"}},
		{"bad output", []string{"template", "ls", "-o", "yaml"}, exitUsage, nil, []string{"--output must be table or json"}},
		// One process, its two workers: the server's own heartbeat.
		{"workers", []string{"workers"}, exitOK, []string{"NAME", "NODE", "CAPACITY", "RUNNING", "STATE", "HEARTBEAT", "2", "0", "alive", "ago"}, nil},
	}
	for _, st := range steps {
		code, stdout, stderr := runCLI(t, append(st.args, "--server", url)...)
		if code != st.code {
			t.Errorf("%s: exit code %d, want %d\nstdout: %s\nstderr: %s", st.name, code, st.code, stdout, stderr)
		}
		if err := inOrder(stdout, st.stdout); err != "" {
			t.Errorf("%s: stdout lacks %s:\n%s", st.name, err, stdout)
		}
		if err := inOrder(stderr, st.stderr); err != "" {
			t.Errorf("%s: stderr lacks %s:\n%s", st.name, err, stderr)
		}
	}
}

// inOrder says which of want is not in s after the ones before it ("" when
// all are).
func inOrder(s string, want []string) string {
	for _, w := range want {
		i := strings.Index(s, w)
		if i < 0 {
			return "\"" + w + "\""
		}
		s = s[i+len(w):]
	}
	return ""
}

// TestClientJSON checks that -o json prints the server's answers as sent,
// fields the client does not read included.
func TestClientJSON(t *testing.T) {
	url := startServer(t, 200*time.Millisecond)
	decode := func(args ...string) any {
		t.Helper()
		code, stdout, stderr := runCLI(t, append(args, "--server", url, "-o", "json")...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var v any
		if err := json.Unmarshal([]byte(stdout), &v); err != nil {
			t.Fatalf("%v: not JSON: %v\n%s", args, err, stdout)
		}
		return v
	}
	obj := func(v any, keys ...string) any {
		for _, k := range keys {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	if g := decode("group", "create", "rg1"); obj(g, "name") != "rg1" || obj(g, "type") != "Microsoft.Resources/resourceGroups" {
		t.Errorf("group: %v", g)
	}
	if ts := decode("template", "ls", "-g", "rg1"); len(ts.([]any)) != 0 {
		t.Errorf("no templates yet: %v", ts)
	}
	created := decode("template", "create", "-f", "testdata/client/web.json", "-g", "rg1")
	if obj(created, "properties", "provisioningState") != "Succeeded" || obj(created, "properties", "source", "offer") != "debian-12" {
		t.Errorf("created: %v", created)
	}
	run := decode("template", "run", "web", "-g", "rg1", "--wait")
	if obj(run, "template", "properties", "lastRunStatus", "runState") != "Succeeded" {
		t.Errorf("run: %v", run)
	}
	outs, _ := obj(run, "runOutputs").([]any)
	if len(outs) != 1 || obj(outs[0], "type") != "Microsoft.VirtualMachineImages/imageTemplates/runOutputs" {
		t.Errorf("runOutputs: %v", obj(run, "runOutputs"))
	}
	shown := decode("template", "show", "web", "-g", "rg1")
	if obj(shown, "id") != obj(created, "id") || obj(shown, "properties", "customize") == nil {
		t.Errorf("show: %v", shown)
	}
	ls := decode("template", "ls", "-g", "rg1")
	if l, _ := ls.([]any); len(l) != 1 || obj(l[0], "name") != "web" {
		t.Errorf("ls: %v", ls)
	}
	img := decode("image", "show", "out", "-g", "rg1")
	if obj(img, "properties", "storageProfile", "osDisk", "osState") != "Generalized" {
		t.Errorf("image: %v", img)
	}
	if imgs := decode("image", "ls"); len(imgs.([]any)) != 1 {
		t.Errorf("image ls of the subscription: %v", imgs)
	}
}

// TestClientWithoutToken checks that a client command says where the token
// comes from before it calls the server.
func TestClientWithoutToken(t *testing.T) {
	t.Setenv("GOLDSMITH_TOKEN", "")
	code, _, stderr := runCLI(t, "template", "ls", "--server", "http://127.0.0.1:1")
	if code != exitUsage || !strings.Contains(stderr, "set GOLDSMITH_TOKEN") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
