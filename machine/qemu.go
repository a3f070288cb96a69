package machine

import (
	"fmt"
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
	// NetSocket, when set, is passt's socket: the guest's network back end
	// (NetworkIsolated), which forwards SSHPort itself. Empty: QEMU's
	// built-in user-mode network (NetworkSlirp).
	NetSocket string
	QMPSocket string
	FwCfg     []fwCfgFile
	// Incoming starts QEMU paused, waiting for a saved state (Restore).
	Incoming bool
	// RAMFile, when set, backs the guest's memory with a shared file (on
	// tmpfs): a checkpoint then copies the file's data instead of
	// migrating memory page by page, and a restore maps a copy.
	RAMFile string
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
		"-machine", q.machine(),
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
		"-netdev", q.netdev(),
		"-device", "virtio-net-pci,netdev=n0",
		"-device", "virtio-rng-pci",
		// A new generation id at every start tells a restored Linux guest
		// to reseed its random number generator.
		"-device", "vmgenid,guid=auto",
	}
	if q.RAMFile != "" {
		a = append(a, "-object", fmt.Sprintf("memory-backend-file,id=%s,size=%dM,mem-path=%s,share=on", ramID, q.MemoryMiB, qemuOpt(q.RAMFile)))
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

func (q qemuInvocation) netdev() string {
	if q.NetSocket != "" {
		return "stream,id=n0,server=off,addr.type=unix,addr.path=" + qemuOpt(q.NetSocket)
	}
	return fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", q.SSHPort)
}

// ramID names the file-backed memory backend.
const ramID = "ram0"

func (q qemuInvocation) machine() string {
	if q.RAMFile != "" {
		return "q35,memory-backend=" + ramID
	}
	return "q35"
}

// qemuOpt escapes a value inside a QEMU option string (a comma is doubled).
func qemuOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }
