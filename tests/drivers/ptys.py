"""Real pseudo-terminals for serial tests: pty pairs, master-end streams, a noisy relay.

``link_register(pty)`` gives a register simulator on the master end: the ``link`` core (the
register role is the same state machine) in a FramedChannel, sending and receiving messages.

A pty pair is a real serial-like device: the slave end has a path (``/dev/pts/N``) that the
serial transport opens like ``/dev/ttyUSB0``; the master end is a descriptor a test (a register
simulator, a relay) reads and writes. ptys do not throttle to a baud rate: :class:`NoisyRelay`
can pace bytes at one to emulate a real line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import tty
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from drivers.channel import FramedChannel
from drivers.link import Link


@dataclass
class PtyPair:
    """One pty: ``path`` for the serial transport, ``master_fd`` for the test."""

    master_fd: int
    slave_fd: int  # held open in raw mode so nothing echoes or cooks bytes before the port opens
    path: str

    def close(self) -> None:
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.contextmanager
def pty_pair() -> Iterator[PtyPair]:
    """A raw pty pair, closed on exit."""
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    pair = PtyPair(master_fd, slave_fd, os.ttyname(slave_fd))
    try:
        yield pair
    finally:
        pair.close()


async def master_streams(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An asyncio reader/writer pair over a pty master (dup'ed: the caller keeps ``fd``)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2 * 1024 * 1024)
    read_protocol = asyncio.StreamReaderProtocol(reader)
    await loop.connect_read_pipe(lambda: read_protocol, os.fdopen(os.dup(fd), "rb", buffering=0))
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(fd), "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
    return reader, writer


async def link_register(master_fd: int, *, baud: int | None = None) -> FramedChannel:
    """A register simulator speaking ``link`` on a pty's master end (close it when done)."""
    reader, writer = await master_streams(master_fd)
    return FramedChannel(reader, writer, Link(baud=baud), peer="register", transport="serial")


@dataclass
class RelayStats:
    bytes: int = 0
    corrupted: int = 0


class NoisyRelay:
    """Two pty pairs bridged by asyncio tasks that damage about ``rate`` of the bytes.

    Open ``a_path`` at one end and ``b_path`` at the other: what one writes reaches the other,
    damaged now and then (one bit of the byte flipped, as line noise does; see
    ``tests.drivers.linksim.bit_flipper`` for why not random bytes). With ``baud`` set, bytes
    are paced at ``baud / 10`` per second per direction, like a real 8N1 line.
    """

    def __init__(self, rate: float = 0.01, *, seed: int = 0, baud: int | None = None) -> None:
        self.rate = rate
        self.baud = baud
        self._rng = random.Random(seed)
        self._stack = contextlib.ExitStack()
        self._a = self._stack.enter_context(pty_pair())
        self._b = self._stack.enter_context(pty_pair())
        self.stats = {"ab": RelayStats(), "ba": RelayStats()}
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def a_path(self) -> str:
        return self._a.path

    @property
    def b_path(self) -> str:
        return self._b.path

    async def __aenter__(self) -> NoisyRelay:
        reader_a, writer_a = await master_streams(self._a.master_fd)
        reader_b, writer_b = await master_streams(self._b.master_fd)
        self._writers = [writer_a, writer_b]
        self._tasks = [
            asyncio.create_task(self._pump(reader_a, writer_b, self.stats["ab"])),
            asyncio.create_task(self._pump(reader_b, writer_a, self.stats["ba"])),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        for writer in self._writers:
            writer.close()
        self._stack.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: RelayStats
    ) -> None:
        line_free = time.monotonic()
        while data := await reader.read(4096):
            out = bytearray(data)
            for i in range(len(out)):
                if self._rng.random() < self.rate:
                    out[i] ^= 1 << self._rng.randrange(8)
                    stats.corrupted += 1
            stats.bytes += len(out)
            if not self.baud:
                writer.write(bytes(out))
                await writer.drain()
                continue
            # Pace in ~10 ms pieces so a frame never arrives with a long hole in the middle.
            # Deadlines are absolute (from when the bytes arrived), so sleep overshoot does not
            # add up across pieces.
            arrived = time.monotonic()
            piece = max(1, self.baud // 1000)
            for start in range(0, len(out), piece):
                chunk = bytes(out[start : start + piece])
                line_free = max(line_free, arrived) + len(chunk) * 10 / self.baud
                await asyncio.sleep(max(0.0, line_free - time.monotonic()))
                writer.write(chunk)
                await writer.drain()


@contextlib.asynccontextmanager
async def noisy_relay(
    rate: float = 0.01, *, seed: int = 0, baud: int | None = None
) -> AsyncIterator[NoisyRelay]:
    """``async with noisy_relay(...) as relay:`` — the same as using :class:`NoisyRelay`."""
    async with NoisyRelay(rate, seed=seed, baud=baud) as relay:
        yield relay
