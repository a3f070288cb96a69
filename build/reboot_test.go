package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine"
)

// TestBuildRebootBootsWhatGrubNames is the boot-configuration fidelity
// test: a customizer changes the kernel command line the way a user would
// on Debian (/etc/default/grub + update-grub), the guest reboots, and the
// next customizer finds the change in /proc/cmdline. The restart must have
// been a direct kernel boot read from the disk's grub.cfg, not the BIOS and
// GRUB path.
func TestBuildRebootBootsWhatGrubNames(t *testing.T) {
	needVM(t)
	nonce := make([]byte, 6)
	rand.Read(nonce)
	marker := "goldsmith.test_marker=" + hex.EncodeToString(nonce)
	// The catalog's image has grub-common (grub-mkconfig) but not
	// grub2-common (update-grub and the /etc/default/grub template);
	// Debian's cloud images have both, so the customizer installs it.
	tp := inlineTemplate(t, `[
	  {"type": "Shell", "name": "set-cmdline", "inline": [
	    "set -eux",
	    "sudo apt-get update -qq",
	    "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends grub2-common",
	    "test -f /etc/default/grub || sudo cp /usr/share/grub/default/grub /etc/default/grub",
	    "sudo sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT=\"quiet `+marker+`\"/; s/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX=\"console=ttyS0,115200\"/' /etc/default/grub",
	    "sudo update-grub",
	    "grep -q '`+marker+`' /boot/grub/grub.cfg",
	    "sudo cat /boot/grub/grub.cfg | sed 's/^/grub.cfg| /'"
	  ]},
	  {"type": "Shell", "name": "reboot", "inline": ["sudo shutdown -r now"]},
	  {"type": "Shell", "name": "check-cmdline", "inline": ["cat /proc/cmdline", "grep -q '`+marker+`' /proc/cmdline"]}
	]`)
	b := newBuilder(t)
	var vmLog syncBuffer
	b.Logger = slog.New(slog.NewTextHandler(&vmLog, nil))
	work, out := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "out")
	var live syncBuffer
	res, err := b.Run(context.Background(), Request{Template: tp, WorkDir: work, OutputDir: out, Log: &live})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, tail(live.String(), 80))
	}
	assertClean(t, work)
	if !res.Manifest.Steps[1].Rebooted {
		t.Errorf("the reboot customizer did not reboot: %+v", res.Manifest.Steps)
	}
	// The check customizer's output: the kernel got the marker, and the
	// command line GRUB's linux loader would have passed (BOOT_IMAGE first).
	var cmdline string
	for _, l := range strings.Split(live.String(), "\n") {
		if strings.Contains(l, "BOOT_IMAGE=") && strings.Contains(l, marker) {
			cmdline = l
		}
	}
	if cmdline == "" || !strings.Contains(cmdline, "BOOT_IMAGE=/boot/vmlinuz-") {
		t.Errorf("/proc/cmdline after the reboot lacks the marker or BOOT_IMAGE=/boot/vmlinuz-...:\n%s", tail(live.String(), 40))
	}
	logs := vmLog.String()
	if !strings.Contains(logs, "restarting with direct kernel boot from the disk's boot configuration") || !strings.Contains(logs, marker) {
		t.Errorf("the restart was not a direct kernel boot from grub.cfg:\n%s", logs)
	}
	t.Logf("restart: %s", grepLine(logs, "restarting with direct kernel boot"))
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// BenchmarkRebootToSSH measures a guest reboot on the catalog's Debian 12
// image, from "sudo systemctl reboot" to SSH answering on the new boot,
// restarting through SeaBIOS and the disk's GRUB against direct kernel
// boot from the disk's grub.cfg. Run: go test -run '^$' -bench RebootToSSH
// -benchtime 3x ./build
func BenchmarkRebootToSSH(b *testing.B) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("qemu-system-x86_64 not installed")
	}
	cat, err := catalog.Open(testDataDir())
	if err != nil {
		b.Skip(err)
	}
	e, err := cat.Resolve(context.Background(), "Debian:debian-12:12:latest")
	if err != nil {
		b.Skipf("no cached Debian 12 image: %v", err)
	}
	for _, mode := range []struct {
		name string
		boot machine.RestartBoot
	}{
		{"bios-grub", machine.RestartFromDisk},
		{"direct-kernel", machine.RestartFromBootConfig},
	} {
		b.Run(mode.name, func(b *testing.B) {
			overlay := filepath.Join(b.TempDir(), "disk.qcow2")
			if err := (disk.QemuImg{Run: disk.Exec{}}).CreateOverlay(context.Background(), overlay, e.DiskPath, "qcow2", 0); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			var console syncBuffer
			vm, err := machine.Start(ctx, machine.Config{Disk: overlay, DiskFormat: "qcow2",
				Kernel: e.KernelPath, Initrd: e.InitrdPath, Cmdline: e.Cmdline, RestartBoot: mode.boot,
				CacheDir: filepath.Join(testDataDir(), "cache"), Console: &console})
			if err != nil {
				b.Fatal(err)
			}
			defer vm.Close()
			if err := vm.Comm().WaitForSSH(ctx); err != nil {
				b.Fatalf("first boot: %v\n%s", err, tail(console.String(), 20))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := vm.Status().Boot
				var out bytes.Buffer
				_, err := vm.Comm().Run(ctx, "sudo systemctl reboot", &out, &out)
				var rebootErr *machine.RebootError
				if err != nil && !errors.As(err, &rebootErr) {
					b.Fatalf("reboot: %v %s", err, out.String())
				}
				for vm.Status().Boot == before {
					select {
					case <-vm.Status().Changed:
					case <-ctx.Done():
						b.Fatal("no reboot")
					}
				}
				if err := vm.Comm().WaitForSSH(ctx); err != nil {
					b.Fatalf("after reboot %d: %v\n%s", i+1, err, tail(console.String(), 20))
				}
			}
			b.StopTimer()
			if got, want := vm.Status().KernelBoot, mode.boot == machine.RestartFromBootConfig; got != want {
				b.Errorf("Status.KernelBoot %v after the reboots, want %v", got, want)
			}
		})
	}
}
