// Package machine runs build environments: a QEMU virtual machine (KVM when
// a guest actually runs under it, TCG otherwise) and an SSH communicator to
// the guest.
//
// A build looks like this:
//
//	vm, err := machine.Start(ctx, machine.Config{Disk: overlay, CacheDir: cache, Console: log})
//	if err != nil { ... }
//	defer vm.Close()                     // always: kills QEMU, removes the temp dir
//	c := vm.Comm()
//	err = c.WaitForSSH(ctx20min)
//	code, err := c.Run(ctx, "sudo bash /tmp/script.sh", stdout, stderr)
//	if errors.Is(err, machine.ErrRebooted) { err = c.WaitForSSH(ctx20min) } // and go on
//	err = vm.Shutdown(ctx)               // guest power-off, QEMU exits
//
// Identity. Every VM gets a fresh ed25519 client key and host key; they and
// the build user's name reach the guest through QEMU fw_cfg items that the
// guest agent (package guestagent) installs before sshd starts. The client
// pins the host key.
//
// Reboots. QEMU runs with -no-reboot, so a guest reboot ends the QEMU
// process; its QMP SHUTDOWN event says guest-reset, and the VM starts QEMU
// again on the same disk and counts the boot (Status.Boot). By default
// (RestartFromBootConfig) it boots the kernel, initrd and command line that
// the disk's own GRUB configuration names with direct kernel boot, and
// through the disk's bootloader when they cannot be determined. A
// command whose session ends because of it returns a *RebootError with
// Started=true; a command issued after a reboot that happened while nothing
// ran gets Started=false. A guest power-off (guest-shutdown) stops the VM
// (ErrPoweredOff); any other QEMU exit fails it (Status.Err).
//
// Checkpoints and restores. Checkpoint pauses the guest for a moment,
// freezes its disk (QEMU writes a new overlay from then on) and saves its
// device state and memory; Config.Restore starts a VM from such a pair
// instead of booting it. Guest memory is a file on tmpfs (/dev/shm) when
// there is one, so a checkpoint copies that file's data and a restore maps
// a copy, whatever the VM's memory size; without tmpfs, memory goes through
// QEMU's migration stream. A restored VM replaces the saved identity with
// its own at once (keys, host key), sets the guest clock and stirs fresh
// randomness into it. The build's layer cache is built on this.
//
// VM sizes. SizeFor maps an Azure size name to vCPUs and memory (package
// vmsize) and caps them to the host.
//
// Network. By default (NetworkIsolated) every QEMU process gets its own
// passt as its network back end, with --no-map-gw: the guest reaches the
// outside network but nothing on the host's loopback; passt forwards SSH
// from 127.0.0.1. NetworkSlirp is QEMU's own user network, which does not
// isolate the guest from the host.
//
// External programs (qemu-system-x86_64, passt) are started through a Runner.
package machine
