#!/bin/sh
# tillgate postrm: forget the units. Data in /var/lib/tillgate is kept even on purge: the
# outbox may hold receipts central has not received yet. Remove it by hand when it is empty
# (`tillgate status` shows outbox.depth 0).
set -e

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "purge" ]; then
    rmdir /etc/tillgate/tls 2>/dev/null || true
    rmdir /etc/tillgate 2>/dev/null || true
fi
exit 0
