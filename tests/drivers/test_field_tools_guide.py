"""The field guide's probe transcripts are what the probes print.

Every ``$ tillgate probe ...`` in a code block of docs/field-guide.md is run against a stand-in
for its device (a TCP capture server, a closed port, a pty with a link peer on it), and its
output, with the stand-in's address put back to the guide's, must be the lines the guide shows.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from drivers.channel import FramedChannel
from drivers.link import Link
from tests.capture import CaptureServer
from tests.drivers.ptys import master_streams, pty_pair

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "field-guide.md"


def transcripts() -> list[tuple[list[str], list[str]]]:
    """(argv after ``tillgate``, expected output lines) for each probe in the guide."""
    found: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"^```\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.M | re.S):
        current: tuple[list[str], list[str]] | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                argv = shlex.split(line[2:])
                current = (argv[1:], []) if argv[:2] == ["tillgate", "probe"] else None
                if current is not None:
                    found.append(current)
            elif current is not None:
                current[1].append(line)
    return found


async def tillgate(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.decode()


async def run_against_a_stand_in(argv: list[str], expected: list[str]) -> str:
    """Run ``argv`` with its device replaced; the output with the guide's device put back."""
    kind, device = argv[1], argv[2]
    if device.startswith("tcp://"):
        guide_address = device.removeprefix("tcp://")
        if any("connection refused" in line for line in expected):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                url = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
            out = await tillgate(argv[0], kind, url, *argv[3:])
        else:
            capture = CaptureServer()
            url = await capture.start()
            out = await tillgate(argv[0], kind, url, *argv[3:])
            await capture.stop()
        return out.replace(url.removeprefix("tcp://"), guide_address)
    with pty_pair() as pty:
        peer = None
        if kind == "serial":
            reader, writer = await master_streams(pty.master_fd)
            peer = FramedChannel(reader, writer, Link(), peer="register", transport="serial")
        out = await tillgate(argv[0], kind, pty.path, *argv[3:])
        if peer is not None:
            await peer.close()
    out = out.replace(pty.path, device)
    if kind == "serial":  # the guide's round trip, not this machine's
        guide_ms = re.search(r" in (\d+) ms", "\n".join(expected))
        assert guide_ms is not None
        out = re.sub(r" in \d+ ms", f" in {guide_ms[1]} ms", out)
    return out


def test_the_guide_shows_every_probe() -> None:
    kinds = {argv[1] for argv, _ in transcripts()}
    assert kinds == {"serial", "printer", "display"}


@pytest.mark.parametrize(
    ("argv", "expected"), [pytest.param(*t, id=" ".join(t[0])) for t in transcripts()]
)
def test_a_probe_prints_what_the_guide_shows(argv: list[str], expected: list[str]) -> None:
    def run(coro: Any) -> str:
        result: str = asyncio.run(asyncio.wait_for(coro, 60))
        return result

    assert run(run_against_a_stand_in(argv, expected)).splitlines() == expected
