"""Byte sinks for output devices: a printer on TCP port 9100, or a serial printer/display.

Only moves bytes. ``tcp://host[:port]`` (port 9100 by default) opens a TCP connection; anything
else is a serial device path or pyserial URL (``/dev/ttyUSB1``, ``socket://...``) opened at
8N1 with the given baud rate. Each job opens the device, writes and closes it again: a 9100
printer serves one connection at a time, and a job must not keep it from the next one.
Errors become :class:`~tillgate.errors.DeviceError` naming the device URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from drivers.serial import open_serial_connection
from tillgate.errors import DeviceError, DeviceRefusedError

__all__ = ["DEFAULT_PRINTER_PORT", "parse_tcp_url", "send_to_device"]

DEFAULT_PRINTER_PORT = 9100


def parse_tcp_url(url: str) -> tuple[str, int] | None:
    """``tcp://host[:port]`` → (host, port); None for anything that is not a TCP URL."""
    if not url.startswith("tcp://"):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PRINTER_PORT
    except ValueError as exc:
        raise DeviceError(f"device {url}: bad port: {exc}") from exc
    if not parts.hostname:
        raise DeviceError(f"device {url}: no host in the URL")
    return parts.hostname, port


async def send_to_device(url: str, data: bytes, *, baud: int = 9600, timeout: float = 10.0) -> None:
    """Open ``url``, write ``data``, wait until it is handed to the OS and close; all within
    ``timeout`` seconds, else the connection is dropped with what it still held."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            address = parse_tcp_url(url)
            if address is not None:
                _, writer = await asyncio.open_connection(*address)
            else:
                _, writer = await open_serial_connection(url, baud)
            writer.write(data)
            await writer.drain()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except TimeoutError as exc:
        raise DeviceError(f"device {url}: no progress within {timeout:g} s") from exc
    except ConnectionRefusedError as exc:
        # asyncio words it "Connect call failed ('10.0.0.5', 9100)", which does not say what
        # happened; a field engineer looks for "refused" and the address that refused.
        refused = parse_tcp_url(url)
        where = f" by {refused[0]}:{refused[1]}" if refused else ""
        raise DeviceRefusedError(f"device {url}: connection refused{where}") from exc
    except OSError as exc:
        raise DeviceError(f"device {url}: {exc.strerror or exc}") from exc
    finally:
        if writer is not None:
            # A printer that stopped reading leaves bytes in the buffer, and a graceful close
            # waits for them for ever: the lane's next job would wait behind it. (After a
            # clean close this does nothing.)
            writer.transport.abort()
