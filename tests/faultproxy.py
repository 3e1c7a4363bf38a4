"""An asyncio TCP fault proxy for tests: sits between a client and a server on 127.0.0.1
and misbehaves on demand.

Modes, switchable at any time from the test with :meth:`FaultProxy.set_mode`:

- ``pass``: bytes flow both ways untouched.
- ``delay``: every chunk is held ``delay_ms`` before it is forwarded.
- ``stall``: connections are accepted but nothing is forwarded (either way) until the mode
  changes; reading stops, so the peers see TCP back-pressure, not buffering without bound.
- ``drop``: new connections are closed at once (FIN); existing ones keep flowing.
- ``reset``: every existing connection is aborted with an RST (SO_LINGER 0), and so is every
  new one while the mode lasts.

Bounded: at most ``max_connections`` open client connections (extra ones are closed at once)
and reads of at most 64 KiB per chunk. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FaultMode", "FaultProxy"]

FaultMode = Literal["pass", "delay", "stall", "drop", "reset"]
_CHUNK = 64 * 1024


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards 127.0.0.1:<port> to ``target_port`` on 127.0.0.1, with injectable faults."""

    def __init__(self, target_port: int, *, max_connections: int = 64) -> None:
        self.target_port = target_port
        self.max_connections = max_connections
        self.mode: FaultMode = "pass"
        self.delay_ms = 0
        self.accepted = 0  #: connections accepted so far (dropped and reset ones included)
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._mode_changed = asyncio.Event()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, for a gRPC target."""
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._close(link, rst=False)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set_mode(self, mode: FaultMode, *, delay_ms: int = 0) -> None:
        """Switch the fault mode; ``reset`` also aborts every open connection now."""
        if mode not in ("pass", "delay", "stall", "drop", "reset"):
            raise ValueError(f"unknown fault mode {mode!r}")
        if mode == "delay" and delay_ms <= 0:
            raise ValueError("delay mode needs delay_ms > 0")
        self.mode = mode
        self.delay_ms = delay_ms
        event, self._mode_changed = self._mode_changed, asyncio.Event()
        event.set()
        if mode == "reset":
            for link in list(self._links):
                self._close(link, rst=True)

    def _close(self, link: _Link, *, rst: bool) -> None:
        self._links.discard(link)
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()
        for writer in (link.client, link.upstream):
            if writer is None:
                continue
            if rst:
                _abort_with_rst(writer)
            else:
                writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reset":
            _abort_with_rst(writer)
            return
        if self.mode == "drop" or len(self._links) >= self.max_connections:
            writer.close()
            return
        link = _Link(client=writer)
        self._links.add(link)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self._close(link, rst=False)
            return
        if link not in self._links:  # reset while connecting
            _abort_with_rst(up_writer)
            return
        link.upstream = up_writer
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link)),
        ]

    async def _gate(self) -> None:
        """Wait while the proxy is stalled; sleep the delay in delay mode."""
        while self.mode == "stall":
            await self._mode_changed.wait()
        if self.mode == "delay":
            await asyncio.sleep(self.delay_ms / 1000)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link
    ) -> None:
        try:
            while True:
                await self._gate()
                chunk = await source.read(_CHUNK)
                if not chunk:
                    break
                await self._gate()
                sink.write(chunk)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if link in self._links:
                self._close(link, rst=False)
