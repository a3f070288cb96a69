package template

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

const (
	sub     = "00000000-0000-0000-0000-000000000001"
	imgID   = "/subscriptions/" + sub + "/resourceGroups/images/providers/Microsoft.Compute/images/img"
	galID   = "/subscriptions/" + sub + "/resourceGroups/images/providers/Microsoft.Compute/galleries/g/images/def"
	identID = "/subscriptions/" + sub + "/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib"
)

// base returns a valid template of the given apiVersion as a JSON object,
// for tests to break one thing at a time.
func base(apiVersion string) map[string]any {
	doc := map[string]any{
		"type":       ResourceType,
		"apiVersion": apiVersion,
		"location":   "westus2",
		"properties": map[string]any{
			"source":    map[string]any{"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
			"customize": []any{map[string]any{"type": "Shell", "name": "a", "inline": []any{"true"}}},
			"distribute": []any{
				map[string]any{"type": "ManagedImage", "imageId": imgID, "location": "westus2", "runOutputName": "out"},
			},
		},
	}
	if apiVersion >= "2020" {
		doc["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{identID: map[string]any{}}}
	}
	return doc
}

func props(doc map[string]any) map[string]any { return doc["properties"].(map[string]any) }

func customizer(doc map[string]any, i int) map[string]any {
	return props(doc)["customize"].([]any)[i].(map[string]any)
}

func dist(doc map[string]any, i int) map[string]any {
	return props(doc)["distribute"].([]any)[i].(map[string]any)
}

func TestParseInvalid(t *testing.T) {
	const v = "2022-07-01"
	tests := []struct {
		name       string
		apiVersion string
		mutate     func(doc map[string]any)
		code       string
		target     string // expected JSON path of the (first) matching problem
		contains   string // expected substring of its message
	}{
		{"no source type", v, func(d map[string]any) { delete(props(d)["source"].(map[string]any), "type") },
			CodeBadSourceType, "properties.source.type", "required"},
		{"unknown source type", v, func(d map[string]any) { props(d)["source"].(map[string]any)["type"] = "Marketplace" },
			CodeBadSourceType, "properties.source.type", "Marketplace"},
		{"ISO after the previews", "2020-02-14", func(d map[string]any) {
			props(d)["source"] = map[string]any{"type": "ISO", "sourceUri": "https://x/rhel.iso", "sha256Checksum": strings.Repeat("a", 64)}
		}, CodeBadSourceType, "properties.source.type", "only the preview api-versions had them, until AIB stopped accepting them on 31 March 2020"},
		{"ISO in the previews", "2019-05-01-preview", func(d map[string]any) {
			props(d)["source"] = map[string]any{"type": "ISO", "sourceUri": "https://x/rhel.iso", "sha256Checksum": strings.Repeat("a", 64)}
		}, CodeBadSourceType, "properties.source.type", "stopped accepting templates with ISO sources on 31 March 2020 and building them on 30 April 2020"},
		{"no source", v, func(d map[string]any) { delete(props(d), "source") }, CodeBadSourceType, "properties.source", "required"},
		{"PIR without sku", v, func(d map[string]any) { delete(props(d)["source"].(map[string]any), "sku") },
			CodeBadPIRSource, "properties.source.sku", "sku"},
		{"latest in 2019-02-01-preview", "2019-02-01-preview", func(d map[string]any) {}, CodeBadPIRSource, "properties.source.version", "latest"},
		{"ISO without checksum", "2018-02-01-preview", func(d map[string]any) {
			props(d)["source"] = map[string]any{"type": "ISO", "sourceURI": "https://x/rhel.iso"}
			props(d)["customize"] = []any{}
			dist(d, 0)["type"] = "managedImage"
		}, CodeBadISOSource, "properties.source.sha256Checksum", "sha256Checksum"},
		{"ISO with file URI", "2019-05-01-preview", func(d map[string]any) {
			props(d)["source"] = map[string]any{"type": "ISO", "sourceUri": "file:///tmp/rhel.iso", "sha256Checksum": strings.Repeat("a", 64)}
		}, CodeBadISOSource, "properties.source.sourceUri", "http"},
		{"managed image source id malformed", v, func(d map[string]any) {
			props(d)["source"] = map[string]any{"type": "ManagedImage", "imageId": "/subscriptions/" + sub + "/resourceGroups/images/providers/Microsoft.Compute/disks/x"}
		}, CodeBadManagedImageSource, "properties.source.imageId", "managed image"},
		{"gallery version source is a definition", v, func(d map[string]any) {
			props(d)["source"] = map[string]any{"type": "SharedImageVersion", "imageVersionId": galID}
		}, CodeBadSharedImageVersionSrc, "properties.source.imageVersionId", "gallery image version"},
		{"customizer without type", v, func(d map[string]any) { delete(customizer(d, 0), "type") },
			CodeBadCustomizerType, "properties.customize[0].type", "required"},
		{"unknown customizer", v, func(d map[string]any) { customizer(d, 0)["type"] = "Ansible" },
			CodeBadCustomizerType, "properties.customize[0].type", "Ansible"},
		{"WindowsRestart on Linux", v, func(d map[string]any) {
			props(d)["customize"] = []any{map[string]any{"type": "WindowsRestart", "restartTimeout": "5m"}}
		}, CodeUnsupportedCustomizerType, "properties.customize[0].type", "Linux"},
		{"WindowsUpdate on Linux", v, func(d map[string]any) {
			props(d)["customize"] = []any{map[string]any{"type": "WindowsUpdate"}}
		}, CodeUnsupportedCustomizerType, "properties.customize[0].type", "Windows"},
		{"File before 2019-05-01-preview", "2019-02-01-preview", func(d map[string]any) {
			props(d)["source"].(map[string]any)["version"] = "1.0.0"
			props(d)["customize"] = []any{map[string]any{"type": "File", "sourceUri": "https://x/y", "destination": "/tmp/y"}}
		}, CodeUnsupportedCustomizerType, "properties.customize[0].type", "2019-02-01-preview"},
		{"Shell with no script", v, func(d map[string]any) { delete(customizer(d, 0), "inline") },
			CodeNoCustomizerScript, "properties.customize[0]", "no script"},
		{"Shell with script and inline", v, func(d map[string]any) { customizer(d, 0)["scriptUri"] = "https://x/s.sh" },
			CodeInvalidTemplate, "properties.customize[0].inline", "not both"},
		{"script under the old name", v, func(d map[string]any) {
			delete(customizer(d, 0), "inline")
			customizer(d, 0)["script"] = "https://x/s.sh"
		}, CodeNoCustomizerScript, "properties.customize[0].script", "scriptUri"},
		{"file:// script", v, func(d map[string]any) {
			delete(customizer(d, 0), "inline")
			customizer(d, 0)["scriptUri"] = "file:///etc/passwd"
		}, CodeInvalidTemplate, "properties.customize[0].scriptUri", `scheme "file"`},
		{"ftp script", v, func(d map[string]any) {
			delete(customizer(d, 0), "inline")
			customizer(d, 0)["scriptUri"] = "ftp://x/s.sh"
		}, CodeInvalidTemplate, "properties.customize[0].scriptUri", "http"},
		{"short checksum", v, func(d map[string]any) {
			delete(customizer(d, 0), "inline")
			customizer(d, 0)["scriptUri"] = "https://x/s.sh"
			customizer(d, 0)["sha256Checksum"] = "abc"
		}, CodeInvalidTemplate, "properties.customize[0].sha256Checksum", "64 hexadecimal"},
		{"duplicate customizer names", v, func(d map[string]any) {
			props(d)["customize"] = append(props(d)["customize"].([]any), map[string]any{"type": "Shell", "name": "A", "inline": []any{"true"}})
		}, CodeInvalidTemplate, "properties.customize[1].name", "unique"},
		{"File outside /tmp on Linux", v, func(d map[string]any) {
			props(d)["customize"] = []any{map[string]any{"type": "File", "sourceUri": "https://x/y", "destination": "/etc/y"}}
		}, CodeInvalidTemplate, "properties.customize[0].destination", "/tmp"},
		{"validator without type", v, func(d map[string]any) {
			props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"name": "v", "inline": []any{"true"}}}}
		}, CodeBadValidatorType, "properties.validate.inVMValidations[0].type", "required"},
		{"unknown validator", v, func(d map[string]any) {
			props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"type": "Pester", "inline": []any{"true"}}}}
		}, CodeBadValidatorType, "properties.validate.inVMValidations[0].type", "Pester"},
		{"WindowsRestart validator", v, func(d map[string]any) {
			props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"type": "WindowsRestart"}}}
		}, CodeUnsupportedValidatorType, "properties.validate.inVMValidations[0].type", "not supported"},
		{"validator without script", v, func(d map[string]any) {
			props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"type": "Shell", "name": "v"}}}
		}, CodeNoValidatorScript, "properties.validate.inVMValidations[0]", "no script"},
		{"source validation without validators", v, func(d map[string]any) {
			props(d)["validate"] = map[string]any{"sourceValidationOnly": true}
		}, CodeInvalidTemplate, "properties.validate.inVMValidations", "none"},
		{"no distribute", v, func(d map[string]any) { delete(props(d), "distribute") },
			CodeBadDistributeType, "properties.distribute", "at least one"},
		{"unknown distribute type", v, func(d map[string]any) { dist(d, 0)["type"] = "S3" },
			CodeBadDistributeType, "properties.distribute[0].type", "S3"},
		{"gallery id malformed", v, func(d map[string]any) {
			props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "galleryImageId": "/subscriptions/" + sub + "/resourceGroups/images/providers/Microsoft.Compute/galleries/g", "runOutputName": "o"}}
		}, CodeBadSharedImageDistribute, "properties.distribute[0].galleryImageId", "gallery image definition"},
		{"replicationRegions required before 2022-07-01", "2021-10-01", func(d map[string]any) {
			props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "galleryImageId": galID, "runOutputName": "o"}}
		}, CodeBadSharedImageDistribute, "properties.distribute[0].replicationRegions", "replicationRegions"},
		{"targetRegions and replicationRegions", v, func(d map[string]any) {
			props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "galleryImageId": galID, "runOutputName": "o",
				"replicationRegions": []any{"westus2"}, "targetRegions": []any{map[string]any{"name": "westus2"}}}}
		}, CodeBadSharedImageDistribute, "properties.distribute[0].targetRegions", "not both"},
		{"bad staging resource group", "2022-02-14", func(d map[string]any) {
			props(d)["stagingResourceGroup"] = "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/images/x"
		}, CodeBadStagingResourceGroup, "properties.stagingResourceGroup", "resource group"},
		{"runOutputName missing", v, func(d map[string]any) { delete(dist(d, 0), "runOutputName") },
			CodeInvalidTemplate, "properties.distribute[0].runOutputName", "required"},
		{"runOutputName pattern", v, func(d map[string]any) { dist(d, 0)["runOutputName"] = "has space" },
			CodeInvalidTemplate, "properties.distribute[0].runOutputName", "1-64"},
		{"runOutputName dot before 2020-02-14", "2019-05-01-preview", func(d map[string]any) { dist(d, 0)["runOutputName"] = "a.b" },
			CodeInvalidTemplate, "properties.distribute[0].runOutputName", "2019-05-01-preview"},
		{"runOutputName duplicate", v, func(d map[string]any) {
			props(d)["distribute"] = append(props(d)["distribute"].([]any), map[string]any{"type": "VHD", "runOutputName": "OUT"})
		}, CodeInvalidTemplate, "properties.distribute[1].runOutputName", "already used"},
		{"managed image id malformed", v, func(d map[string]any) { dist(d, 0)["imageId"] = "images/x" },
			CodeInvalidTemplate, "properties.distribute[0].imageId", "/subscriptions/"},
		{"timeout above 960", v, func(d map[string]any) { props(d)["buildTimeoutInMinutes"] = json.Number("961") },
			CodeInvalidTemplate, "properties.buildTimeoutInMinutes", "960"},
		{"negative timeout", v, func(d map[string]any) { props(d)["buildTimeoutInMinutes"] = json.Number("-1") },
			CodeInvalidTemplate, "properties.buildTimeoutInMinutes", "between 0"},
		{"timeout not a number", v, func(d map[string]any) { props(d)["buildTimeoutInMinutes"] = "an hour" },
			CodeInvalidTemplate, "properties.buildTimeoutInMinutes", "integer"},
		{"negative disk size", v, func(d map[string]any) { props(d)["vmProfile"] = map[string]any{"osDiskSizeGB": json.Number("-5")} },
			CodeInvalidTemplate, "properties.vmProfile.osDiskSizeGB", "0"},
		{"two identities", v, func(d map[string]any) {
			d["identity"].(map[string]any)["userAssignedIdentities"].(map[string]any)[identID+"2"] = map[string]any{}
		}, CodeInvalidTemplate, "identity.userAssignedIdentities", "one user-assigned identity"},
		{"identity id malformed", v, func(d map[string]any) {
			d["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{"aib": map[string]any{}}}
		}, CodeInvalidTemplate, "identity.userAssignedIdentities.aib", "user-assigned identity"},
		{"identity required from 2020-02-14", "2020-02-14", func(d map[string]any) { delete(d, "identity") },
			CodeInvalidTemplate, "identity", "required"},
		{"wrongly cased property in 2024-02-01", "2024-02-01", func(d map[string]any) {
			delete(customizer(d, 0), "inline")
			customizer(d, 0)["ScriptUri"] = "https://x/s.sh"
		}, CodeInvalidTemplate, "properties.customize[0].ScriptUri", "case-sensitive"},
		{"no location", v, func(d map[string]any) { delete(d, "location") }, CodeLocationRequired, "location", "required"},
		{"bad name", v, func(d map[string]any) { d["name"] = "a b" }, CodeInvalidParameter, "name", "letters, digits"},
		{"unsupported apiVersion", "2021-01-01", func(d map[string]any) {}, CodeInvalidTemplate, "apiVersion", "not supported"},
		{"properties misplaced", v, func(d map[string]any) {
			for k, val := range props(d) {
				d[k] = val
			}
			delete(d, "properties")
		}, CodeInvalidTemplate, "properties", "top level"},
		{"wrong resource type", v, func(d map[string]any) { d["type"] = "Microsoft.Compute/images" },
			CodeInvalidTemplate, "type", "imageTemplates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := base(tt.apiVersion)
			tt.mutate(doc)
			_, _, err := Parse(doc, Options{})
			inv, ok := err.(*InvalidError)
			if !ok {
				t.Fatalf("Parse error = %v, want *InvalidError", err)
			}
			for _, p := range inv.Problems {
				if p.Code == tt.code && p.Target == tt.target && strings.Contains(p.Message, tt.contains) {
					return
				}
			}
			t.Errorf("no problem %s at %s containing %q; got:\n%v", tt.code, tt.target, tt.contains, inv)
		})
	}
}

// TestParseReportsEveryError: a user sees all mistakes at once.
func TestParseReportsEveryError(t *testing.T) {
	doc := base("2022-07-01")
	delete(customizer(doc, 0), "inline")
	dist(doc, 0)["runOutputName"] = "bad name"
	props(doc)["buildTimeoutInMinutes"] = json.Number("10000")
	_, _, err := Parse(doc, Options{})
	inv, ok := err.(*InvalidError)
	if !ok || len(inv.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
}

func TestWarnings(t *testing.T) {
	doc := base("2020-02-14")
	props(doc)["validate"] = map[string]any{}
	props(doc)["surprise"] = true
	props(doc)["buildTimeoutInMinutes"] = "60"
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
				src := props(doc)["source"].(map[string]any)
				src["sourceUri"] = src["sourceURI"]
				delete(src, "sourceURI")
				c := customizer(doc, 0)
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
