"""A sync run in its own process, for the kill-mid-stream test: ``DB ADDRESS PAGE_SIZE``."""

from __future__ import annotations

import asyncio
import sys

import grpc

from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.sync import CustomerSelection, SyncClient


async def main(db_path: str, address: str, page_size: int) -> None:
    client = SyncClient(
        EdgeCache(EdgeDatabase(db_path)),
        store="S001",
        selection=CustomerSelection(all_customers=True),
        page_size=page_size,
        page_timeout_s=120,
    )
    async with grpc.aio.insecure_channel(address) as channel:
        await client.sync_once(channel)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
