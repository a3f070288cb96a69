package disk

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recordRunner records commands instead of running them.
type recordRunner struct {
	cmds []Cmd
	out  []byte
}

func (r *recordRunner) Run(_ context.Context, c Cmd) ([]byte, error) {
	r.cmds = append(r.cmds, c)
	return r.out, nil
}

func TestQemuImgArgs(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(q QemuImg) error
		want string
	}{
		{"overlay", func(q QemuImg) error { return q.CreateOverlay(ctx, "/w/o.qcow2", "/b/base", "qcow2", 30<<30) },
			"qemu-img create -q -f qcow2 -b /b/base -F qcow2 /w/o.qcow2 32212254720"},
		{"overlay same size", func(q QemuImg) error { return q.CreateOverlay(ctx, "/w/o.qcow2", "/b/base", "raw", 0) },
			"qemu-img create -q -f qcow2 -b /b/base -F raw /w/o.qcow2"},
		{"vhd", func(q QemuImg) error { return q.Convert(ctx, "a", "qcow2", "b.vhd", ConvertOptions{Format: FormatVHD}) },
			"qemu-img convert -q -f qcow2 -O vpc -o subformat=fixed -o force_size=on a b.vhd"},
		{"compressed qcow2", func(q QemuImg) error {
			return q.Convert(ctx, "a", "raw", "b", ConvertOptions{Format: FormatQCOW2, Compress: true})
		},
			"qemu-img convert -q -f raw -O qcow2 -c a b"},
		{"vmdk", func(q QemuImg) error {
			return q.Convert(ctx, "a", "qcow2", "b.vmdk", ConvertOptions{Format: FormatVMDK, Subformat: "streamOptimized"})
		}, "qemu-img convert -q -f qcow2 -O vmdk -o subformat=streamOptimized a b.vmdk"},
		{"resize", func(q QemuImg) error { return q.Resize(ctx, "d.qcow2", "qcow2", 1<<30) },
			"qemu-img resize -q -f qcow2 d.qcow2 1073741824"},
		{"info vhd", func(q QemuImg) error { _, err := q.Info(ctx, "d.vhd", FormatVHD); return err },
			"qemu-img info --output=json -f vpc d.vhd"},
	}
	for _, tc := range tests {
		r := &recordRunner{out: []byte(`{"format":"vpc","virtual-size":1048576}`)}
		if err := tc.call(QemuImg{Run: r}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(r.cmds) != 1 || r.cmds[0].String() != tc.want {
			t.Errorf("%s: ran %v, want %q", tc.name, r.cmds, tc.want)
		}
	}
	q := QemuImg{Run: &recordRunner{}}
	if err := q.Convert(ctx, "a", "", "b", ConvertOptions{Format: FormatVHD, Compress: true}); err == nil {
		t.Error("compressed VHD accepted")
	}
	if err := q.Convert(ctx, "a", "", "b", ConvertOptions{Format: "vdi"}); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestQemuImgReal drives the real qemu-img through every method.
func TestQemuImgReal(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := QemuImg{Run: Exec{}}
	dir := t.TempDir()
	raw := filepath.Join(dir, "base.raw")
	data := bytes.Repeat([]byte{7}, 2*MiB)
	os.WriteFile(raw, data, 0o644)
	base := filepath.Join(dir, "base.qcow2")
	if err := q.Convert(ctx, raw, FormatRaw, base, ConvertOptions{Format: FormatQCOW2, Compress: true}); err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "overlay.qcow2")
	if err := q.CreateOverlay(ctx, ov, base, FormatQCOW2, 8*MiB); err != nil {
		t.Fatal(err)
	}
	info, err := q.Info(ctx, ov, FormatQCOW2)
	if err != nil {
		t.Fatal(err)
	}
	if info.VirtualSize != 8*MiB || info.BackingFilename != base || info.BackingFormat != FormatQCOW2 {
		t.Errorf("overlay info %+v", info)
	}
	if err := q.Resize(ctx, ov, FormatQCOW2, 16*MiB); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{FormatVHD, FormatVMDK, FormatRaw} {
		out := filepath.Join(dir, "out."+f)
		if err := q.Convert(ctx, ov, FormatQCOW2, out, ConvertOptions{Format: f}); err != nil {
			t.Fatal(err)
		}
		info, err := q.Info(ctx, out, f)
		if err != nil || info.VirtualSize != 16*MiB {
			t.Errorf("%s: %+v %v", f, info, err)
		}
		if got, err := DetectFormat(out); err != nil || got != f {
			t.Errorf("DetectFormat(%s) = %q, %v", f, got, err)
		}
	}
	if _, err := CheckFixedVHD(filepath.Join(dir, "out.vpc")); err != nil {
		t.Error(err)
	}
	// A failing command reports its command line and stderr.
	err = q.Resize(ctx, filepath.Join(dir, "missing.qcow2"), FormatQCOW2, MiB)
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Cmd, "qemu-img resize") || !strings.Contains(ce.Stderr, "missing.qcow2") {
		t.Errorf("error %#v", err)
	}
}

func TestExecCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Exec{}.Run(ctx, Cmd{Name: "sh", Args: []string{"-c", "sleep 30 & sleep 30"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v: process group not killed", time.Since(start))
	}
	if _, err := (Exec{}).Run(context.Background(), Cmd{Name: "goldsmith-no-such-program"}); !IsNotFound(err) {
		t.Errorf("missing program: %v", err)
	}
	out, err := Exec{}.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "cat; echo oops >&2; exit 3"}, Stdin: strings.NewReader("in")})
	var ce *CommandError
	if string(out) != "in" || !errors.As(err, &ce) || strings.TrimSpace(ce.Stderr) != "oops" {
		t.Errorf("out %q err %v", out, err)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	if b.String() != "abc" {
		t.Errorf("%q", b.String())
	}
	b.Write([]byte("defgh"))
	if b.String() != "…defgh" {
		t.Errorf("%q", b.String())
	}
}

func TestExecLogStderr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err := Exec{Log: log}.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo one >&2; printf 'two' >&2"}, LogStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cmd=\"sh -c 'echo one >&2; printf '\\\\''two'\\\\'' >&2'\"", "stderr=one", "stderr=two"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
}
