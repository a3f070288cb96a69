package main

import (
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
