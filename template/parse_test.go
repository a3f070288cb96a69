package template_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/internal/templatecases"
	. "github.com/goldsmith-dev/goldsmith/template"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mustDecode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatalf("DecodeJSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %T", v)
	}
	return m
}

// TestParseValid: the spec's examples (repaired where the scan garbled them)
// and the example templates parse without errors or warnings, and their
// canonical form matches the golden file.
func TestParseValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/spec/*.json")
	more, _ := filepath.Glob("testdata/valid/*.json")
	files = append(files, more...)
	if len(files) < 10 {
		t.Fatalf("expected the fixtures, found %d files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, warns, err := Parse(mustDecode(t, data), Options{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for _, w := range warns {
				t.Errorf("unexpected warning: %s", w)
			}
			got, err := json.MarshalIndent(tmpl, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(f), ".json")+".canonical.json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("golden file missing (run go test ./template -update): %v", err)
			}
			if !bytes.Equal(bytes.TrimSpace(want), bytes.TrimSpace(got)) {
				t.Errorf("canonical form differs from %s:\n%s", golden, got)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tt := range templatecases.Invalids() {
		t.Run(tt.Name, func(t *testing.T) {
			_, _, err := Parse(tt.Doc(), Options{})
			inv, ok := err.(*InvalidError)
			if !ok {
				t.Fatalf("Parse error = %v, want *InvalidError", err)
			}
			for _, p := range inv.Problems {
				if p.Code == tt.Code && p.Target == tt.Target && strings.Contains(p.Message, tt.Contains) {
					return
				}
			}
			t.Errorf("no problem %s at %s containing %q; got:\n%v", tt.Code, tt.Target, tt.Contains, inv)
		})
	}
}

// TestParseReportsEveryError: a user sees all mistakes at once.
func TestParseReportsEveryError(t *testing.T) {
	doc := templatecases.Base("2022-07-01")
	delete(templatecases.Customizer(doc, 0), "inline")
	templatecases.Dist(doc, 0)["runOutputName"] = "bad name"
	templatecases.Props(doc)["buildTimeoutInMinutes"] = json.Number("10000")
	_, _, err := Parse(doc, Options{})
	inv, ok := err.(*InvalidError)
	if !ok || len(inv.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
}

func TestWarnings(t *testing.T) {
	doc := templatecases.Base("2020-02-14")
	templatecases.Props(doc)["validate"] = map[string]any{}
	templatecases.Props(doc)["surprise"] = true
	templatecases.Props(doc)["buildTimeoutInMinutes"] = "60"
	tmpl, warns, err := Parse(doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 3 || tmpl.Properties.BuildTimeoutInMinutes != 60 {
		t.Fatalf("want 3 warnings and a 60 minute timeout, got %v, %d", warns, tmpl.Properties.BuildTimeoutInMinutes)
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		line, col int
		contains  string
	}{
		{"placeholder", "{\n  \"a\": <minutes>\n}", 2, 8, "placeholder"},
		{"single quotes", "{\n 'a': 1}", 2, 2, "double quotes"},
		{"missing comma", "{\"a\": 1\n \"b\": 2}", 2, 2, "invalid character"},
		{"unclosed", "{\"a\": [1, 2", 1, 12, "not closed"},
		{"empty", "", 1, 1, "empty"},
		{"trailing", "{} {}", 1, 4, "after the end"},
		{"open comment", "{ /* x ", 1, 3, "comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeJSON([]byte(tt.in))
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("err = %v, want *SyntaxError", err)
			}
			if se.Line != tt.line || se.Column != tt.col || !strings.Contains(se.Msg, tt.contains) {
				t.Errorf("got %v, want line %d col %d containing %q", se, tt.line, tt.col, tt.contains)
			}
		})
	}
	v, err := DecodeJSON([]byte("// head\n{\"a\": \"http://x,]\" /* c */, \"b\": [1, 2, // x\n],}\n"))
	if err != nil || v.(map[string]any)["a"] != "http://x,]" || len(v.(map[string]any)["b"].([]any)) != 2 {
		t.Fatalf("comments and trailing commas: %v %v", v, err)
	}
}

// TestISOSourcesRefused: the spec's own ISO example (2018-02-01-preview) is
// refused for its source alone, at every apiVersion that can hold it.
func TestISOSourcesRefused(t *testing.T) {
	data, err := os.ReadFile("testdata/iso-rhel-2018-02-01-preview.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2018-02-01-preview", "2019-02-01-preview", "2019-05-01-preview", "2020-02-14", LatestAPIVersion()} {
		t.Run(v, func(t *testing.T) {
			doc := mustDecode(t, data)
			doc["apiVersion"] = v
			if v >= "2019-05" {
				src := templatecases.Props(doc)["source"].(map[string]any)
				src["sourceUri"] = src["sourceURI"]
				delete(src, "sourceURI")
				c := templatecases.Customizer(doc, 0)
				c["scriptUri"] = c["script"]
				delete(c, "script")
			}
			if v >= "2020" {
				doc["identity"] = map[string]any{"type": "None"}
			}
			_, _, err := Parse(doc, Options{})
			inv, ok := err.(*InvalidError)
			if !ok || len(inv.Problems) != 1 {
				t.Fatalf("want exactly the ISO refusal, got %v", err)
			}
			p := inv.Problems[0]
			if p.Code != CodeBadSourceType || p.Target != "properties.source.type" || !strings.Contains(p.Message, ISONoLongerAccepted) {
				t.Errorf("got %s", p)
			}
		})
	}
}
