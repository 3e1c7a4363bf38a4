"""``tillgate simulate``'s arguments: a bad ``--address`` or ``--lines`` is one line and exit 2,
before anything is sent; a good ``--lines N`` plays exactly N lines. A real subprocess against a
real TCP server standing in for the daemon."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


class FakeTillgate:
    """Answers ``hello``, keeps every request, and refuses each ``calculate`` (``invalid``)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while line := await reader.readline():
            request = json.loads(line)
            self.requests.append(request)
            if request["type"] == "hello":
                answer = {"type": "hello.result", "store": "S001", "mode": "online"}
            else:
                answer = {"type": "error", "code": "invalid", "message": "test"}
            writer.write(json.dumps({"v": 1, "id": request["id"], **answer}).encode() + b"\n")
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def simulate(*args: str) -> tuple[int, str, str, FakeTillgate]:
    fake = FakeTillgate()
    address = await fake.start()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tillgate",
        "simulate",
        *[arg.replace("{address}", address) for arg in args],
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    await fake.stop()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode(), fake


def run(*args: str) -> tuple[int, str, str, FakeTillgate]:
    result: tuple[int, str, str, FakeTillgate] = asyncio.run(
        asyncio.wait_for(simulate(*args), 60.0)
    )
    return result


@pytest.mark.parametrize("address", ["localhost", "localhost:", ":7171", "localhost:99999"])
def test_an_address_without_host_and_port_is_one_line_and_exit_2(address: str) -> None:
    code, out, err, _fake = run("--address", address)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert err.startswith("tillgate simulate: --address: ")
    assert "HOST:PORT, e.g. 127.0.0.1:7171" in err


@pytest.mark.parametrize("lines", ["0", "-1", "501"])
def test_lines_out_of_range_is_refused_before_connecting(lines: str) -> None:
    code, out, err, fake = run("--address", "{address}", "--lines", lines)
    assert code == 2
    assert out == ""
    assert err == f"tillgate simulate: --lines: must be 1..500, not {lines}\n"
    assert fake.connections == 0


def test_lines_plays_that_many_lines() -> None:
    code, _out, err, fake = run("--address", "{address}", "--lines", "4")
    assert code == 1, err  # the fake refuses every calculate
    assert [r["type"] for r in fake.requests] == ["hello", "calculate"]
    lines = fake.requests[1]["receipt"]["lines"]
    assert [line["n"] for line in lines] == [1, 2, 3, 4]


def test_a_refused_connection_says_so_with_host_and_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _out, err, _fake = run("--address", f"127.0.0.1:{port}")
    assert code == 1
    assert err.startswith(f"tillgate simulate: connection refused by 127.0.0.1:{port} ")
    assert err.count("\n") == 1


def test_a_closed_output_stops_quietly_without_blaming_the_daemon() -> None:
    # `tillgate simulate | head -n 0`: the reader of our output is gone before the first line.
    async def scenario() -> tuple[int, str, FakeTillgate]:
        fake = FakeTillgate()
        address = await fake.start()
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tillgate", "simulate", "--address", address,
                cwd=ROOT, stdout=write_end, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        finally:
            os.close(write_end)
        _, err = await process.communicate()
        await fake.stop()
        assert process.returncode is not None
        return process.returncode, err.decode(), fake

    code, err, fake = asyncio.run(asyncio.wait_for(scenario(), 60.0))
    assert (code, err) == (1, "")
    assert [request["type"] for request in fake.requests] == ["hello"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_output_that_cannot_be_written_is_said_as_such() -> None:
    # `tillgate simulate > /dev/full`: the disk is full, not the daemon unreachable.
    async def scenario() -> tuple[int, str]:
        fake = FakeTillgate()
        address = await fake.start()
        with Path("/dev/full").open("wb") as full:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tillgate", "simulate", "--address", address,
                cwd=ROOT, stdout=full, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await process.communicate()
        await fake.stop()
        assert process.returncode is not None
        return process.returncode, err.decode()

    code, err = asyncio.run(asyncio.wait_for(scenario(), 60.0))
    assert code == 1
    assert err == "tillgate simulate: cannot write the output: [Errno 28] No space left on device\n"
