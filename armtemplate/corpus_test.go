package armtemplate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/goldsmith-dev/goldsmith/armtemplate"
	"github.com/goldsmith-dev/goldsmith/internal/corpus"
)

// placeholderParameters gives a value to every parameter without a
// default, as a user would on the command line.
func placeholderParameters(doc map[string]any) map[string]any {
	out := map[string]any{}
	params, _ := doc["parameters"].(map[string]any)
	for name, d := range params {
		decl, ok := d.(map[string]any)
		if !ok {
			continue
		}
		if _, hasDefault := decl["defaultValue"]; hasDefault {
			continue
		}
		if allowed, ok := decl["allowedValues"].([]any); ok && len(allowed) > 0 {
			out[name] = allowed[0]
			continue
		}
		typ, _ := decl["type"].(string)
		switch strings.ToLower(typ) {
		case "int":
			n := 1.0
			if mv, ok := decl["minValue"].(float64); ok {
				n = mv
			}
			out[name] = n
		case "bool":
			out[name] = true
		case "array":
			out[name] = []any{}
		case "object", "secureobject":
			out[name] = map[string]any{}
		default:
			out[name] = "p-" + name
		}
	}
	return out
}

type corpusStats struct {
	files, notJSON, notDeployment, evaluated, clean, failed int
	imageTemplates, imgClean                                int
	reasons                                                 map[string]int
}

// TestCorpus evaluates every deployment template of the shared corpus of
// real templates (skipped when it is absent, failing in CI): no panic, no
// unknown function, errors only as an ErrorList, and the counts below.
func TestCorpus(t *testing.T) {
	corpusDir := filepath.Join(corpus.Shared(t, "corpus"), "templates")
	st := corpusStats{reasons: map[string]int{}}
	ctx := Context{SubscriptionID: "11111111-2222-3333-4444-555555555555", ResourceGroup: "rg-corpus", Location: "westeurope", Now: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	err := filepath.WalkDir(corpusDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		st.files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc map[string]any
		if json.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &doc) != nil {
			st.notJSON++
			return nil
		}
		if !IsDeploymentTemplate(doc) {
			st.notDeployment++
			return nil
		}
		st.evaluated++
		c := ctx
		c.Parameters = placeholderParameters(doc)
		rel, _ := filepath.Rel(corpusDir, path)
		var res []Resource
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic: %v", rel, r)
				}
			}()
			res, err = Evaluate(doc, c)
		}()
		imgs, imgErr := ImageTemplates(doc, c)
		st.imageTemplates += len(imgs)
		if imgErr == nil {
			st.imgClean++
		}
		if err == nil {
			st.clean++
			if imgErr != nil {
				t.Errorf("%s: Evaluate succeeded but ImageTemplates failed: %v", rel, imgErr)
			}
			_ = res
			return nil
		}
		st.failed++
		var list ErrorList
		if !errors.As(err, &list) {
			t.Errorf("%s: error is not an ErrorList: %v", rel, err)
			return nil
		}
		for _, e := range list {
			if strings.Contains(e.Msg, "unknown ARM template function") || strings.Contains(e.Msg, "internal error") {
				t.Errorf("%s: %v", rel, e)
			}
			st.reasons[reasonOf(e.Msg)]++
		}
		if testing.Verbose() {
			t.Logf("%s: %v", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("corpus: %d files, %d not JSON, %d not deployment templates, %d evaluated: %d clean, %d with errors; ImageTemplates clean on %d, %d image templates found",
		st.files, st.notJSON, st.notDeployment, st.evaluated, st.clean, st.failed, st.imgClean, st.imageTemplates)
	// Before reference() and the other deploy-time functions became unknown
	// values: 140 clean, 5 with errors, ImageTemplates clean on 140 with 139
	// image templates.
	want := corpusStats{files: 292, notJSON: 20, notDeployment: 127, evaluated: 145, clean: 143, failed: 2, imageTemplates: 142, imgClean: 143}
	got := st
	got.reasons, want.reasons = nil, nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("corpus counts %+v, want %+v", got, want)
	}
	var keys []string
	for k := range st.reasons {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return st.reasons[keys[i]] > st.reasons[keys[j]] })
	for _, k := range keys {
		t.Logf("  %4d × %s", st.reasons[k], k)
	}
}

// reasonOf buckets an error message by its wording without names.
func reasonOf(msg string) string {
	for _, key := range []string{
		"needs a live Azure deployment", "is not one of allowedValues", "has no value",
		"is not defined", "is not declared", "depends on itself", "can only be used in a parameter",
		"does not exist", "must be between", "is declared as",
	} {
		if strings.Contains(msg, key) {
			return key
		}
	}
	if len(msg) > 90 {
		msg = msg[:90]
	}
	return fmt.Sprint(msg)
}
