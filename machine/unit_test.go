package machine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestSizeCap(t *testing.T) {
	host := Host{CPUs: 2, MemoryMiB: 8192}
	s, err := SizeFor("Standard_D4s_v3", host)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUs != 2 || s.MemoryMiB != 4096 || !s.Capped {
		t.Fatalf("got %+v", s)
	}
	s, _ = SizeFor("Standard_B1s", host)
	if s.Capped || s.CPUs != 1 || s.ForTCG(host).CPUs != 2 {
		t.Fatalf("got %+v", s)
	}
	if h, err := HostResources(); err != nil || h.CPUs < 1 || h.MemoryMiB < 64 {
		t.Fatalf("HostResources: %+v %v", h, err)
	}
}

func TestQEMUArgs(t *testing.T) {
	inv := qemuInvocation{
		Accel: AccelTCG, CPUModel: "max", CPUs: 2, MemoryMiB: 1024,
		Disk: "/d/a,b.qcow2", DiskFormat: "qcow2", SSHPort: 2222, QMPSocket: "/t/q.sock",
		FwCfg: []fwCfgFile{{Name: "opt/goldsmith/user", File: "/t/user"}},
	}
	got := strings.Join(inv.args(), " ")
	for _, want := range []string{
		"-accel tcg", "-smp 2", "-m 1024", "-no-reboot",
		"file=/d/a,,b.qcow2,format=qcow2,if=virtio,cache=unsafe",
		"hostfwd=tcp:127.0.0.1:2222-:22", "virtio-net-pci,netdev=n0",
		"-qmp unix:/t/q.sock,server=on,wait=off",
		"-fw_cfg name=opt/goldsmith/user,file=/t/user",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "-kernel") {
		t.Error("no kernel given but -kernel in args")
	}
	inv.Kernel, inv.Initrd, inv.Cmdline = "/k", "/i", "root=/dev/vda"
	got = strings.Join(inv.args(), " ")
	if !strings.Contains(got, "-kernel /k -initrd /i -append root=/dev/vda") {
		t.Errorf("direct kernel boot args: %s", got)
	}
}

func TestPgidWriter(t *testing.T) {
	var out bytes.Buffer
	w := &pgidWriter{w: &out}
	for _, chunk := range []string{"goldsmith-", "pgid=12", "34\nreal ", "stderr\n"} {
		w.Write([]byte(chunk))
	}
	if w.pgid() != 1234 || out.String() != "real stderr\n" {
		t.Fatalf("pgid %d out %q", w.pgid(), out.String())
	}
	out.Reset()
	w = &pgidWriter{w: &out}
	w.Write([]byte("no marker here\nmore"))
	if w.pgid() != 0 || out.String() != "no marker here\nmore" {
		t.Fatalf("pgid %d out %q", w.pgid(), out.String())
	}
}

func TestRestartBootMode(t *testing.T) {
	cfg := Config{Kernel: "/k", Initrd: "/i", Cmdline: "root=/dev/vda"}
	v := &VM{cfg: cfg, dir: "/t", accel: AccelTCG}
	if inv := v.invocation(true, 1, 1); inv.Kernel != "/k" || inv.Initrd != "/i" {
		t.Fatalf("first boot: %+v", inv)
	}
	if inv := v.invocation(false, 1, 2); inv.Kernel != "" || inv.Initrd != "" || inv.Cmdline != "" {
		t.Fatalf("restart from disk must not use -kernel: %+v", inv)
	}
	v.cfg.RestartBoot = RestartWithKernel
	if inv := v.invocation(false, 1, 2); inv.Kernel != "/k" {
		t.Fatalf("RestartWithKernel: %+v", inv)
	}
	if inv := v.invocation(false, 1, 2); !strings.HasSuffix(inv.QMPSocket, "qmp-2.sock") {
		t.Fatalf("QMP socket per boot: %s", inv.QMPSocket)
	}
}

// TestRestartFromBootConfig: after a guest reset, the restart boots what
// the disk's boot configuration names, and through the disk's bootloader
// when that cannot be read.
func TestRestartFromBootConfig(t *testing.T) {
	fromDisk := KernelBoot{Kernel: "/vm/boot/kernel-1", Initrd: "/vm/boot/initrd-1", Cmdline: "BOOT_IMAGE=/boot/vmlinuz root=UUID=x ro marker", Entry: "Debian"}
	for _, tc := range []struct {
		name       string
		mode       RestartBoot
		readErr    error
		wantRead   bool
		wantKernel string
		wantLog    string
	}{
		{"default reads the disk", RestartFromBootConfig, nil, true, fromDisk.Kernel, "direct kernel boot from the disk's boot configuration"},
		{"unreadable falls back to the bootloader", RestartFromBootConfig, errors.New("grub.cfg: line 3: \"chainloader\" is not supported"), true, "", "chainloader"},
		{"from disk never reads", RestartFromDisk, nil, false, "", ""},
		{"with kernel reuses the first boot's", RestartWithKernel, nil, false, "/k", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			read := false
			cfg := Config{Disk: "/d/disk.qcow2", DiskFormat: "qcow2", Kernel: "/k", Initrd: "/i", Cmdline: "root=/dev/vda", RestartBoot: tc.mode,
				ReadBootConfig: func(ctx context.Context, disk, format, dir string) (KernelBoot, error) {
					read = true
					if disk != "/d/disk.qcow2" || format != "qcow2" || dir != "/t/boot" {
						t.Errorf("reader got %s %s %s", disk, format, dir)
					}
					return fromDisk, tc.readErr
				}}
			v := &VM{cfg: cfg, dir: "/t", accel: AccelTCG, log: slog.New(slog.NewTextHandler(&logs, nil)), boot: 2, changed: make(chan struct{})}
			v.readRestartBoot(context.Background())
			if read != tc.wantRead {
				t.Errorf("reader called %v, want %v", read, tc.wantRead)
			}
			inv := v.invocation(false, 1, 2)
			if inv.Kernel != tc.wantKernel {
				t.Errorf("kernel %q, want %q", inv.Kernel, tc.wantKernel)
			}
			if tc.wantKernel == fromDisk.Kernel && (inv.Initrd != fromDisk.Initrd || inv.Cmdline != fromDisk.Cmdline) {
				t.Errorf("invocation %+v", inv)
			}
			if got := v.Status().KernelBoot; got != (tc.wantKernel != "") {
				t.Errorf("Status.KernelBoot %v", got)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
			if first := v.invocation(true, 1, 1); first.Kernel != "/k" {
				t.Errorf("first boot %+v", first)
			}
		})
	}
}
