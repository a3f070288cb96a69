#!/bin/sh
# goldsmith guest agent. Runs once per boot before sshd: it installs the
# identity the host passed through QEMU's fw_cfg (a temporary build user, its
# authorized key, and a pinned host key) and regenerates any missing host keys,
# so that an image generalized by goldsmith (host keys removed) boots with SSH
# on any hypervisor. Without fw_cfg items it only regenerates host keys.
set -eu
FW=/sys/firmware/qemu_fw_cfg/by_name/opt/goldsmith
modprobe qemu_fw_cfg 2>/dev/null || true

item() { cat "$FW/$1/raw" 2>/dev/null; }

if [ -d "$FW" ]; then
	if user=$(item user) && [ -n "$user" ]; then
		id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
		home=$(getent passwd "$user" | cut -d: -f6)
		install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
		item authorized_keys >"$home/.ssh/authorized_keys"
		chown "$user:$user" "$home/.ssh/authorized_keys"
		chmod 0600 "$home/.ssh/authorized_keys"
		printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" >"/etc/sudoers.d/90-goldsmith-$user"
		chmod 0440 "/etc/sudoers.d/90-goldsmith-$user"
	fi
	if key=$(item ssh_host_ed25519_key) && [ -n "$key" ]; then
		printf '%s\n' "$key" >/etc/ssh/ssh_host_ed25519_key
		chmod 0600 /etc/ssh/ssh_host_ed25519_key
		ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key >/etc/ssh/ssh_host_ed25519_key.pub
	fi
fi
ssh-keygen -A
