#!/bin/sh
# tillgate postinst: the service user, permissions, byte code, systemd reload.
set -e

if [ "$1" = "configure" ]; then
    if ! getent passwd tillgate >/dev/null; then
        # The home is the state directory; made first (owned below) so adduser finds it.
        install -d -m 0750 /var/lib/tillgate
        adduser --system --group --home /var/lib/tillgate --no-create-home \
            --gecos "tillgate store daemon" tillgate
    fi
    # Serial lanes, printers and displays are /dev/tty* devices of group dialout.
    if ! id -nG tillgate | tr ' ' '\n' | grep -qx dialout; then
        adduser tillgate dialout >/dev/null
    fi

    install -d -o tillgate -g tillgate -m 0750 /var/lib/tillgate
    install -d -o root -g tillgate -m 0750 /etc/tillgate/tls
    # The config holds lane tokens: readable by root and the tillgate group only, unless
    # the administrator chose otherwise with dpkg-statoverride.
    for f in /etc/tillgate/tillgate.toml /etc/tillgate/central.env; do
        if [ -f "$f" ] && ! dpkg-statoverride --list "$f" >/dev/null 2>&1; then
            chown root:tillgate "$f"
            chmod 0640 "$f"
        fi
    done

    # Byte code for the target's interpreter; the service cannot write to /opt.
    /opt/tillgate/bin/python3 -m compileall -q /opt/tillgate/lib >/dev/null || \
        echo "tillgate: could not compile byte code (the daemon still runs, starts slower)" >&2

    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
        # An upgrade restarts the services that were running; a first install starts nothing.
        if [ -n "$2" ]; then
            systemctl try-restart tillgate.service tillgate-central.service >/dev/null || true
        fi
    fi
fi
exit 0
