package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestValidateExitCodesAndOutput(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings
		stderr   []string
		jsonCode string // with --output json: the envelope's error code ("" for a valid template)
	}{
		{"valid example", []string{"template", "validate", "../../examples/debian12-webserver.json"}, exitOK,
			[]string{"valid (apiVersion 2019-05-01-preview, source PlatformImage, 5 customizers, 3 distribute targets)"}, nil, ""},
		{"deployment with parameters", []string{"template", "validate", "testdata/deploy.json", "-p", "testdata/deploy.parameters.json"}, exitOK,
			[]string{"testdata/deploy.json resources[0]: valid (apiVersion 2020-02-14"}, nil, ""},
		{"deployment missing a parameter", []string{"template", "validate", "testdata/deploy.json"}, exitFailure,
			[]string{"imageTemplateName"}, nil, ""},
		{"invalid template", []string{"template", "validate", "testdata/invalid.json"}, exitFailure,
			[]string{"invalid (3 errors)", "properties.customize[0].scriptUri", "UnsupportedCustomizerType", "properties.distribute[0].runOutputName"}, nil, ""},
		{"malformed JSON", []string{"template", "validate", "testdata/malformed.json"}, exitFailure,
			[]string{"InvalidRequestContent", "line 3, column 28", "placeholder"}, nil, ""},
		{"missing file", []string{"template", "validate", "testdata/nope.json"}, exitFailure, []string{"no such file"}, nil, ""},
		{"no file", []string{"template", "validate"}, exitUsage, nil, []string{"requires at least 1 arg"}, ""},
		{"bad flag", []string{"template", "validate", "--nope", "x.json"}, exitUsage, nil, []string{"unknown flag"}, ""},
		{"bad output", []string{"template", "validate", "-o", "yaml", "x.json"}, exitUsage, nil, []string{"--output"}, ""},
		{"bad api-version", []string{"template", "validate", "--api-version", "2017-01-01", "x.json"}, exitUsage, nil, []string{"not supported"}, ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, nil, []string{"unknown command"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	code, stdout, _ := runCLI(t, "template", "validate", "-o", "json", "../../examples/debian12-webserver.json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stdout)
	}
	var tmpl struct {
		APIVersion string `json:"apiVersion"`
		Properties struct {
			Customize []struct{ Type string } `json:"customize"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(stdout), &tmpl); err != nil || tmpl.APIVersion != "2019-05-01-preview" || len(tmpl.Properties.Customize) != 5 {
		t.Fatalf("canonical JSON: %v %+v\n%s", err, tmpl, stdout)
	}

	code, stdout, _ = runCLI(t, "template", "validate", "--output", "json", "testdata/invalid.json")
	if code != exitFailure {
		t.Fatalf("exit %d", code)
	}
	var env struct {
		Error struct {
			Code    string
			Message string
			Details []struct{ Code, Target, Message string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &env); err != nil {
		t.Fatalf("envelope: %v\n%s", err, stdout)
	}
	if env.Error.Code != "InvalidTemplate" || len(env.Error.Details) != 3 || env.Error.Details[1].Code != "UnsupportedCustomizerType" ||
		env.Error.Details[1].Target != "properties.customize[1].type" {
		t.Fatalf("envelope: %+v", env)
	}
}

func TestCatalogAliasAndList(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, "catalog", "alias", "Canonical:UbuntuServer:18.04-LTS", "Debian:debian-12:12", "--data-dir", dir)
	if code != exitOK || !strings.Contains(out, "Canonical:UbuntuServer:18.04-LTS") {
		t.Fatalf("alias: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "catalog", "ls", "-o", "json", "--data-dir", dir)
	var got struct {
		Images  []any
		Aliases []struct{ From, To string }
	}
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || len(got.Aliases) != 1 || got.Aliases[0].To != "Debian:debian-12:12" {
		t.Fatalf("ls: exit %d %+v\n%s", code, got, out)
	}
	if code, _, errOut := runCLI(t, "catalog", "alias", "not-a-urn", "Debian:debian-12:12", "--data-dir", dir); code != exitFailure || errOut == "" {
		t.Errorf("bad URN: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "catalog", "import", "X:y:z", "/nonexistent", "--data-dir", dir); code != exitUsage || !strings.Contains(errOut, "--sha256") {
		t.Errorf("import without digest: exit %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "catalog", "alias", "Canonical:UbuntuServer:18.04-LTS", "--remove", "--data-dir", dir); code != exitOK {
		t.Errorf("remove alias: exit %d", code)
	}
}

func TestBuildRefusesInvalidTemplates(t *testing.T) {
	code, _, errOut := runCLI(t, "build", "testdata/invalid.json", "--data-dir", t.TempDir())
	if code != exitFailure || !strings.Contains(errOut, "not a valid template") || !strings.Contains(errOut, "UnsupportedCustomizerType") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "build"); code != exitUsage {
		t.Errorf("no template: exit %d", code)
	}
}
