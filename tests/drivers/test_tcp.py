"""The TCP transport with the ``lines`` framing over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct

import pytest

from drivers.base import Channel, ChannelClosed, Received, Rejected
from drivers.lines import LinesFraming
from drivers.tcp import parse_address, serve_tcp


async def _echo_server() -> tuple[asyncio.Server, int, list[str]]:
    seen: list[str] = []

    async def on_channel(channel: Channel) -> None:
        while True:
            try:
                event = await channel.receive()
            except ChannelClosed:
                return
            if isinstance(event, Received):
                seen.append(channel.peer)
                await channel.send({"echo": event.message})
            elif isinstance(event, Rejected):
                await channel.send({"rejected": event.code, "detail": event.detail})

    server = await serve_tcp("127.0.0.1", 0, LinesFraming, on_channel)
    return server, server.sockets[0].getsockname()[1], seen


def test_messages_and_rejections_over_tcp() -> None:
    async def scenario() -> None:
        server, port, seen = await _echo_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b'\xef\xbb\xbf{"type":"ping"}\r\nnot json\n[1,2]\n\xff\xfe\n{"x":"\xd0\x96"}\n'
        )
        await writer.drain()
        answers = [json.loads(await reader.readline()) for _ in range(5)]
        assert answers[0] == {"echo": {"type": "ping"}}
        assert answers[1]["rejected"] == "malformed"
        assert answers[2]["rejected"] == "malformed"
        assert "list" in answers[2]["detail"]
        assert answers[3]["rejected"] == "malformed"
        assert "UTF-8" in answers[3]["detail"]
        assert answers[4] == {"echo": {"x": "Ж"}}
        assert seen
        assert seen[0].startswith("tcp:127.0.0.1:")
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_a_lone_surrogate_escape_is_malformed_and_a_pair_is_a_character() -> None:
    async def scenario() -> None:
        server, port, _ = await _echo_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b'{"v":1,"type":"ping","id":"ps4","x":"\\udc00"}\n'
            b'{"v":1,"type":"ping","id":"ps5","deep":[{"\\ud800x":1}]}\n'
            b'{"x":"\\ud83d\\ude00","y":"\\\\udc00"}\n'
        )
        await writer.drain()
        answers = [json.loads(await reader.readline()) for _ in range(3)]
        assert answers[0] == {
            "rejected": "malformed",
            "detail": "not valid Unicode: a lone surrogate \\udc00",
        }
        assert answers[1]["rejected"] == "malformed"
        assert answers[2] == {"echo": {"x": "\U0001f600", "y": "\\udc00"}}
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:7171") == ("127.0.0.1", 7171)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("7171", "host:", ":80", "h:99999"):
        try:
            parse_address(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_a_peer_that_sends_without_reading_is_held_back_and_loses_nothing() -> None:
    """While the lane has answers the peer does not read, the channel stops reading too:
    TCP pushes back on the peer instead of the daemon queueing its flood in memory."""
    ping = b'{"type":"ping"}\n'

    async def scenario() -> None:
        channels: list[Channel] = []
        answering = asyncio.Event()

        async def on_channel(channel: Channel) -> None:
            channels.append(channel)
            await answering.wait()
            while True:
                try:
                    event = await channel.receive()
                except ChannelClosed:
                    return
                assert isinstance(event, Received)
                await channel.send({"echo": event.message})

        server = await serve_tcp("127.0.0.1", 0, LinesFraming, on_channel)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # The lane is busy (not taking events): write until the kernel's buffers are full
        # and the writer stays blocked; a channel that went on reading would take it all.
        flood = ping * 4096
        sent = 0
        while sent < 64 * 2**20:
            writer.write(flood)
            try:
                await asyncio.wait_for(writer.drain(), timeout=1.0)
            except TimeoutError:
                break
            sent += len(flood)
        assert sent < 64 * 2**20, "the channel read everything it was sent"
        answering.set()
        # Nothing is lost: every ping sent is answered, in order, once the peer reads.
        reading = asyncio.ensure_future(reader.readexactly(len(b'{"echo":{"type":"ping"}}\n')
                                                           * (sent // len(ping))))
        await writer.drain()
        answers = await asyncio.wait_for(reading, timeout=120)
        assert answers.count(b"\n") == sent // len(ping)
        assert set(answers.splitlines()) == {b'{"echo":{"type":"ping"}}'}
        assert len(channels) == 1
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_a_write_that_fails_closes_the_channel(caplog: pytest.LogCaptureFixture) -> None:
    """A peer gone while its answers are still being written: the first failed write closes
    the channel, so later answers are refused at once instead of written into a dead socket
    (which asyncio reports as a warning after a few tries)."""

    async def scenario() -> list[BaseException]:
        failures: list[BaseException] = []
        finished = asyncio.Event()

        async def on_channel(channel: Channel) -> None:
            await asyncio.sleep(0.3)  # busy while the peer writes and hangs up
            try:
                for _ in range(50):
                    event = await channel.receive()
                    assert isinstance(event, Received)
                    try:
                        await channel.send({"echo": event.message})
                    except (ChannelClosed, OSError) as exc:
                        failures.append(exc)
            except ChannelClosed:
                pass
            finished.set()

        server = await serve_tcp("127.0.0.1", 0, LinesFraming, on_channel)
        port = server.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b'{"type":"ping"}\n' * 50)
        # An abortive close (RST): the daemon's next write fails at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        await asyncio.wait_for(finished.wait(), timeout=10)
        server.close()
        await server.wait_closed()
        return failures

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        failures = asyncio.run(scenario())
    assert failures, "no write failed: the peer's hang-up was not seen"
    assert all(isinstance(exc, ChannelClosed) for exc in failures[1:])
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
