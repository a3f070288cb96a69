// Package disk handles goldsmith's disk images: formats (raw, qcow2, fixed
// VHD, VMDK) through qemu-img, the fixed VHD footer itself, sparse copies,
// streaming SHA-256, and bootable BIOS disks made without loop devices,
// mounts or grub-install: a GPT written by sfdisk, an ext4 root filesystem
// written by mke2fs straight into its partition from a directory, GRUB's
// core.img in a BIOS boot partition and its boot.img in the MBR, both
// patched here byte by byte as grub-bios-setup would.
//
// Every external program runs through a Runner (Exec in production), which
// logs the command line, kills the process group when the context ends and
// returns stderr in a *CommandError.
package disk
