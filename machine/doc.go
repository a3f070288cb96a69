// Package machine runs build environments: a QEMU virtual machine (KVM when
// it works, TCG otherwise) and an SSH communicator to the guest.
package machine
