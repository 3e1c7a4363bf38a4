"""The README's `nc` session, replayed against a daemon on the embedded default: every answer
must be the one the README prints (compared as JSON), so the first thing a newcomer tries
never disagrees with the code."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.integration.harness import DaemonProcess, daemon_config, free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_session() -> list[tuple[str, str]]:
    block = README.read_text(encoding="utf-8").split("## A session over `nc`")[1].split("```")[1]
    sent = [line[2:] for line in block.splitlines() if line.startswith("> ")]
    answered = [line[2:] for line in block.splitlines() if line.startswith("< ")]
    assert len(sent) == len(answered) >= 5
    return list(zip(sent, answered, strict=True))


def test_the_readme_session_gets_the_answers_the_readme_prints(tmp_path: Path) -> None:
    port = free_port()
    config = daemon_config(tmp_path, central_url="embedded", port=port)
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            stream = sock.makefile("rwb")
            for request, expected in readme_session():
                stream.write(request.encode() + b"\n")
                stream.flush()
                assert json.loads(stream.readline()) == json.loads(expected), request
    finally:
        daemon.stop()
