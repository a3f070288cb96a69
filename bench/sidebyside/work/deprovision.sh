#!/bin/sh
# Packer's side of goldsmith's generalize (customize/generalize.go, the
# "builtin" method used for images without waagent): the same steps, run as
# root by the last provisioner. The build user is removed, and the guest
# powered off, by the template's shutdown_command, because removing the user
# ends its sudo rights.
set -u
echo "==> removing SSH host keys"
rm -f /etc/ssh/ssh_host_*
echo "==> resetting the machine id"
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id
echo "==> cleaning cloud-init state"
if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs; fi
echo "==> cleaning apt lists and caches"
apt-get clean
rm -rf /var/lib/apt/lists/*
echo "==> removing shell histories"
for h in /root /home/*; do
	for n in .bash_history .zsh_history .sh_history .ash_history .history .python_history .lesshst .viminfo .wget-hsts; do
		rm -f "$h/$n"
	done
done
echo "==> truncating logs in /var/log"
if [ -d /var/log/journal ]; then
	journalctl --rotate >/dev/null 2>&1
	journalctl --vacuum-time=1s >/dev/null 2>&1
fi
find /var/log -path /var/log/journal -prune -o -type f \( -name '*.gz' -o -name '*.xz' -o -name '*.[0-9]' -o -name '*.old' \) -exec rm -f {} +
find /var/log -path /var/log/journal -prune -o -type f -exec truncate -s 0 {} +
sync
