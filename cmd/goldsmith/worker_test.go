package main

import (
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/vmsize"
)

func TestBuildCapacity(t *testing.T) {
	d1 := vmsize.Size{CPUs: 1, MemoryMiB: 3584} // Standard_D1_v2
	d4 := vmsize.Size{CPUs: 4, MemoryMiB: 16384}
	for _, c := range []struct {
		name string
		host machine.Host
		vm   vmsize.Size
		want int
	}{
		{"two cores: one VM", machine.Host{CPUs: 2, MemoryMiB: 8192}, d1, 1},
		{"cores bound", machine.Host{CPUs: 8, MemoryMiB: 65536}, d1, 4},
		{"memory bound", machine.Host{CPUs: 32, MemoryMiB: 16384}, d1, 3},
		{"too small still runs one", machine.Host{CPUs: 1, MemoryMiB: 2048}, d4, 1},
		{"big VMs", machine.Host{CPUs: 64, MemoryMiB: 131072}, d4, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := buildCapacity(c.host, c.vm); got != c.want {
				t.Errorf("buildCapacity(%+v, %+v) = %d, want %d", c.host, c.vm, got, c.want)
			}
		})
	}
}

// TestFleetUsageErrors: the fleet's commands refuse what cannot work,
// before they open anything.
func TestFleetUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"worker on SQLite", []string{"worker", "--data-dir", dir, "--database", ""}, "--database must be the PostgreSQL URL"},
		{"API-only serve on SQLite", []string{"serve", "--workers", "0", "--data-dir", dir, "--database", ""}, "--workers 0 needs --database postgres://"},
		{"negative workers", []string{"serve", "--workers", "-1", "--data-dir", dir}, "--workers must be at least 0"},
		{"capacity above the machine's", []string{"worker", "--data-dir", dir, "--database", "postgres://127.0.0.1:1/x", "--capacity", "100000"},
			"is more than this machine holds"},
		{"negative capacity", []string{"worker", "--data-dir", dir, "--database", "postgres://127.0.0.1:1/x", "--capacity", "-2"}, "--capacity must be at least 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != exitUsage || !strings.Contains(stderr, c.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, c.stderr)
			}
		})
	}
}
