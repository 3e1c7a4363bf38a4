#!/bin/sh
# tillgate prerm: on removal stop the services and disable them; an upgrade keeps both (postinst
# restarts what was running). Drop the byte code postinst compiled.
# dpkg --root=DIR runs this with DPKG_ROOT=DIR (empty for /): every path is taken under it, and
# nothing running is touched then.
set -e

root="${DPKG_ROOT:-}"

if [ "$1" = "remove" ]; then
    if [ -z "$root" ] && [ -d /run/systemd/system ]; then
        systemctl stop tillgate.service tillgate-central.service >/dev/null 2>&1 || true
    fi
    # `systemctl enable` (as operations.md tells) made links in multi-user.target.wants that
    # would dangle once the unit files are gone. Disabling reads the units' [Install]
    # sections, so it happens here, while they still exist; postrm sweeps what is left where
    # there is no systemctl (a container).
    if command -v systemctl >/dev/null 2>&1; then
        if [ -n "$root" ]; then
            systemctl --root="$root" disable tillgate.service tillgate-central.service \
                >/dev/null 2>&1 || true
        else
            systemctl disable tillgate.service tillgate-central.service >/dev/null 2>&1 || true
        fi
    fi
fi
if [ -d "$root/opt/tillgate" ]; then
    find "$root/opt/tillgate" -name __pycache__ -type d -prune -exec rm -rf {} +
fi
exit 0
