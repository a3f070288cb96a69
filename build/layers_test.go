package build

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/source"
	tmpl "github.com/goldsmith-dev/goldsmith/template"
)

// TestLayerKeys checks what invalidates which layers: a change to a
// customizer or to the bytes it downloads invalidates its layer and every
// later one, never an earlier one; the source and the disk size invalidate
// all, and so does the VM's network; distribute targets none.
func TestLayerKeys(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (the keys name its version)")
	}
	scripts := map[string]string{"/a.sh": "echo a\n", "/b.sh": "echo b\n"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, scripts[r.URL.Path])
	}))
	defer srv.Close()

	type variant struct {
		script, inline2, inline3, disk, distribute string
		sourceSHA                                  string
		network                                    machine.Network
	}
	orig := variant{script: "/a.sh", inline2: "echo 2", inline3: "echo 3", disk: "0", distribute: "out", sourceSHA: "aaaa"}
	keys := func(v variant) []string {
		t.Helper()
		doc := fmt.Sprintf(`{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-07-01", "location": "westus2",
		  "identity": {"type": "None"},
		  "properties": {
		    "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
		    "vmProfile": {"osDiskSizeGB": %s},
		    "customize": [
		      {"type": "Shell", "name": "one", "scriptUri": "%s%s", "sha256Checksum": "%s"},
		      {"type": "Shell", "name": "two", "inline": [%q]},
		      {"type": "Shell", "name": "three", "inline": [%q]}],
		    "distribute": [{"type": "VHD", "runOutputName": %q}]}}`,
			v.disk, srv.URL, v.script, sha(scripts[v.script]), v.inline2, v.inline3, v.distribute)
		found, err := tmpl.Load([]byte(doc), tmpl.LoadOptions{})
		if err != nil || found[0].Err != nil {
			t.Fatalf("load: %v %v", err, found)
		}
		r := &run{
			b:      &Builder{Fetcher: &customize.Fetcher{}, Accel: machine.AccelTCG, Network: v.network},
			tmpl:   found[0].Template,
			base:   source.Image{DiskSHA256: v.sourceSHA, VirtualSize: 4 << 30, Kernel: "/boot/vmlinuz"},
			logger: nopLogger(),
		}
		k, err := r.layerKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 4 {
			t.Fatalf("%d keys for 3 customizers", len(k))
		}
		return k
	}
	want := keys(orig)
	tests := []struct {
		name      string
		change    func(*variant)
		firstDiff int // index of the first key that must differ; 4: none
	}{
		{"nothing", func(*variant) {}, 4},
		{"distribute target", func(v *variant) { v.distribute = "other" }, 4},
		{"third customizer", func(v *variant) { v.inline3 = "echo 3!" }, 3},
		{"second customizer", func(v *variant) { v.inline2 = "echo two" }, 2},
		{"first customizer's downloaded bytes", func(v *variant) { v.script = "/b.sh" }, 1},
		{"disk size", func(v *variant) { v.disk = "40" }, 0},
		{"source image", func(v *variant) { v.sourceSHA = "bbbb" }, 0},
		// A state saved on slirp holds slirp's state: never restored on passt.
		{"VM network", func(v *variant) { v.network = machine.NetworkSlirp }, 0},
		{"default VM network is the isolated one", func(v *variant) { v.network = machine.NetworkIsolated }, 4},
	}
	for _, tt := range tests {
		v := orig
		tt.change(&v)
		got := keys(v)
		for i := range got {
			if same := got[i] == want[i]; same != (i < tt.firstDiff) {
				t.Errorf("%s: key %d same=%v, want same=%v", tt.name, i, same, i < tt.firstDiff)
			}
		}
	}
	// A changed download behind an unchanged template (same URL, new bytes
	// and checksum) is a changed step.
	scripts["/a.sh"] = "echo a changed\n"
	got := keys(orig)
	if got[0] != want[0] || got[1] == want[1] {
		t.Errorf("changed script bytes: key 0 same=%v, key 1 same=%v", got[0] == want[0], got[1] == want[1])
	}
}
