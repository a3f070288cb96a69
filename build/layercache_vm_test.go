package build

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/layer"
	tmpl "github.com/goldsmith-dev/goldsmith/template"
)

// TestLayerCacheRealVM: the layer cache over real QEMU VMs booted from the
// catalog's Debian 12 image. A first build saves a layer after each of its
// three customizers, the second of which reboots the guest; a rebuild with
// only the third changed restores layer 2 (saved after the reboot), runs
// the third alone, and its output holds what all three wrote.
func TestLayerCacheRealVM(t *testing.T) {
	needVM(t)
	if _, err := exec.LookPath("debugfs"); err != nil {
		t.Skip("debugfs not installed")
	}
	b := newBuilder(t)
	cache, err := layer.Open(filepath.Join(t.TempDir(), "layers"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Layers = cache
	template := func(third string) *tmpl.Template {
		return inlineTemplate(t, `[
		  {"type": "Shell", "name": "one", "inline": ["echo one-wrote-this | sudo tee /etc/goldsmith-layer-one"]},
		  {"type": "Shell", "name": "reboot", "inline": ["echo two-wrote-this | sudo tee /etc/goldsmith-layer-two", "sudo shutdown -r now"]},
		  {"type": "Shell", "name": "three", "inline": [
		    "cat /etc/goldsmith-layer-one /etc/goldsmith-layer-two",
		    "echo `+third+` | sudo tee /etc/goldsmith-layer-three"]}]`)
	}
	build := func(tp *tmpl.Template) (*Result, string) {
		t.Helper()
		work, out := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "out")
		var live syncBuffer
		res, err := b.Run(context.Background(), Request{Template: tp, WorkDir: work, OutputDir: out, Log: &live, LayerCache: true})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, tail(live.String(), 80))
		}
		assertClean(t, work)
		return res, live.String()
	}

	first, _ := build(template("three-first"))
	l := first.Manifest.Layers
	if l == nil || l.Restored != "" || len(l.Built) != 4 {
		t.Fatalf("first build's layers: %s", jsonOf(t, l))
	}
	if !first.Manifest.Steps[1].Rebooted {
		t.Errorf("customizer 2 did not reboot: %+v", first.Manifest.Steps)
	}
	layer2 := l.Built[2].Key

	second, log := build(template("three-second"))
	l = second.Manifest.Layers
	if l == nil || l.Restored != layer2 || l.ReusedCustomizers != 2 || len(l.Built) != 1 || l.Built[0].Step != 3 ||
		l.Built[0].Key == first.Manifest.Layers.Built[3].Key {
		t.Errorf("rebuild's layers: %s; want layer 2 (%.12s) restored, a new layer 3 built", jsonOf(t, l), layer2)
	}
	for i, s := range second.Manifest.Steps {
		if s.Reused != (i < 2) {
			t.Errorf("rebuild: customizer %d reused=%v", i+1, s.Reused)
		}
	}
	// Only the third ran, and it found what the first two left.
	for _, want := range []string{fmt.Sprintf("build VM restored from layer %.12s", layer2),
		"[one] reused from the layer cache: not run", "[reboot] reused from the layer cache: not run",
		"[three] one-wrote-this", "[three] two-wrote-this", "[three] three-second"} {
		if !strings.Contains(log, want) {
			t.Errorf("rebuild log lacks %q:\n%s", want, tail(log, 60))
		}
	}
	if strings.Contains(log, "[one] one-wrote-this") {
		t.Error("the rebuild ran customizer 1")
	}

	// The output image holds all three customizers' files.
	vhd := second.Outputs[0].Path
	root := rootPartition(t, vhd)
	for file, want := range map[string]string{
		"/etc/goldsmith-layer-one":   "one-wrote-this",
		"/etc/goldsmith-layer-two":   "two-wrote-this",
		"/etc/goldsmith-layer-three": "three-second",
	} {
		out, err := exec.Command("debugfs", "-R", "cat "+file, root).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%s in the output: %q (%v), want %q", file, out, err, want)
		}
	}
}

// rootPartition names the largest partition of a raw or fixed VHD disk as
// debugfs opens it: the file with the partition's offset.
func rootPartition(t *testing.T, path string) string {
	t.Helper()
	parts, err := disk.Sfdisk{Run: disk.Exec{}}.Read(context.Background(), path)
	if err != nil || len(parts) == 0 {
		t.Fatalf("partitions of %s: %v %v", path, parts, err)
	}
	root := parts[0]
	for _, p := range parts[1:] {
		if p.Size > root.Size {
			root = p
		}
	}
	return fmt.Sprintf("%s?offset=%d", path, root.Start)
}
