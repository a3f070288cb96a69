package blob

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// BenchmarkCopyVerified copies $BLOB_BENCH_SRC (default: the bench image's
// qcow2) with the pipelined copy+hash and with copy-then-hash.
func BenchmarkCopyVerified(b *testing.B) {
	src := os.Getenv("BLOB_BENCH_SRC")
	if src == "" {
		src = "/var/tmp/goldsmith-bench/image.qcow2"
	}
	if _, err := os.Stat(src); err != nil {
		b.Skip(err)
	}
	dst := filepath.Join(filepath.Dir(src), "blob-bench.tmp")
	defer os.Remove(dst)
	b.Run("pipelined", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := copyVerified(context.Background(), dst, src); err != nil {
				b.Fatal(err)
			}
			os.Remove(dst)
		}
	})
	b.Run("sequential", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := disk.CopySparse(context.Background(), dst, src); err != nil {
				b.Fatal(err)
			}
			if _, _, err := disk.SHA256File(context.Background(), dst); err != nil {
				b.Fatal(err)
			}
			os.Remove(dst)
		}
	})
}

func BenchmarkCopyOnly(b *testing.B) {
	src := "/var/tmp/goldsmith-bench/image.qcow2"
	if _, err := os.Stat(src); err != nil {
		b.Skip(err)
	}
	dst := filepath.Join(filepath.Dir(src), "blob-bench.tmp")
	for i := 0; i < b.N; i++ {
		if err := disk.CopySparse(context.Background(), dst, src); err != nil {
			b.Fatal(err)
		}
		os.Remove(dst)
	}
}

func BenchmarkHashOnly(b *testing.B) {
	src := "/var/tmp/goldsmith-bench/image.qcow2"
	if _, err := os.Stat(src); err != nil {
		b.Skip(err)
	}
	for i := 0; i < b.N; i++ {
		if _, _, err := disk.SHA256File(context.Background(), src); err != nil {
			b.Fatal(err)
		}
	}
}
