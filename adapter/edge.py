"""The edge as the daemon runs it: offline processor, periodic sync and the upload worker.

The offline room provides the parts; this module only builds them from the configuration and
runs their loops next to the lanes. Sync starts at once on start-up, then every
``[sync] interval_s``; the uploader wakes whenever something is journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc.aio
import structlog

from adapter.config import Config
from adapter.upstream import open_channel
from offline.breaker import CircuitBreaker
from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.outbox import claim_store
from offline.policy import OfflinePolicy
from offline.processor import OfflineProcessor
from offline.status import clear_runtime_state, write_runtime_state
from offline.sync import (
    META_LAST_SYNC_AT,
    CustomerSelection,
    SyncClient,
    SyncResult,
    run_sync_loop,
)
from offline.uploader import Uploader
from tillgate.errors import ConfigError

log = structlog.get_logger("tillgate.edge")

STATE_INTERVAL_S = 0.2
HOUSEKEEPING_INTERVAL_S = 24 * 3600.0
HEARTBEAT_S = 2.0


def policy_of(config: Config) -> OfflinePolicy:
    return OfflinePolicy(
        redeem=config.offline.redeem,
        redeem_cap=config.offline.redeem_cap,
        max_queued=config.offline.max_queued,
        max_age_hours=config.offline.max_age_hours,
    )


def selection_of(config: Config) -> CustomerSelection:
    return CustomerSelection(
        all_customers=config.sync.customers == "all", seen_days=config.sync.seen_days
    )


@dataclass
class EdgeRuntime:
    """The edge's objects and background tasks inside one daemon."""

    db: EdgeDatabase
    processor: OfflineProcessor
    sync: SyncClient
    uploader: Uploader
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    #: outbox and cache figures refreshed by the state task; the metrics thread reads only
    #: these numbers, never the database (an SQLite connection belongs to the loop's thread)
    figures: dict[str, float] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, config: Config) -> EdgeRuntime:
        db = EdgeDatabase(config.cache.db)
        try:
            claim_store(db, config.store)
        except ConfigError:
            db.close()
            raise
        uploader_box: list[Uploader] = []
        processor = OfflineProcessor(
            db,
            store=config.store,
            timezone=config.timezone,
            policy=policy_of(config),
            on_journal=lambda: uploader_box[0].wake() if uploader_box else None,
        )
        uploader = Uploader(processor.outbox)
        uploader_box.append(uploader)
        sync = SyncClient(processor.cache, store=config.store, selection=selection_of(config))
        return cls(db=db, processor=processor, sync=sync, uploader=uploader)

    def start(
        self,
        channel: grpc.aio.Channel,
        *,
        interval_s: float,
        mode: Callable[[], str],
        breaker: CircuitBreaker,
        on_synced: Callable[[SyncResult], None] | None = None,
    ) -> None:
        self.tasks.append(
            asyncio.create_task(
                run_sync_loop(
                    self.sync,
                    channel,
                    interval_s=interval_s,
                    stop=self.stop_event,
                    on_synced=on_synced,
                ),
                name="edge sync",
            )
        )
        self.tasks.append(
            asyncio.create_task(self.uploader.run(channel, self.stop_event), name="upload")
        )
        self.tasks.append(
            asyncio.create_task(self._publish_state(mode, breaker), name="edge state")
        )
        self.tasks.append(asyncio.create_task(self._housekeeping(), name="edge housekeeping"))

    async def _housekeeping(self) -> None:
        """Once at start and then daily: forget receipts no register can act on any more."""
        while not self.stop_event.is_set():
            forgotten = self.processor.purge()
            if forgotten:
                log.info("edge_purged", receipts=forgotten)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), HOUSEKEEPING_INTERVAL_S)

    async def _publish_state(self, mode: Callable[[], str], breaker: CircuitBreaker) -> None:
        """Keep mode and breaker in the edge database, for ``tillgate status`` from outside."""
        last: tuple[str, str] | None = None
        written_at = 0.0
        while not self.stop_event.is_set():
            outbox = self.processor.outbox
            self.figures.update(
                outbox_depth=float(outbox.depth()),
                outbox_oldest_age_s=float(outbox.oldest_age_s() or 0.0),
                cache_version=float(self.processor.cache.version() or 0),
                cache_age_s=self.cache_age_s(),
            )
            current = (mode(), breaker.state.value)
            # Written on every change and as a heartbeat, so status can tell a stopped daemon.
            if current != last or time.monotonic() - written_at >= HEARTBEAT_S:
                write_runtime_state(
                    self.db, "online" if current[0] == "online" else "offline", breaker.state.value
                )
                last, written_at = current, time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), STATE_INTERVAL_S)

    async def stop(self) -> None:
        self.stop_event.set()
        clear_runtime_state(self.db)
        # Cancelling is safe: every database write is one synchronous transaction, so a task
        # can only be cancelled between transactions, never inside one.
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.db.close()

    def cache_age_s(self) -> float:
        """Seconds since the last complete sync; infinite before the first, so that an alert on
        a stale cache fires for a store that never synced (0 would pass for a fresh cache)."""
        last = self.db.get_meta(META_LAST_SYNC_AT)
        return max(0.0, time.time() - float(last)) if last else math.inf


async def sync_now(config: Config) -> str:
    """``tillgate sync``: one complete pull into the configured cache from central."""
    if config.central.embedded:
        from central.server import start_server  # noqa: PLC0415 - embedded mode only

        server = await asyncio.to_thread(
            start_server, config.central.db, "127.0.0.1:0", demo=config.central.demo
        )
        target = str(server.address)
    else:
        server = None
        target = config.central.target
    db = EdgeDatabase(config.cache.db)
    try:
        claim_store(db, config.store)
    except ConfigError:
        db.close()
        if server is not None:
            await asyncio.to_thread(server.stop, 1.0)
        raise
    channel = open_channel(target, config.central)
    try:
        client = SyncClient(
            EdgeCache(db),
            store=config.store,
            selection=selection_of(config),
        )
        result: SyncResult = await client.sync_once(channel)
    finally:
        await channel.close()
        db.close()
        if server is not None:
            await asyncio.to_thread(server.stop, 1.0)
    kind = "full snapshot" if result.snapshot else "delta"
    return (
        f"synced {result.documents} document(s) in {result.pages} page(s) ({kind}) "
        f"to version {result.version} in {result.duration_s:.2f} s"
    )
