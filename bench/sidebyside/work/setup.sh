#!/bin/sh
# The side-by-side benchmark's first customizer, served by the bench over
# HTTP (goldsmith downloads it by scriptUri and checks its sha256; Packer
# uploads it from a local file). The runner replaces the nonce per pair, so
# every warm build starts with a customizer no layer cache has seen.
set -eu
nonce=@NONCE@
sudo install -d -m 0755 /var/lib/bench /opt/bench
printf '%s\n' "$nonce" | sudo tee /var/lib/bench/setup-marker >/dev/null
printf 'built by the side-by-side benchmark (nonce %s)\n' "$nonce" | sudo tee /etc/motd >/dev/null
echo "bench-setup: done, nonce $nonce"
