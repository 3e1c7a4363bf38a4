"""A snapshot sync in its own process that pauses after its first page, for the sync lock
test: ``DB ADDRESS HOLD_DIR``. It creates ``HOLD_DIR/paused`` once the first page is applied,
then waits up to 3 s for ``HOLD_DIR/go`` before applying the rest."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import grpc

from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.sync import CustomerSelection, SyncClient
from protos import tillgate_pb2 as pb


class _Pausing(SyncClient):
    def __init__(self, cache: EdgeCache, hold: Path) -> None:
        super().__init__(
            cache, store="S001", selection=CustomerSelection(all_customers=True), page_size=10
        )
        self.hold = hold
        self.pages = 0

    def apply_page(self, page: pb.SyncPage) -> None:
        super().apply_page(page)
        self.pages += 1
        if self.pages == 1:
            (self.hold / "paused").touch()
            deadline = time.monotonic() + 3
            while not (self.hold / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)


async def main(db_path: str, address: str, hold: str) -> None:
    client = _Pausing(EdgeCache(EdgeDatabase(db_path)), Path(hold))
    async with grpc.aio.insecure_channel(address) as channel:
        result = await client.sync_once(channel)
    assert result.snapshot


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
