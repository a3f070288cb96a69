package machine

import (
	"bytes"
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
