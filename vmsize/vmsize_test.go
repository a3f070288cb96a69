package vmsize

import (
	"slices"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cpus, mem   int
		approximate bool
	}{
		{"", 1, 3584, false}, // AIB's default, Standard_D1_v2
		{"Standard_D1_v2", 1, 3584, false},
		{"standard_d2s_v3", 2, 8192, false},
		{"Standard_B1s", 1, 1024, false},
		{"Standard_F2s_v2", 2, 4096, false},
		{"Standard_D16ds_v5", 16, 65536, true},
		{"Standard_E8s_v3", 8, 65536, true},
		{"Standard_D3_v2", 4, 14336, false},
		{"Standard_D8s_v5", 8, 32768, true},
		{"Standard_E4-2s_v3", 2, 32768, true},
	} {
		s, err := Lookup(tc.name)
		if err != nil {
			t.Errorf("%q: %v", tc.name, err)
			continue
		}
		if s.CPUs != tc.cpus || s.MemoryMiB != tc.mem || s.Approximate != tc.approximate {
			t.Errorf("%q: got %+v, want %d vCPUs %d MiB approximate=%v", tc.name, s, tc.cpus, tc.mem, tc.approximate)
		}
	}
	for _, bad := range []string{"Basic_A0", "huge", "Standard_", "Standard_Q4_v2"} {
		_, err := Lookup(bad)
		if err == nil || !strings.Contains(err.Error(), "Standard_D1_v2") {
			t.Errorf("%q: want an error listing known sizes, got %v", bad, err)
		}
	}
	if len(Known()) < 25 || !slices.Contains(Known(), "Standard_D2as_v4") {
		t.Errorf("KnownSizes: %v", Known())
	}
}
