// Package vmsize knows Azure VM sizes: a size name, as a template's
// vmProfile.vmSize gives it, to vCPUs and memory. The validator checks names
// with it and the build sizes its VM with it, so a name validate accepts is
// one the build can use.
package vmsize

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Default is AIB's build VM size when a template names none.
const Default = "Standard_D1_v2"

// Size is an Azure VM size.
type Size struct {
	Name      string // as asked for
	CPUs      int
	MemoryMiB int
	// Approximate is true when the size is not in the table and was derived
	// from its name (see Lookup); callers should log that.
	Approximate bool
}

type azureSize struct {
	cpus   int
	memGiB float64
}

// azureSizes are common Azure sizes (vCPUs, memory GiB) as Azure documents them.
var azureSizes = map[string]azureSize{
	"standard_a1_v2":   {1, 2},
	"standard_a2_v2":   {2, 4},
	"standard_a4_v2":   {4, 8},
	"standard_b1s":     {1, 1},
	"standard_b1ms":    {1, 2},
	"standard_b2s":     {2, 4},
	"standard_b2ms":    {2, 8},
	"standard_b4ms":    {4, 16},
	"standard_d1_v2":   {1, 3.5},
	"standard_d2_v2":   {2, 7},
	"standard_d3_v2":   {4, 14},
	"standard_d4_v2":   {8, 28},
	"standard_d11_v2":  {2, 14},
	"standard_ds1_v2":  {1, 3.5},
	"standard_ds2_v2":  {2, 7},
	"standard_ds3_v2":  {4, 14},
	"standard_ds4_v2":  {8, 28},
	"standard_ds11_v2": {2, 14},
	"standard_d2_v3":   {2, 8},
	"standard_d4_v3":   {4, 16},
	"standard_d2s_v3":  {2, 8},
	"standard_d4s_v3":  {4, 16},
	"standard_d8s_v3":  {8, 32},
	"standard_d2as_v4": {2, 8},
	"standard_d4as_v4": {4, 16},
	"standard_d2s_v4":  {2, 8},
	"standard_d2ds_v4": {2, 8},
	"standard_d2s_v5":  {2, 8},
	"standard_d4s_v5":  {4, 16},
	"standard_d2ds_v5": {2, 8},
	"standard_d2as_v5": {2, 8},
	"standard_e2s_v3":  {2, 16},
	"standard_e4s_v3":  {4, 32},
	"standard_f2s":     {2, 4},
	"standard_f2s_v2":  {2, 4},
	"standard_f4s_v2":  {4, 8},
}

// familyGiBPerCPU is the memory per vCPU of a size family, used for sizes
// not in the table. D before v3 has 3.5 GiB per vCPU, later D 4 GiB.
var familyGiBPerCPU = map[string]float64{
	"a": 2, "b": 4, "d": 4, "dc": 4, "e": 8, "ec": 8, "f": 2, "fx": 21, "l": 8, "m": 28, "n": 7,
}

// Standard_<family letters><vCPUs>[-<constrained>]<feature letters>[_<version>]
var sizeName = regexp.MustCompile(`^standard_([a-z]+?)(\d+)(-\d+)?([a-z]*)(_v(\d+))?$`)

// Known lists the sizes of the built-in table, sorted.
func Known() []string {
	var names []string
	for n := range azureSizes {
		names = append(names, canonicalSizeName(n))
	}
	sort.Strings(names)
	return names
}

func canonicalSizeName(lower string) string {
	return "Standard_" + strings.ToUpper(lower[len("standard_"):len("standard_")+1]) + lower[len("standard_")+1:]
}

// Lookup maps an Azure VM size name (case-insensitive; empty means
// DefaultVMSize) to vCPUs and memory, uncapped.
//
// Sizes in the built-in table (Known) are exact. Any other well-formed
// Azure size name is accepted with Approximate set: the vCPU count is the
// number in its name (Standard_D16ds_v5 → 16) and the memory that count
// times its family's GiB per vCPU (D 4, E 8, F 2, ...; D and DS before v3
// 3.5). The number in a D/DS v1–v2 name is not its vCPU count (D3_v2 has
// 4), so the common ones are in the table. The fallback exists because AIB
// accepts every Azure size and the result is capped to the host anyway; a
// caller should log Approximate sizes. A name that does not parse is an error listing the table.
func Lookup(name string) (Size, error) {
	if name == "" {
		name = Default
	}
	key := strings.ToLower(strings.TrimSpace(name))
	if s, ok := azureSizes[key]; ok {
		return Size{Name: name, CPUs: s.cpus, MemoryMiB: int(s.memGiB * 1024)}, nil
	}
	m := sizeName.FindStringSubmatch(key)
	if m != nil {
		family := m[1]
		cpus, _ := strconv.Atoi(m[2])
		perCPU, ok := familyGiBPerCPU[family]
		if !ok && len(family) > 1 {
			perCPU, ok = familyGiBPerCPU[family[:1]]
		}
		if ok && cpus > 0 {
			version, _ := strconv.Atoi(m[6])
			if family == "d" && version < 3 {
				perCPU = 3.5
			}
			if m[3] != "" { // constrained-vCPU size: Standard_E4-2s_v3 has 2 vCPUs of an E4
				if c, err := strconv.Atoi(m[3][1:]); err == nil && c > 0 {
					return Size{Name: name, CPUs: c, MemoryMiB: int(float64(cpus) * perCPU * 1024), Approximate: true}, nil
				}
			}
			return Size{Name: name, CPUs: cpus, MemoryMiB: int(float64(cpus) * perCPU * 1024), Approximate: true}, nil
		}
	}
	return Size{}, fmt.Errorf("unknown VM size %q: not an Azure size name (Standard_<family><vCPUs>..._v<N>); known sizes: %s",
		name, strings.Join(Known(), ", "))
}
