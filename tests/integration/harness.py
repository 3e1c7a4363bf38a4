"""Real parts for end-to-end tests: a central gRPC server, a ``tillgate run`` process, registers.

The daemon runs as a separate process (``python -m tillgate run --config ...``) so that tests can
SIGKILL it; registers talk to it over real TCP with :class:`adapter.simulate.RegisterClient`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from central.server import start_server

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, what: str) -> None:
    """Return once ``process`` accepts connections on ``port``; fail with its log if it dies."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}:\n{log.read_text()}")


@contextmanager
def central_server(db: Path, *, demo: bool = True) -> Iterator[Any]:
    """A real central processing server on loopback, in this process."""
    server = start_server(db, "127.0.0.1:0", demo=demo)
    try:
        yield server
    finally:
        server.stop(1.0)


def daemon_config(
    tmp_path: Path,
    *,
    central_url: str,
    port: int,
    extra: str = "",
    deadline_ms: int = 1000,
) -> Path:
    path = tmp_path / "tillgate.toml"
    path.write_text(
        f"""
store = "S001"
timezone = "Europe/Moscow"
data_dir = "data"
[central]
url = "{central_url}"
db = "data/central.db"
deadline_ms = {deadline_ms}
[cache]
db = "data/edge.db"
[[listener]]
address = "127.0.0.1:{port}"
framing = "lines"
{extra}
""",
        encoding="utf-8",
    )
    return path


class ChildProcess:
    """A server in a child process on a known port, its output kept in a log file."""

    #: what the process is called in failure messages
    what = "process"

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def _spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_listening(self.process, self.port, self.log, self.what)

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 15 s); the exit code, None if never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as after a power cut of the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


class DaemonProcess(ChildProcess):
    """``tillgate run --config ...`` in a child process."""

    what = "tillgate"

    def __init__(self, config: Path, port: int, log: Path) -> None:
        super().__init__(port, log)
        self.config = config

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "tillgate", "run", "--config", str(self.config),
                "--log-format", "json"]  # fmt: skip

    def start(self) -> DaemonProcess:
        self._spawn()
        return self


class CentralProcess(ChildProcess):
    """``python -m central serve`` in a child process, so tests can SIGKILL central."""

    what = "central"

    def __init__(self, db: Path, port: int, log: Path) -> None:
        super().__init__(port, log)
        self.db = db

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "central", "serve", "--db", str(self.db), "--listen",
                self.address]  # fmt: skip

    def start(self) -> CentralProcess:
        self._spawn()
        return self


def central_json(db: Path, *args: str) -> Any:
    """The JSON an admin view of ``tillgate central`` prints."""
    import json  # noqa: PLC0415

    result = subprocess.run(
        [sys.executable, "-m", "tillgate", "central", *args, "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def wait_until(predicate: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
