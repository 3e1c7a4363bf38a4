"""Serial transport: a pyserial port as an asyncio StreamReader/StreamWriter pair.

Theory of operation: :func:`open_serial_connection` opens any port pyserial's
``serial_for_url`` understands (``/dev/ttyUSB0``, ``/dev/pts/7``, ``socket://host:port``,
``loop://``) at 8N1 without flow control, and wraps it in an :class:`asyncio.Transport` feeding a
standard :class:`asyncio.StreamReaderProtocol`. A local port (a real file descriptor) is made
non-blocking and watched with ``loop.add_reader``/``add_writer``, so the event loop never
blocks. A URL port has no descriptor to watch, so a reader thread and a writer thread move its
bytes instead. Either way the transport only moves bytes; framings live in the cores.

pyserial and OS errors become :class:`~tillgate.errors.DeviceError` naming the port. A port that
disappears while open (USB cable pulled, pty closed) ends the stream like a closed socket would:
the reader sees a ``ConnectionResetError`` naming the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import queue
import threading
from typing import Any

import serial

from drivers.base import Framing
from drivers.channel import FramedChannel, NoticeCallback, TraceCallback
from tillgate.errors import DeviceError

__all__ = [
    "BAUD_RATES",
    "SerialTransport",
    "open_serial_channel",
    "open_serial_connection",
    "open_serial_port",
]

#: the line rates tillgate speaks (register protocol §1: 9600…115200), for lanes and devices
BAUD_RATES = (9600, 19200, 38400, 57600, 115200)

#: write buffer sizes at which the writer is paused and resumed (``drain()`` waits)
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
#: how long a URL port's reader thread blocks in read() before looking at the close flag
THREAD_POLL = 0.05
STREAM_LIMIT = 2 * 1024 * 1024


def open_serial_port(url: str, baud: int) -> Any:
    """Open ``url`` at ``baud`` 8N1, no flow control; raises DeviceError naming the port."""
    try:
        port = serial.serial_for_url(
            url,
            baudrate=baud,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            xonxoff=False,
            rtscts=False,
            dsrdtr=False,
            timeout=THREAD_POLL,
            write_timeout=None,
            do_not_open=True,
        )
        if isinstance(port, serial.Serial) and _is_local(url):
            # Two daemons on one port would steal each other's bytes.
            port.exclusive = True
        port.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(f"serial port {url}: cannot open at {baud} baud: {exc}") from exc
    return port


def _is_local(url: str) -> bool:
    return "://" not in url


class SerialTransport(asyncio.Transport):
    """An asyncio transport over an open pyserial port (descriptor- or thread-driven)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: asyncio.Protocol,
        port: Any,
        url: str,
    ) -> None:
        super().__init__()
        self._info: dict[str, Any] = {"serial": port, "peername": url}
        self._loop = loop
        self._protocol = protocol
        self._port = port
        self._url = url
        self._closing = False
        self._lost = False
        self._paused = False
        self._buffer = bytearray()
        self._pending_thread_bytes = 0
        self._fd: int | None = None
        self._write_queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        if _is_local(url) and hasattr(port, "fileno"):
            self._fd = port.fileno()
            os.set_blocking(self._fd, False)
        loop.call_soon(protocol.connection_made, self)
        if self._fd is not None:
            loop.call_soon(loop.add_reader, self._fd, self._read_ready)
        else:
            for target, name in ((self._thread_reader, "reader"), (self._thread_writer, "writer")):
                thread = threading.Thread(target=target, name=f"serial {name} {url}", daemon=True)
                self._threads.append(thread)
                thread.start()

    # -- asyncio.Transport ------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``serial`` (the pyserial port), ``peername`` (the URL), ``serial_error`` once lost."""
        return self._info.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        data = bytes(data)
        if self._fd is None:
            self._pending_thread_bytes += len(data)
            self._write_queue.put(data)
        elif self._buffer:
            self._buffer += data
        else:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self._connection_lost(exc)
                return
            if written < len(data):
                self._buffer += data[written:]
                self._loop.add_writer(self._fd, self._write_ready)
        self._check_high_water()

    def get_write_buffer_size(self) -> int:
        return len(self._buffer) + self._pending_thread_bytes

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            if not self._buffer:
                self._loop.call_soon(self._finish_close, None)
        else:
            self._write_queue.put(None)  # the writer thread flushes, then the reader closes

    def abort(self) -> None:
        self._buffer.clear()
        self._closing = True
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._loop.call_soon(self._finish_close, None)
        else:
            self._write_queue.put(None)

    # -- descriptor mode --------------------------------------------------------------------

    def _read_ready(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._connection_lost(exc)
            return
        if not data:
            # Readable but empty: the device went away (what pyserial's read() reports too).
            self._connection_lost(OSError(errno.EIO, "device reports readiness but no data"))
            return
        self._protocol.data_received(data)

    def _write_ready(self) -> None:
        assert self._fd is not None
        try:
            written = os.write(self._fd, self._buffer)
        except BlockingIOError:
            return
        except OSError as exc:
            self._connection_lost(exc)
            return
        del self._buffer[:written]
        self._check_low_water()
        if not self._buffer:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._finish_close(None)

    # -- thread mode --------------------------------------------------------------------------

    def _thread_reader(self) -> None:
        try:
            while not self._closing:
                data = self._port.read(self._port.in_waiting or 1)
                if data:
                    self._loop.call_soon_threadsafe(self._deliver, data)
        except (serial.SerialException, OSError) as exc:
            self._loop.call_soon_threadsafe(self._connection_lost, exc)
            return
        except RuntimeError:  # the loop was closed under us: nobody is listening any more
            return
        for thread in self._threads[1:]:
            thread.join()
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._finish_close, None)

    def _thread_writer(self) -> None:
        while (data := self._write_queue.get()) is not None:
            try:
                self._port.write(data)
            except (serial.SerialException, OSError) as exc:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._connection_lost, exc)
                return
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._written, len(data))

    def _deliver(self, data: bytes) -> None:
        if not self._lost:
            self._protocol.data_received(data)

    def _written(self, count: int) -> None:
        self._pending_thread_bytes -= count
        self._check_low_water()

    # -- shared -------------------------------------------------------------------------------

    def _check_high_water(self) -> None:
        if not self._paused and self.get_write_buffer_size() > HIGH_WATER:
            self._paused = True
            self._protocol.pause_writing()

    def _check_low_water(self) -> None:
        if self._paused and self.get_write_buffer_size() <= LOW_WATER:
            self._paused = False
            self._protocol.resume_writing()

    def _connection_lost(self, exc: BaseException) -> None:
        if self._lost:
            return
        self._closing = True
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        else:
            self._write_queue.put(None)
        error = ConnectionResetError(f"serial port {self._url}: {exc}")
        self._info["serial_error"] = str(exc)
        self._finish_close(error)

    def _finish_close(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        with contextlib.suppress(Exception):
            self._port.close()
        self._protocol.connection_lost(exc)


async def open_serial_connection(
    url: str, baud: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a serial port as a StreamReader/StreamWriter pair (raises DeviceError)."""
    loop = asyncio.get_running_loop()
    port = open_serial_port(url, baud)
    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = SerialTransport(loop, protocol, port, url)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    await asyncio.sleep(0)  # let connection_made run before anyone writes
    return reader, writer


async def open_serial_channel(
    url: str,
    baud: int,
    framing: Framing,
    *,
    trace: TraceCallback | None = None,
    on_notice: NoticeCallback | None = None,
) -> FramedChannel:
    """A lane :class:`~drivers.base.Channel` on a serial port (``peer`` is ``serial:<url>``)."""
    reader, writer = await open_serial_connection(url, baud)
    return FramedChannel(
        reader,
        writer,
        framing,
        peer=f"serial:{url}",
        transport="serial",
        trace=trace,
        on_notice=on_notice,
    )
