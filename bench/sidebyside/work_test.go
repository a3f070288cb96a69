package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
	"github.com/goldsmith-dev/goldsmith/template"
)

// loadGoldsmith evaluates goldsmith.json with the parameter file the runner
// writes, as `goldsmith build --parameters` does.
func loadGoldsmith(t *testing.T, w pairWork, checkText string) *template.Template {
	t.Helper()
	data, err := goldsmithParameters(w, checkText, "Standard_D2s_v3", "12.20261203.0")
	if err != nil {
		t.Fatal(err)
	}
	params, err := armtemplate.ParseParameterFile(data)
	if err != nil {
		t.Fatal(err)
	}
	found, err := template.Load(goldsmithTemplate, template.LoadOptions{Parameters: params})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Err != nil || len(found[0].Warnings) > 0 {
		t.Fatalf("goldsmith.json: %+v", found)
	}
	return found[0].Template
}

func testWork(t *testing.T) pairWork {
	t.Helper()
	w, err := newPairWork(t.TempDir(), "http://127.0.0.1:9", 1, payload())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestGoldsmithTemplate(t *testing.T) {
	w := testWork(t)
	tm := loadGoldsmith(t, w, "warm x")
	p := tm.Properties
	if p.VMProfile.VMSize != "Standard_D2s_v3" || p.Source.Version != "12.20261203.0" {
		t.Errorf("vmProfile %+v, source %+v", p.VMProfile, p.Source)
	}
	if len(p.Distribute) != 1 || p.Distribute[0].Type != template.DistributeVHD {
		t.Errorf("distribute %+v", p.Distribute)
	}
	want := []struct {
		typ     template.CustomizerType
		uri     string
		sha     string
		reboots bool
	}{
		{template.CustomizeShell, w.BaseURI + "/setup.sh", w.SetupSHA256, false},
		{template.CustomizeFile, w.BaseURI + "/payload.bin", w.PayloadSHA256, false},
		{template.CustomizeShell, "", "", false},
		{template.CustomizeShell, "", "", true},
		{template.CustomizeShell, "", "", false},
	}
	if len(p.Customize) != len(want) {
		t.Fatalf("%d customizers, want %d", len(p.Customize), len(want))
	}
	for i, c := range p.Customize {
		uri := c.ScriptURI + c.SourceURI
		reboots := strings.Contains(strings.Join(c.Inline, "\n"), "shutdown -r now")
		if c.Type != want[i].typ || uri != want[i].uri || c.SHA256Checksum != want[i].sha || reboots != want[i].reboots {
			t.Errorf("customizer %d: %+v", i, c)
		}
	}
	if last := p.Customize[4].Inline; last[len(last)-1] != `echo "bench-check: warm x"` {
		t.Errorf("check ends with %q", last[len(last)-1])
	}
}

func TestRebuildChangesOnlyTheLastCustomizer(t *testing.T) {
	w := testWork(t)
	warm := loadGoldsmith(t, w, "warm "+w.Nonce).Properties.Customize
	rebuild := loadGoldsmith(t, w, "rebuild "+w.Nonce).Properties.Customize
	n := len(warm) - 1
	if !reflect.DeepEqual(warm[:n], rebuild[:n]) {
		t.Errorf("customizers before the last differ:\n%+v\n%+v", warm[:n], rebuild[:n])
	}
	if reflect.DeepEqual(warm[n], rebuild[n]) {
		t.Error("the last customizer is the same in the rebuild")
	}
}

// TestSameWork checks that Packer's inline steps are goldsmith's, word for
// word, once both templates have their values.
func TestSameWork(t *testing.T) {
	w := testWork(t)
	custom := loadGoldsmith(t, w, "warm x").Properties.Customize
	var pk struct {
		Provisioners []struct {
			Type   string   `json:"type"`
			Inline []string `json:"inline"`
			Script string   `json:"script"`
			Source string   `json:"source"`
			Dest   string   `json:"destination"`
		} `json:"provisioners"`
	}
	if err := json.Unmarshal(packerTemplate, &pk); err != nil {
		t.Fatal(err)
	}
	if len(pk.Provisioners) != len(custom)+1 {
		t.Fatalf("%d provisioners for %d customizers and the deprovision", len(pk.Provisioners), len(custom))
	}
	vars := strings.NewReplacer("{{user `payload_sha256`}}", w.PayloadSHA256, "{{user `check_text`}}", "warm x")
	for i, c := range custom {
		p := pk.Provisioners[i]
		switch {
		case c.Type == template.CustomizeFile:
			if p.Type != "file" || p.Dest != c.Destination {
				t.Errorf("provisioner %d: %+v for %+v", i, p, c)
			}
		case c.ScriptURI != "":
			if p.Type != "shell" || p.Script != "{{user `setup_script`}}" {
				t.Errorf("provisioner %d: %+v for %+v", i, p, c)
			}
		default:
			var got []string
			for _, l := range p.Inline {
				got = append(got, vars.Replace(l))
			}
			if !reflect.DeepEqual(got, c.Inline) {
				t.Errorf("provisioner %d runs\n%q\ngoldsmith's customizer %q runs\n%q", i, got, c.Name, c.Inline)
			}
		}
	}
}

func TestPairWorkServed(t *testing.T) {
	root := t.TempDir()
	srv, err := serve(root)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pay := payload()
	w1, err := newPairWork(root, srv.URL, 1, pay)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := newPairWork(root, srv.URL, 2, pay)
	if err != nil {
		t.Fatal(err)
	}
	if w1.Nonce == w2.Nonce || w1.SetupSHA256 == w2.SetupSHA256 {
		t.Errorf("pairs share a nonce or a setup script: %q %q", w1.Nonce, w2.Nonce)
	}
	if w1.PayloadSHA256 != w2.PayloadSHA256 || len(pay) != payloadSize {
		t.Error("the payload is not the same in every pair")
	}
	for _, f := range []struct{ uri, sha string }{
		{w1.BaseURI + "/setup.sh", w1.SetupSHA256},
		{w2.BaseURI + "/payload.bin", w2.PayloadSHA256},
	} {
		resp, err := http.Get(f.uri)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", f.uri, resp.StatusCode, err)
		}
		if sha256Hex(body) != f.sha {
			t.Errorf("GET %s: sha256 %s, want %s", f.uri, sha256Hex(body), f.sha)
		}
		if strings.HasSuffix(f.uri, ".sh") && !bytes.Contains(body, []byte(w1.Nonce)) {
			t.Errorf("setup.sh lacks the nonce:\n%s", body)
		}
	}
}

// TestPackerValidates runs the real `packer validate` on packer.json with
// the variables the runner passes.
func TestPackerValidates(t *testing.T) {
	bin, err := exec.LookPath("packer")
	if err != nil {
		t.Skip("packer is not installed (apt-get install packer)")
	}
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "packer.json")
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(tmpl, packerTemplate, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := writePackerIdentity(filepath.Join(dir, "fwcfg"), key); err != nil {
		t.Fatal(err)
	}
	for _, item := range []string{"user", "authorized_keys", "ssh_host_ed25519_key"} {
		if _, err := os.Stat(filepath.Join(dir, "fwcfg", item)); err != nil {
			t.Error(err)
		}
	}
	w := testWork(t)
	vars := map[string]string{
		"base_image": w.PayloadPath, "base_sha256": w.PayloadSHA256, "disk_size": "4096M", "accelerator": "tcg",
		"cpus": "2", "memory_mib": "8192", "output_dir": filepath.Join(dir, "out"), "fwcfg_dir": filepath.Join(dir, "fwcfg"),
		"ssh_key": key, "serial_socket": filepath.Join(dir, "s"), "setup_script": w.SetupPath, "payload": w.PayloadPath,
		"payload_sha256": w.PayloadSHA256, "check_text": "x", "deprovision_script": w.SetupPath, "vhd": filepath.Join(dir, "d.vhd"),
	}
	data, _ := json.Marshal(vars)
	varFile := filepath.Join(dir, "vars.json")
	if err := os.WriteFile(varFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = processGroup{}.Run(context.Background(), command{Path: bin, Args: []string{"validate", "-var-file=" + varFile, tmpl},
		Dir: dir, Env: []string{"CHECKPOINT_DISABLE=1"}, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}
