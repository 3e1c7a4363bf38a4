#!/bin/sh
# tillgate prerm: stop the services on removal; drop the byte code postinst compiled.
set -e

if [ "$1" = "remove" ] && [ -d /run/systemd/system ]; then
    systemctl stop tillgate.service tillgate-central.service >/dev/null 2>&1 || true
fi
if [ -d /opt/tillgate ]; then
    find /opt/tillgate -name __pycache__ -type d -prune -exec rm -rf {} +
fi
exit 0
