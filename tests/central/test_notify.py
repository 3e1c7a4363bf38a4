"""``central serve`` tells systemd when it is ready and when it stops (Type=notify units)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import free_port


def test_ready_and_stopping_reach_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": str(path)}
        process = subprocess.Popen(
            [sys.executable, "-m", "central", "serve", "--db", str(tmp_path / "c.db"),
             "--listen", f"127.0.0.1:{free_port()}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert sock.recv(64) == b"READY=1"
            process.send_signal(signal.SIGTERM)
            assert sock.recv(64) == b"STOPPING=1"
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
