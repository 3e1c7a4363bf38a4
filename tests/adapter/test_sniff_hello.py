"""``tillgate sniff LANE`` shows a TCP register's hello, refused or not, under the lane it names.

The hello's bytes are traced before the daemon has read which lane they name; the trace hub
holds a connection's records until then. End to end: a real daemon, a real ``sniff`` process
and registers on real TCP connections. The hub alone: a real unix socket.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from drivers.trace import TraceHub
from tests.integration.harness import DaemonProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


async def say(port: int, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A register's connection: each message, then its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for message in messages:
        writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await writer.drain()
        answers.append(json.loads(await asyncio.wait_for(reader.readline(), 10)))
    writer.close()
    return answers


async def sniff_lane_01(config: Path) -> asyncio.subprocess.Process:
    """A ``tillgate sniff 01`` process reading the daemon's trace socket."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tillgate", "sniff", "01", "--config", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def test_sniff_lane_shows_the_refused_and_the_accepted_hello(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "tillgate.toml"
    config.write_text(
        f'store = "S001"\ndata_dir = "data"\n[[listener]]\naddress = "127.0.0.1:{port}"\n'
        '[[lane]]\nid = "01"\ntoken = "t1"\n',
        encoding="utf-8",
    )
    wrong = {"v": 1, "type": "hello", "id": "q1", "lane": "01", "token": "WRONG"}
    right = {"v": 1, "type": "hello", "id": "q2", "lane": "01", "token": "t1"}
    stranger = {"v": 1, "type": "hello", "id": "s1", "lane": "02", "token": ""}

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        sniffer = await sniff_lane_01(config)
        assert sniffer.stdout is not None
        try:
            header = await asyncio.wait_for(sniffer.stdout.readline(), 20)
            assert header.startswith(b"# sniffing lane 01"), header
            answers = await say(port, [stranger])
            answers += await say(port, [wrong, right])
            lines = [
                (await asyncio.wait_for(sniffer.stdout.readline(), 10)).decode() for _ in range(4)
            ]
        finally:
            sniffer.send_signal(signal.SIGINT)
            await sniffer.wait()
        return lines, answers

    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        lines, answers = asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        daemon.stop()
    assert [answer["type"] for answer in answers] == ["error", "error", "hello.result"]
    assert answers[1]["message"] == "wrong token for lane '01'"
    tails = [line.split(" ", 2)[2].rstrip("\n") for line in lines]
    assert [line.split(" ", 2)[1] for line in lines] == ["01"] * 4
    assert tails[0] == 'reg> {"v":1,"type":"hello","id":"q1","lane":"01","token":"WRONG"}'
    assert tails[1].startswith('<tg  {"v":1,"type":"error","id":"q1","code":"unauthorized"')
    assert tails[2] == 'reg> {"v":1,"type":"hello","id":"q2","lane":"01","token":"t1"}'
    assert tails[3].startswith('<tg  {"v":1,"type":"hello.result","id":"q2"')


def test_held_records_go_to_the_named_lane_only_and_once(tmp_path: Path) -> None:
    async def read(reader: asyncio.StreamReader, count: int) -> list[dict[str, Any]]:
        return [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in range(count)]

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
        hub = TraceHub(tmp_path / "t.sock")
        await hub.start()
        subscribers = []
        for lane in ("01", "*", "02"):
            reader, writer = await asyncio.open_unix_connection(tmp_path / "t.sock")
            writer.write(json.dumps({"lane": lane}).encode() + b"\n")
            await reader.readline()
            subscribers.append((reader, writer))
        tap = hub.tap("tcp:127.0.0.1:5000", "lines")
        tap.trace("in", b'{"type":"hello","lane":"01"}\n', 1.0)
        hub.tap("tcp:127.0.0.1:5000", lane="01")
        tap.trace("out", b'{"type":"error"}\n', 2.0)
        lane01 = await read(subscribers[0][0], 2)
        every = await read(subscribers[1][0], 2)
        try:
            lane02: bytes | None = await asyncio.wait_for(subscribers[2][0].readline(), 0.5)
        except TimeoutError:
            lane02 = None
        for _, writer in subscribers:
            writer.close()
        await hub.close()
        return lane01, every, [lane02, len(tap.held)]

    lane01, every, (lane02, held_after) = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert lane02 is None  # another lane's subscriber is given nothing
    assert [(r["lane"], r["dir"]) for r in lane01] == [("01", "in"), ("01", "out")]
    # "*" saw the hello as it happened, under the peer, and is not given it twice.
    assert [(r["lane"], r["dir"]) for r in every] == [("tcp:127.0.0.1:5000", "in"), ("01", "out")]
    assert held_after == 0


def test_a_closed_connection_leaves_nothing_in_the_trace_hub(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "tillgate.toml"
    config.write_text(
        f'store = "S001"\ndata_dir = "data"\n[[listener]]\naddress = "127.0.0.1:{port}"\n',
        encoding="utf-8",
    )

    async def header_after_a_register_left() -> bytes:
        answers = await say(port, [{"v": 1, "type": "hello", "id": "h1", "lane": "05"}])
        assert answers[0]["type"] == "hello.result"
        await asyncio.sleep(0.5)  # the daemon sees the connection end
        sniffer = await sniff_lane_01(config)
        assert sniffer.stdout is not None
        try:
            return await asyncio.wait_for(sniffer.stdout.readline(), 20)
        finally:
            sniffer.send_signal(signal.SIGINT)
            await sniffer.wait()

    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        header = asyncio.run(header_after_a_register_left())
    finally:
        assert daemon.stop() == 0
    assert header.startswith(b"# sniffing lane 01 (lanes now: none yet)"), header
