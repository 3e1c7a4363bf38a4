#!/bin/sh
# tillgate postrm: forget the units. Data in /var/lib/tillgate is kept even on purge: the
# outbox may hold receipts central has not received yet. Remove it by hand when it is empty
# (`tillgate status` shows outbox.depth 0). The tillgate user is kept too, as Debian policy
# asks: files it owns may outlive the package.
# dpkg --root=DIR runs this with DPKG_ROOT=DIR (empty for /): every path is taken under it.
set -e

root="${DPKG_ROOT:-}"

case "$1" in
    remove|purge)
        # Enablement links prerm could not disable (no systemctl, or made by hand) would point
        # at unit files that are gone now. A link named after a unit can only enable that unit.
        for unit in tillgate.service tillgate-central.service; do
            for link in "$root"/etc/systemd/system/*.wants/"$unit" \
                        "$root"/etc/systemd/system/*.requires/"$unit"; do
                if [ -L "$link" ]; then
                    rm -f "$link"
                fi
            done
        done
        ;;
esac
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "purge" ]; then
    rmdir "$root/etc/tillgate/tls" 2>/dev/null || true
    rmdir "$root/etc/tillgate" 2>/dev/null || true
fi
exit 0
