"""The TCP transport with the ``lines`` framing over real loopback sockets."""

from __future__ import annotations

import asyncio
import json

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
