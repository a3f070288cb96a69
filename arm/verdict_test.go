package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/internal/corpus"
	"github.com/goldsmith-dev/goldsmith/internal/templatecases"
	"github.com/goldsmith-dev/goldsmith/template"
)

// anyScript answers every download at submission with a small script, so
// that what the service decides about a template does not depend on the
// network. A template that pins a checksum still fails its download, which
// is live state and counted as such.
type anyScript struct{}

func (anyScript) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{},
		Body: io.NopCloser(strings.NewReader("#!/bin/sh\ntrue\n")), Request: r}, nil
}

// verdictCase is one file to judge both ways.
type verdictCase struct {
	name string
	data []byte
	opts template.LoadOptions
}

// liveState names the service's refusals that depend on what exists (a
// source image, a region, a reachable script), which `template validate`
// cannot know offline; anything else the service refuses must be what
// validate says.
func liveState(code, msg string) string {
	switch {
	case code == "LocationNotAvailableForResourceType":
		return "region not configured"
	case strings.HasPrefix(msg, "Failed to download ") || strings.HasPrefix(msg, "The sha256 checksum of "):
		return "script or file download"
	case (code == template.CodeBadManagedImageSource || code == template.CodeBadSharedImageVersionSrc) &&
		(strings.Contains(msg, "does not exist") || strings.Contains(msg, "has no version")):
		return "source image missing"
	case code == template.CodeBadStagingResourceGroup && strings.HasPrefix(msg, "The staging resource group"):
		return "staging resource group (its state, or the template's own group)"
	}
	return ""
}

// TestVerdictsAgree: `goldsmith template validate` (template.Load, offline)
// and the service (a PUT through the HTTP API of a live server, then its
// submission) give every template the same verdict - valid, or invalid with
// the same problems and the same code - except where the service needs live
// state validate cannot have (see liveState). The templates: shared/templates,
// the shared corpus (with its parameter files, as its test pairs them) and the
// invalid-template table of template's tests.
func TestVerdictsAgree(t *testing.T) {
	var cases []verdictCase
	examples := corpus.Shared(t, "templates")
	files, _ := filepath.Glob(filepath.Join(examples, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no templates in %s", examples)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, verdictCase{name: "templates/" + filepath.Base(f), data: data})
	}
	for _, c := range corpus.Load(t).Cases {
		cases = append(cases, verdictCase{name: "corpus/" + c.Name, data: c.Data, opts: c.Options})
	}
	for _, c := range templatecases.Invalids() {
		data, err := json.Marshal(c.Doc())
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, verdictCase{name: "invalid/" + c.Name, data: data})
	}

	s := startSite(t, siteOptions{Workers: 4, HTTPClient: &http.Client{Transport: anyScript{}}})
	type pending struct {
		c        verdictCase
		resource string
		offline  []template.Problem // nil when valid
		sync     map[string]any     // a synchronous refusal
		async    string             // the operation to wait for
	}
	var ps []*pending
	counts := map[string]int{}
	for i, c := range cases {
		found, ferr := template.Load(c.data, c.opts)
		docs, derr := template.Documents(c.data, c.opts)
		if ferr != nil || derr != nil {
			// Nothing to send: the client finds documents with the same code
			// (template.Documents) that validate reports.
			if (ferr == nil) != (derr == nil) || ferr.Error() != derr.Error() {
				t.Errorf("%s: validate says %v, the client %v", c.name, ferr, derr)
			}
			counts["refused before any request (malformed file)"]++
			continue
		}
		rg := fmt.Sprintf("rg%d", i)
		putGroup(t, s, rg)
		for j, d := range docs {
			f := found[j]
			p := &pending{c: c, resource: f.Resource}
			if f.Err != nil {
				var inv *template.InvalidError
				if !errors.As(f.Err, &inv) {
					t.Fatalf("%s: %v", c.name, f.Err)
				}
				p.offline = unprefix(f.Resource, inv.Problems)
			}
			if len(f.Unresolved) > 0 {
				counts["needs a live ARM deployment (reference() and the like)"]++
				continue
			}
			version := d.APIVersion
			if f.Template != nil {
				version = f.Template.APIVersion
			} else if version == "" || strings.HasPrefix(version, "[") {
				version = c.opts.APIVersion
			}
			name := d.Name[strings.LastIndex(d.Name, "/")+1:]
			if name == "" {
				name = fmt.Sprintf("t%d", j)
			}
			resp, body := s.call(t, http.MethodPut, tmplPath(rg, name), version, d.Body)
			switch resp.StatusCode {
			case http.StatusCreated:
				p.async = resp.Header.Get("Azure-AsyncOperation")
			default:
				p.sync = body
			}
			ps = append(ps, p)
		}
	}
	for _, p := range ps {
		label := p.c.name
		if p.resource != "" {
			label += " " + p.resource
		}
		var code, msg string
		if p.sync != nil {
			code, msg = str(p.sync, "error", "code"), str(p.sync, "error", "message")
			if code == "" { // the flat envelope of the older api-versions
				code, msg = str(p.sync, "code"), str(p.sync, "message")
			}
		} else {
			var op map[string]any
			waitFor(t, "submission of "+label, 30*time.Second, func() bool {
				_, op = s.call(t, http.MethodGet, p.async, "", nil)
				return str(op, "status") != "InProgress"
			})
			code, msg = str(op, "error", "code"), str(op, "error", "message")
		}
		if live := liveState(code, msg); live != "" {
			if p.offline != nil {
				// ARM checks the region before the template; both refuse it.
				counts["invalid offline; the service refused first on live state: "+live]++
				continue
			}
			counts["valid; the service then needed live state: "+live]++
			continue
		}
		switch {
		case p.offline == nil && code == "":
			counts["valid both ways"]++
		case p.offline == nil:
			t.Errorf("%s: validate accepts it, the service refuses it: %s: %s", label, code, msg)
		case code == "":
			t.Errorf("%s: validate refuses it (%v), the service accepts it", label, p.offline)
		default:
			if code != p.offline[0].Code {
				t.Errorf("%s: validate says %s, the service %s (%s)", label, p.offline[0].Code, code, msg)
			}
			if code == template.CodeNoRegisteredProvider {
				// ARM's routing answers an api-version it does not have,
				// in its own words, before the service sees the body.
				counts["invalid both ways, same code (an api-version AIB does not have)"]++
				continue
			}
			for _, pr := range p.offline {
				if !strings.Contains(msg, pr.String()) {
					t.Errorf("%s: the service's refusal does not report %q: %s", label, pr, msg)
				}
			}
			counts["invalid both ways, same problems"]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-70s %d", k, counts[k])
	}
	// The counts, so that a change in either verdict is seen.
	for k, want := range map[string]int{
		"valid both ways":                  167,
		"invalid both ways, same problems": 111,
		"invalid both ways, same code (an api-version AIB does not have)":                                            1,
		"needs a live ARM deployment (reference() and the like)":                                                     3,
		"refused before any request (malformed file)":                                                                20,
		"valid; the service then needed live state: region not configured":                                           3,
		"valid; the service then needed live state: script or file download":                                         23,
		"valid; the service then needed live state: source image missing":                                            16,
		"valid; the service then needed live state: staging resource group (its state, or the template's own group)": 3,
		"invalid offline; the service refused first on live state: region not configured":                            2,
	} {
		if counts[k] != want {
			t.Errorf("%s: %d, want %d", k, counts[k], want)
		}
	}
}

// unprefix makes the problems of a template found in a deployment template
// relative to the resource, as the service, which is sent the resource,
// reports them.
func unprefix(resource string, ps []template.Problem) []template.Problem {
	out := make([]template.Problem, len(ps))
	for i, p := range ps {
		switch {
		case resource == "":
		case p.Target == resource:
			p.Target = ""
		default:
			p.Target = strings.TrimPrefix(p.Target, resource+".")
		}
		out[i] = p
	}
	return out
}
