package machine

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/goldsmith-dev/goldsmith/vmsize"
)

// Size is the shape of a build VM.
type Size struct {
	Name      string // Azure name, as asked for
	CPUs      int
	MemoryMiB int
	// Approximate is true when the size is not in the table and was derived
	// from its name (see vmsize.Lookup); callers should log that.
	Approximate bool
	// Capped is true when the host could not give the full size.
	Capped bool
}

// Host is what this machine can give to build VMs.
type Host struct {
	CPUs      int
	MemoryMiB int
}

// HostResources reads the host's CPU count and total memory.
func HostResources() (Host, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return Host{}, fmt.Errorf("reading host memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kib, err := strconv.Atoi(fields[1])
			if err != nil {
				break
			}
			return Host{CPUs: runtime.NumCPU(), MemoryMiB: kib / 1024}, nil
		}
	}
	return Host{}, fmt.Errorf("reading host memory: no MemTotal in /proc/meminfo")
}

// Cap limits a size to the host: vCPUs to the host's CPUs, memory to half
// the host's memory.
func (s Size) Cap(h Host) Size {
	if h.CPUs > 0 && s.CPUs > h.CPUs {
		s.CPUs, s.Capped = h.CPUs, true
	}
	if half := h.MemoryMiB / 2; half > 0 && s.MemoryMiB > half {
		s.MemoryMiB, s.Capped = half, true
	}
	return s
}

// SizeFor looks an Azure size up (vmsize.Lookup) and caps it to the host.
func SizeFor(name string, h Host) (Size, error) {
	s, err := vmsize.Lookup(name)
	if err != nil {
		return Size{}, err
	}
	return Size{Name: s.Name, CPUs: s.CPUs, MemoryMiB: s.MemoryMiB, Approximate: s.Approximate}.Cap(h), nil
}

// ForTCG raises the vCPU count to 2 where the host has them: under TCG a
// 1-vCPU guest boots ~50% slower than a 2-vCPU one (shared/docs/BUILD-VM.md),
// and emulated vCPUs are a speed knob rather than a promise to the script.
// Use it only for TCG, and only if the pipeline prefers speed to fidelity.
func (s Size) ForTCG(h Host) Size {
	if s.CPUs < 2 && h.CPUs >= 2 {
		s.CPUs = 2
	}
	return s
}
