"""TCP transport: one listening port, one connection per lane, any framing.

Only moves bytes: each accepted connection becomes a :class:`FramedChannel` handed to the
daemon's ``on_channel`` coroutine; the connection is closed when that coroutine returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

import structlog

from drivers.base import Channel, Framing
from drivers.channel import FramedChannel, NoticeCallback, TraceCallback

log = structlog.get_logger("tillgate.tcp")

ChannelHandler = Callable[[Channel], Awaitable[None]]


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:7171"`` / ``"[::1]:7171"`` → (host, port); raises ValueError."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise ValueError(f"{address!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host.strip("[]"), port


async def serve_tcp(
    host: str,
    port: int,
    framing_factory: Callable[[], Framing],
    on_channel: ChannelHandler,
    *,
    trace_for: Callable[[str], TraceCallback | None] | None = None,
    notice_for: Callable[[str], NoticeCallback | None] | None = None,
    start_serving: bool = True,
) -> asyncio.Server:
    """Listen on ``host:port``; every connection runs ``on_channel(channel)`` to completion.

    ``start_serving=False`` binds the port now and accepts nothing until
    :meth:`asyncio.Server.start_serving` (connections are refused until then).
    """

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peername = writer.get_extra_info("peername")
        peer = f"tcp:{peername[0]}:{peername[1]}" if peername else "tcp:?"
        try:
            core = framing_factory()
        except Exception:
            # asyncio would print a bare traceback naming no listener: the daemon's own log
            # says which port's framing failed, and the register sees a closed connection.
            log.exception("framing_failed", listener=f"{host}:{port}", peer=peer)
            writer.transport.abort()
            return
        channel = FramedChannel(
            reader,
            writer,
            core,
            peer=peer,
            transport="tcp",
            trace=trace_for(peer) if trace_for else None,
            on_notice=notice_for(peer) if notice_for else None,
        )
        try:
            await on_channel(channel)
        finally:
            await channel.close()

    return await asyncio.start_server(
        accepted, host, port, limit=2 * 1024 * 1024, start_serving=start_serving
    )
