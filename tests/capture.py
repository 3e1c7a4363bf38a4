"""A TCP "printer" for tests: listens on 127.0.0.1 like a 9100 port and keeps every job's bytes."""

from __future__ import annotations

import asyncio


class CaptureServer:
    """Each connection is one print job; its bytes are kept in :attr:`jobs`."""

    def __init__(self) -> None:
        self.jobs: list[bytes] = []
        self.done = asyncio.Event()

    async def start(self) -> str:
        """Listen; returns the printer URL (``tcp://127.0.0.1:PORT``)."""
        self.server = await asyncio.start_server(self._job, "127.0.0.1", 0)
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _job(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.jobs.append(await reader.read())
        writer.close()
        self.done.set()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()
