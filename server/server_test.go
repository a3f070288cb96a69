package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/internal/standin"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
)

func TestOpenRefusals(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{DataDir: dir, Executor: standin.Executor{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"a second server on the directory", Config{DataDir: dir, Executor: standin.Executor{}}, "another goldsmith serve is using"},
		{"nothing to run the builds", Config{DataDir: t.TempDir()}, "a Builder or an Executor"},
		{"no data directory", Config{Executor: standin.Executor{}}, "no data directory"},
	}
	for _, tt := range tests {
		s2, err := Open(context.Background(), tt.cfg)
		if err == nil {
			s2.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// platform is a fake source.Platform that refuses every image.
type platform struct{ asked chan string }

var errNoImage = errors.New("the test platform has no images")

func (p platform) Resolve(_ context.Context, urn string) (catalog.Entry, error) {
	p.asked <- urn
	return catalog.Entry{}, errNoImage
}

func (platform) Expanded(_ context.Context, e catalog.Entry) (catalog.Entry, error) { return e, nil }

// TestBuilderRunsBuilds checks the engine's wiring: a run goes to the
// Builder, whose platform images come from Config.Platform, and the
// engine's error ends the run.
func TestBuilderRunsBuilds(t *testing.T) {
	ctx := context.Background()
	p := platform{asked: make(chan string, 1)}
	s, err := Open(ctx, Config{DataDir: t.TempDir(), Builder: &build.Builder{}, Platform: p, QueuePoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	qctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = s.Run(qctx); close(done) }()
	defer func() { stop(); <-done; s.Close() }()

	svc := s.Service()
	const sub = "11111111-2222-3333-4444-555555555555"
	if _, _, err := svc.PutResourceGroup(ctx, sub, "rg", resource.Input{Location: "westus2"}); err != nil {
		t.Fatal(err)
	}
	id, _ := resourceid.Parse("/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t")
	body := map[string]any{"location": "westus2",
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id": map[string]any{}}},
		"properties": map[string]any{
			"source":     map[string]any{"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
			"distribute": []any{map[string]any{"type": "VHD", "runOutputName": "vhd"}},
		}}
	_, op, err := svc.CreateTemplate(ctx, id, body, "2024-02-01")
	if err != nil {
		t.Fatal(err)
	}
	wait(t, svc, op.ID)
	run, err := svc.StartRun(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	end := wait(t, svc, run.ID)
	if urn := <-p.asked; !strings.Contains(urn, "debian-12") {
		t.Errorf("the platform was asked for %q", urn)
	}
	if end.Status != resource.OpFailed || end.Error == nil || !strings.Contains(end.Error.Message, errNoImage.Error()) {
		t.Errorf("run: %s %+v, want Failed with the platform's error", end.Status, end.Error)
	}
}

func wait(t *testing.T, svc *resource.Service, id string) resource.Operation {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		op, err := svc.Operation(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if op.Done() {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still %s", id, op.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
