"""The fault proxy itself: each mode observed through real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.faultproxy import FaultProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def with_proxy(scenario: Callable[[FaultProxy], Awaitable[None]]) -> None:
    """Run ``scenario`` against a proxy in front of an echo server (no asyncio plugin here)."""

    async def main() -> None:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with FaultProxy(port, max_connections=3) as fault_proxy:
                await scenario(fault_proxy)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _roundtrip(proxy: FaultProxy, payload: bytes) -> bytes:
    reader, writer = await _connect(proxy)
    writer.write(payload)
    data = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    writer.close()
    return data


def test_pass_forwards_both_ways() -> None:
    async def scenario(proxy: FaultProxy) -> None:
        assert await _roundtrip(proxy, b"hello\n") == b"hello\n"

    with_proxy(scenario)


def test_delay_still_delivers_everything() -> None:
    async def scenario(proxy: FaultProxy) -> None:
        proxy.set_mode("delay", delay_ms=20)
        payload = bytes(range(256)) * 40
        assert await _roundtrip(proxy, payload) == payload

    with_proxy(scenario)


def test_stall_holds_data_until_the_mode_changes() -> None:
    async def scenario(proxy: FaultProxy) -> None:
        reader, writer = await _connect(proxy)
        proxy.set_mode("stall")
        writer.write(b"held")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(4), 0.3)
        proxy.set_mode("pass")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
        writer.close()

    with_proxy(scenario)


def test_drop_closes_new_connections_but_keeps_old_ones() -> None:
    async def scenario(proxy: FaultProxy) -> None:
        old_reader, old_writer = await _connect(proxy)
        old_writer.write(b"a")
        assert await asyncio.wait_for(old_reader.readexactly(1), 5) == b"a"
        proxy.set_mode("drop")
        reader, _writer = await _connect(proxy)
        assert await asyncio.wait_for(reader.read(10), 5) == b""
        old_writer.write(b"b")
        assert await asyncio.wait_for(old_reader.readexactly(1), 5) == b"b"
        old_writer.close()

    with_proxy(scenario)


def test_reset_aborts_existing_connections_with_rst() -> None:
    async def scenario(proxy: FaultProxy) -> None:
        reader, writer = await _connect(proxy)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        proxy.set_mode("reset")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 5)
        assert proxy.open_connections == 0
        new_reader, _new_writer = await _connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(new_reader.read(10), 5)
        proxy.set_mode("pass")
        assert await _roundtrip(proxy, b"back") == b"back"

    with_proxy(scenario)


def test_connections_are_bounded() -> None:
    async def scenario(proxy: FaultProxy) -> None:
        held = [await _connect(proxy) for _ in range(3)]
        for reader, writer in held:
            writer.write(b"k")
            assert await asyncio.wait_for(reader.readexactly(1), 5) == b"k"
        extra_reader, _extra_writer = await _connect(proxy)
        assert await asyncio.wait_for(extra_reader.read(10), 5) == b""
        assert proxy.open_connections == 3
        for _reader, writer in held:
            writer.close()

    with_proxy(scenario)


def test_unknown_mode_is_refused() -> None:
    fault_proxy = FaultProxy(1)
    with pytest.raises(ValueError, match="unknown fault mode"):
        fault_proxy.set_mode("explode")  # type: ignore[arg-type]  # an invalid mode on purpose
    with pytest.raises(ValueError, match="delay_ms"):
        fault_proxy.set_mode("delay")
