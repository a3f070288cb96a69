#!/bin/bash
# Example customizer: runs in the build VM as the build user.
set -euxo pipefail
echo "goldsmith example: $(date -u +%FT%TZ) on $(uname -r)" | sudo tee /etc/goldsmith-built
sudo mkdir -p /opt/golden
echo "setup-os ran" | sudo tee /opt/golden/marker
