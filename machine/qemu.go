package machine

import (
	"fmt"
	"os"
	"strings"
)

// qemuInvocation is everything that varies between QEMU command lines of
// one VM: the first boot and every restart after a guest reboot.
type qemuInvocation struct {
	Accel      Accel
	CPUModel   string
	CPUs       int
	MemoryMiB  int
	Disk       string
	DiskFormat string
	Kernel     string // empty: boot through the disk's own bootloader
	Initrd     string
	Cmdline    string
	SSHPort    int
	QMPSocket  string
	FwCfg      []fwCfgFile
	// Incoming starts QEMU paused, waiting for a saved state (Restore).
	Incoming bool
}

// bootArgs is how one QEMU process booted: direct kernel boot, or through
// the disk's firmware path when Kernel is empty.
type bootArgs struct{ Kernel, Initrd, Cmdline string }

// driveID names the build disk's block backend in QMP commands.
const driveID = "root"

type fwCfgFile struct{ Name, File string }

// args renders the QEMU command line (without the program name).
func (q qemuInvocation) args() []string {
	a := []string{
		"-name", "goldsmith-build",
		"-machine", "q35",
		"-accel", string(q.Accel),
		"-cpu", q.CPUModel,
		"-smp", fmt.Sprint(q.CPUs),
		"-m", fmt.Sprint(q.MemoryMiB),
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-serial", "stdio",
		"-no-reboot",
		"-qmp", "unix:" + qemuOpt(q.QMPSocket) + ",server=on,wait=off",
		"-drive", "id=" + driveID + ",file=" + qemuOpt(q.Disk) + ",format=" + q.DiskFormat + ",if=virtio,cache=unsafe,discard=unmap",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", q.SSHPort),
		"-device", "virtio-net-pci,netdev=n0",
		"-device", "virtio-rng-pci",
		// A new generation id at every start tells a restored Linux guest
		// to reseed its random number generator.
		"-device", "vmgenid,guid=auto",
	}
	if q.Incoming {
		a = append(a, "-S", "-incoming", "defer")
	}
	if q.Kernel != "" {
		a = append(a, "-kernel", q.Kernel)
		if q.Initrd != "" {
			a = append(a, "-initrd", q.Initrd)
		}
		if q.Cmdline != "" {
			a = append(a, "-append", q.Cmdline)
		}
	}
	for _, f := range q.FwCfg {
		a = append(a, "-fw_cfg", "name="+qemuOpt(f.Name)+",file="+qemuOpt(f.File))
	}
	return a
}

// qemuOpt escapes a value inside a QEMU option string (a comma is doubled).
func qemuOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// detectDiskFormat reports qcow2 for a file with the qcow2 magic, else raw.
func detectDiskFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opening disk: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if n, _ := f.Read(magic); n == 4 && string(magic) == "QFI\xfb" {
		return "qcow2", nil
	}
	return "raw", nil
}

// shellJoin quotes words for a POSIX shell (and for readable logs).
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
