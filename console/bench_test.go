package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
)

// seed stores 200 templates with 5 runs each (1,000 runs), each run with a
// phase history; one of them has a 100,000-line log.
func seed(b testing.TB, s *site) (templatePath, runPath string) {
	ctx := context.Background()
	src, err := os.ReadFile("../examples/hello-vhd.json")
	if err != nil {
		b.Fatal(err)
	}
	logText := strings.Repeat("2026-12-03T12:00:00Z some build output line that is about this long\n", 100_000)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	err = s.srv.Store().Update(ctx, func(tx *store.Tx) error {
		for i := range 200 {
			group := fmt.Sprintf("rg%d", i%10)
			id := fmt.Sprintf("/subscriptions/s1/resourceGroups/%s/providers/Microsoft.VirtualMachineImages/imageTemplates/t%03d", group, i)
			t := resource.ImageTemplate{ID: id, Name: fmt.Sprintf("t%03d", i), Location: "westus2", APIVersion: "2022-07-01",
				Submitted: json.RawMessage(src), ProvisioningState: resource.StateSucceeded, Runs: 5,
				LastRunStatus: &resource.LastRunStatus{StartTime: start, RunState: resource.RunSucceeded}}
			if err := tx.PutJSON(ctx, id, resource.TypeImageTemplate, t); err != nil {
				return err
			}
			for n := 1; n <= 5; n++ {
				runID := fmt.Sprintf("run-%03d-%d", i, n)
				st := start.Add(time.Duration(i*5+n) * time.Minute)
				end := st.Add(3 * time.Minute)
				r := resource.Run{ID: id + "/runs/" + runID, RunID: runID, Number: n, TemplateID: id, State: resource.RunSucceeded,
					SubState: "Distributing", StartTime: st, EndTime: &end, StartedBy: "static token 1",
					LogPath: "staging/bench/" + runID + "/customization.log", WorkDir: "work/" + runID,
					Phases: []resource.RunPhase{{Name: "Building", Start: st.Add(time.Second)}, {Name: "Customizing", Start: st.Add(time.Minute)},
						{Name: "Distributing", Start: st.Add(2 * time.Minute)}}}
				if err := tx.PutJSON(ctx, r.ID, resource.TypeRun, r); err != nil {
					return err
				}
				if i == 0 && n == 5 {
					p := filepath.Join(s.srv.DataDir(), filepath.FromSlash(r.LogPath))
					if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
						return err
					}
					if err := os.WriteFile(p, []byte(logText), 0o600); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return "/console/t/s1/rg0/t000", "/console/t/s1/rg0/t000/runs/run-000-5"
}

// BenchmarkPages times each page on a server with 200 templates and 1,000
// runs (the console's budget is 100 ms a page on a 2-core machine).
func BenchmarkPages(b *testing.B) {
	s := startSite(b, false, time.Second)
	tpage, rpage := seed(b, s)
	br := s.browser(b)
	br.signIn()
	for _, p := range []struct{ name, path string }{
		{"overview", "/"},
		{"overview-filtered", "/?group=rg3&state=Succeeded"},
		{"templates", "/console/templates"},
		{"template", tpage},
		{"run", rpage},
		{"new", "/console/templates/new"},
		{"galleries", "/console/galleries"},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				res, body := br.get(p.path)
				if res.StatusCode != http.StatusOK {
					b.Fatalf("%s: %s\n%s", p.path, res.Status, body)
				}
			}
		})
	}
}

// TestLongLog: a run page with a 100,000-line log carries only its end; the
// whole log is a link away, and streaming from the page's offset sends only
// what follows.
func TestLongLog(t *testing.T) {
	s := startSite(t, false, time.Second)
	_, rpage := seed(t, s)
	b := s.browser(t)
	b.signIn()
	res, body := b.get(rpage)
	if res.StatusCode != http.StatusOK || len(body) > 200<<10 || !strings.Contains(body, "The last lines") {
		t.Fatalf("run page with a 100k-line log: %s, %d bytes", res.Status, len(body))
	}
	res, whole := b.get(rpage + "/log")
	if res.StatusCode != http.StatusOK || strings.Count(whole, "\n") != 100_000 {
		t.Errorf("the whole log: %s, %d lines", res.Status, strings.Count(whole, "\n"))
	}
	res, rest := b.get(rpage + "/log?follow=1&offset=" + fmt.Sprint(len(whole)-2*(strings.IndexByte(whole, '\n')+1)))
	if res.StatusCode != http.StatusOK || strings.Count(rest, "\n") != 2 {
		t.Errorf("following from near the end: %s, %q", res.Status, rest)
	}
}
