package bootconfig

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// mapVolume is a fake filesystem for the grub.cfg tests.
type mapVolume struct {
	id, lab string
	files   map[string]string
}

func (m mapVolume) uuid() string  { return m.id }
func (m mapVolume) label() string { return m.lab }

func (m mapVolume) stat(p string) (fileInfo, error) {
	if f, ok := m.files[p]; ok {
		return fileInfo{size: int64(len(f))}, nil
	}
	for k := range m.files {
		if strings.HasPrefix(k, strings.TrimSuffix(p, "/")+"/") {
			return fileInfo{dir: true}, nil
		}
	}
	return fileInfo{}, fs.ErrNotExist
}

func (m mapVolume) readFile(p string) ([]byte, error) {
	if f, ok := m.files[p]; ok {
		return []byte(f), nil
	}
	return nil, fs.ErrNotExist
}

type mapVolumes []namedVolume

// get resolves names as diskVolumes does; m's names are canonical (hd0,gptN).
func (m mapVolumes) get(dev string) (volume, string, error) {
	scheme, n, err := parseGrubDevice(dev)
	if err != nil {
		return nil, "", err
	}
	for _, v := range m {
		if v.name == fmt.Sprintf("hd0,gpt%d", n) && (scheme == "" || scheme == "gpt") {
			return v.vol, v.name, nil
		}
	}
	return nil, "", fmt.Errorf("device %q: no such partition", dev)
}

func (m mapVolumes) all() []namedVolume { return m }

// The Debian 12 catalog image's root filesystem after update-grub.
const debianRootUUID = "0a3f52d4-c895-46b5-8899-c4d8469f7e93"

func grubenv(vars ...string) string {
	s := "# GRUB Environment Block\n" + strings.Join(vars, "\n")
	if len(vars) > 0 {
		s += "\n"
	}
	return s + strings.Repeat("#", 1024-len(s))
}

func debianVolumes(cfg, env string) mapVolumes {
	files := map[string]string{
		"/boot/grub/grub.cfg":                   cfg,
		"/vmlinuz":                              "kernel",
		"/initrd.img":                           "initrd",
		"/boot/vmlinuz-6.1.0-57-cloud-amd64":    "kernel",
		"/boot/initrd.img-6.1.0-57-cloud-amd64": "initrd",
	}
	if env != "" {
		files["/boot/grub/grubenv"] = env
	}
	return mapVolumes{{name: "hd0,gpt2", vol: mapVolume{id: debianRootUUID, lab: "root", files: files}}}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestResolveGrub evaluates grub.cfg files as update-grub (Debian 12's
// grub-mkconfig) and goldsmith's catalog write them, with every way of
// naming the default entry. The golden file holds each case's result.
func TestResolveGrub(t *testing.T) {
	debian := readTestdata(t, "debian12-update-grub.cfg")
	withDefault := func(def string) string {
		out := strings.Replace(debian, `set default="0"`, `set default="`+def+`"`, 1)
		if out == debian && def != "0" {
			t.Fatal("testdata: no set default=\"0\" to replace")
		}
		return out
	}
	saved := strings.Replace(debian, `set default="0"`, `set default="${saved_entry}"`, 1)
	advanced := "Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-57-cloud-amd64 (recovery mode)"
	for _, tc := range []struct {
		name      string
		cfg, env  string
		wantError string // "" for success
	}{
		{name: "catalog static", cfg: readTestdata(t, "catalog-static.cfg")},
		{name: "update-grub default 0", cfg: debian, env: grubenv()},
		{name: "update-grub without grubenv", cfg: debian},
		{name: "numeric default 1 is the submenu", cfg: withDefault("1"), wantError: "names the submenu"},
		{name: "numeric path into the submenu", cfg: withDefault("1>1")},
		{name: "entry id", cfg: withDefault("gnulinux-simple-" + debianRootUUID)},
		{name: "id inside a submenu without its path", cfg: withDefault("gnulinux-6.1.0-57-cloud-amd64-recovery-" + debianRootUUID), wantError: "no menu entry titled or with id"},
		{name: "title path", cfg: withDefault("Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-57-cloud-amd64")},
		{name: "id path", cfg: withDefault("gnulinux-advanced-" + debianRootUUID + ">gnulinux-6.1.0-57-cloud-amd64-advanced-" + debianRootUUID)},
		{name: "saved entry", cfg: saved, env: grubenv("saved_entry=" + advanced)},
		{name: "saved entry unset", cfg: saved, env: grubenv()},
		{name: "next entry from grub-reboot", cfg: debian, env: grubenv("next_entry=1>0"), wantError: "write next_entry to grubenv"},
		{name: "unknown title", cfg: withDefault("Windows"), wantError: `no menu entry titled or with id "Windows"`},
		{name: "index out of range", cfg: withDefault("7"), wantError: "default entry 7 of 2 does not exist"},
		{name: "chainloader entry", cfg: readTestdata(t, "chainloader.cfg"), wantError: `"chainloader" is not supported`},
		{name: "multiboot entry", cfg: readTestdata(t, "xen.cfg"), wantError: `"multiboot2" is not supported`},
		{name: "root on LVM", cfg: strings.ReplaceAll(debian, "search --no-floppy --fs-uuid --set=root "+debianRootUUID, "set root='lvmid/abc/def'"), wantError: "only partitions of the first disk"},
		{name: "unexpandable variable", cfg: strings.Replace(debian, "ro console=ttyS0,115200 quiet", "ro $extra_args console=ttyS0,115200 quiet", 1) + "\nif cpuid -l; then set extra_args=x; fi\n", wantError: "cannot be evaluated"},
		{name: "custom.cfg is sourced", cfg: debian, env: "custom", wantError: "source is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vols := debianVolumes(tc.cfg, tc.env)
			if tc.env == "custom" {
				vols[0].vol.(mapVolume).files["/boot/grub/custom.cfg"] = "menuentry x { chainloader +1 }\n"
				delete(vols[0].vol.(mapVolume).files, "/boot/grub/grubenv")
			}
			sel, err := resolveGrub(tc.cfg, vols, "hd0,gpt2", "/boot/grub/grub.cfg")
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got %+v, %v; want an error with %q", sel, err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("entry:   %s\nkernel:  (%s)%s\ninitrds: %v\ncmdline: %s\n", sel.title, sel.linux.dev, sel.linux.path, sel.initrds, sel.cmdline())
			golden := filepath.Join("testdata", "golden", strings.ReplaceAll(tc.name, " ", "-")+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}
}

func TestCmdlineQuoting(t *testing.T) {
	s := selection{arg0: "/boot/vmlinuz", args: []string{"root=/dev/vda2", `a b`, `q"x`, `back\slash`}}
	if got, want := s.cmdline(), `BOOT_IMAGE=/boot/vmlinuz root=/dev/vda2 "a b" q\"x back\\slash`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestParseGrubErrors(t *testing.T) {
	for src, want := range map[string]string{
		"if [ x ]; then\n echo\n":          "if without fi",
		"menuentry 'x' {\n linux /k\n":     `expected "}"`,
		"echo 'unterminated\n":             "unterminated single quote",
		"for x in a b; do echo $x; done\n": `"for" is not supported`,
		"menuentry 'x' { linux /k }\nfi\n": `unexpected "fi"`,
	} {
		if _, err := parseGrub(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
