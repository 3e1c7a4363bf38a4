"""A central server in its own process (``python -m central serve``) for crash tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from central.clock import NOW_ENV
from tests.central.conftest import NOW

_LISTENING = re.compile(r"central listening on (\S+)")


class CentralProcess:
    """``python -m central serve --db DB --listen 127.0.0.1:0`` with stderr in a file."""

    def __init__(self, db: Path, log: Path, *extra: str) -> None:
        self.log = log
        env = {**os.environ, NOW_ENV: NOW}
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "central", "serve", "--db", str(db),
             "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.DEVNULL, stderr=self._stderr, env=env,
        )
        self.address = self._wait_address()

    def _wait_address(self) -> str:
        for _ in range(1200):  # up to a minute on a loaded machine
            text = self.log.read_text(encoding="utf-8", errors="replace")
            found = _LISTENING.findall(text)
            if found and self.proc.poll() is None:
                return str(found[-1])
            if self.proc.poll() is not None:
                raise RuntimeError(f"central exited early:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("central did not start listening")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._stderr.close()

    def terminate(self) -> int:
        """SIGTERM and wait for the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._stderr.close()
        return code
