package bootconfig

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/goldsmith-dev/goldsmith/catalog"
)

// catalogDisk is the cached Debian 12 catalog image (a compressed qcow2),
// as catalog's and build's tests leave it in $GOLDSMITH_TEST_DATA.
func catalogDisk(b *testing.B) catalog.Entry {
	dir := os.Getenv("GOLDSMITH_TEST_DATA")
	if dir == "" {
		dir = "/var/tmp/goldsmith-test"
	}
	c, err := catalog.Open(dir)
	if err != nil {
		b.Skipf("no catalog in %s: %v", dir, err)
	}
	e, err := c.Resolve(context.Background(), "Debian:debian-12:12:latest")
	if err != nil {
		b.Skipf("no cached Debian 12 image: %v", err)
	}
	return e
}

// BenchmarkRead reads grub.cfg from the catalog's Debian 12 image through
// a qcow2 overlay (as a build disk is) and extracts the kernel and initrd:
// "extract" into an empty directory each time, "unchanged" where they are
// already extracted (a reboot that did not touch /boot).
func BenchmarkRead(b *testing.B) {
	e := catalogDisk(b)
	overlay := filepath.Join(b.TempDir(), "overlay.qcow2")
	if err := runTool(b, "qemu-img", "create", "-q", "-f", "qcow2", "-b", e.DiskPath, "-F", "qcow2", overlay); err != nil {
		b.Skip(err)
	}
	st1, _ := os.Stat(e.KernelPath)
	st2, _ := os.Stat(e.InitrdPath)
	b.Logf("kernel %d bytes, initrd %d bytes", st1.Size(), st2.Size())
	b.Run("extract", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out := filepath.Join(b.TempDir(), "boot")
			if _, err := Read(context.Background(), overlay, "qcow2", out); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(st1.Size() + st2.Size())
	})
	b.Run("unchanged", func(b *testing.B) {
		out := b.TempDir()
		if _, err := Read(context.Background(), overlay, "qcow2", out); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := Read(context.Background(), overlay, "qcow2", out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func runTool(b *testing.B, name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		b.Logf("%s: %s", name, out)
	}
	return err
}
