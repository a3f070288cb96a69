// Package guestagent holds the small first-boot agent goldsmith installs into
// the images it makes, and the fw_cfg contract between it and the host.
//
// The host passes the build's identity as QEMU fw_cfg items named
// opt/goldsmith/<Item...>; the agent, a oneshot systemd unit ordered before
// ssh.service, installs them. This costs nothing at boot, unlike a cloud-init
// NoCloud seed (~35 s under TCG, see shared/docs/BUILD-VM.md).
package guestagent

import (
	_ "embed"
	"io/fs"
)

// fw_cfg item names (without the opt/goldsmith/ prefix).
const (
	ItemUser           = "user"                 // login name of the temporary build user
	ItemAuthorizedKeys = "authorized_keys"      // its OpenSSH authorized_keys line(s)
	ItemHostKey        = "ssh_host_ed25519_key" // PEM private host key the client pins
)

// FwCfgName returns the full fw_cfg name for an item.
func FwCfgName(item string) string { return "opt/goldsmith/" + item }

//go:embed agent.sh
var agentScript []byte

//go:embed goldsmith-agent.service
var agentUnit []byte

// File is one file the agent needs inside the guest filesystem.
type File struct {
	Path string // absolute path in the guest
	Mode fs.FileMode
	Data []byte
}

// UnitName is the systemd unit to enable in the guest.
const UnitName = "goldsmith-agent.service"

// Files lists the agent's files, paths absolute within the guest root.
func Files() []File {
	return []File{
		{Path: "/usr/local/lib/goldsmith/agent.sh", Mode: 0o755, Data: agentScript},
		{Path: "/etc/systemd/system/" + UnitName, Mode: 0o644, Data: agentUnit},
	}
}
