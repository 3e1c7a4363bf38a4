"""Delta sync of the edge cache from central's ``Sync.Pull`` feed.

Theory of operation: :meth:`SyncClient.sync_once` asks for everything since the stored
checkpoint and reads the answer as a stream of pages. :meth:`SyncClient.apply_page` is the
whole state machine and does no network I/O:

- a delta page (``snapshot`` false) is applied together with its checkpoint in ONE SQLite
  transaction, so a process killed mid-stream resumes from the last applied page;
- snapshot pages (first sync, or a checkpoint older than central's history) go into shadow
  tables; the first one of a stream empties the shadow, the ``last`` one swaps the shadow in
  and sets the checkpoint in one transaction. A kill mid-snapshot leaves the live cache as it
  was and the checkpoint unchanged, so the next sync starts the snapshot again.

After a complete sync it records the sync time and duration, forgets the offline redemptions
and purchases whose acknowledgement named a central version the checkpoint has reached (the
synced documents hold them; for a central that names none: acknowledged before the pull
began) and customers last identified longer ago than the selection keeps.

With ``customers = "seen"`` a delta's tombstones also delete the customers who left the
selection (central names those of the last two days), so a customer never lingers as a stale
copy; an edge that last synced more than a day ago takes a snapshot instead.

A customer with an offline confirm not yet acknowledged by central must stay in the cache:
the router asks the cache whether such a confirm waits (``holds_unsent``) to keep that
customer's next sale offline until central has it. So every pull lists those customers in
``customer_ids`` (central keeps them in the selection), and a delta tombstone for one of
them is held back (meta ``sync.held_tombstones``) and applied by the first complete sync
after their journal entries are acknowledged, unless a later page brought them back.

A whole pull holds an exclusive lock on ``<database>.sync.lock`` (``flock``, the holder's pid
inside): the daemon's loop and ``tillgate sync`` load the same shadow tables, so a second pull
waits for the first (``lock_wait_s``), then gives up with :class:`SyncBusyError` naming its pid.
``tillgate forget-central`` takes the same lock to clear the checkpoint (:mod:`offline.db`).

Every page names the central database it comes from. The edge binds itself to the first one
it syncs from: pointed at another central (another chain, a staging server), it takes that
one's full snapshot when nothing waits in its journal, and refuses to sync while entries made
against the old one wait (they can only be uploaded there, and the two caches must not mix).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import structlog

from offline.cache import (
    META_CATALOG_GENERATION,
    META_CENTRAL,
    META_PROMOTIONS_GENERATION,
    META_SYNC_VERSION,
    EdgeCache,
)
from offline.db import SyncBusyError, SyncLock
from offline.outbox import META_OUTBOX_PENDING, REJECTED_CONFIRMS
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tillgate.errors import ConfigError, RemoteProtocolError, StorageError, UpstreamUnavailable

__all__ = [
    "META_HELD_TOMBSTONES",
    "META_LAST_SYNC_AT",
    "META_LAST_SYNC_DURATION_S",
    "CentralChanged",
    "CustomerSelection",
    "SyncBusyError",
    "SyncClient",
    "SyncResult",
    "run_sync_loop",
    "sync_once",
]

log = structlog.get_logger("tillgate.offline.sync")

#: meta key: unix time the last complete sync finished
META_LAST_SYNC_AT = "last_sync_at"
#: meta key: seconds the last complete sync took
META_LAST_SYNC_DURATION_S = "last_sync_duration_s"

#: meta key: JSON list of customer ids whose tombstone waits for their unsent confirms
META_HELD_TOMBSTONES = "sync.held_tombstones"

_DAY_S = 86_400.0
#: With ``customers = "seen"``, a delta names the customers who left the selection only as far
#: back as central's ``syncfeed.DEPARTED_WINDOW`` (2 days): an edge whose last sync is older
#: than this (a day of margin for the two clocks) takes a snapshot instead, or it would keep
#: stale copies of those who left meanwhile.
SEEN_DELTA_MAX_AGE_S = _DAY_S


class CentralChanged(UpstreamUnavailable):
    """The pages come from another central database than the cache was synced from.

    ``resync``: nothing waited in the journal, so the edge now belongs to the new central and
    the pull starts again from scratch; otherwise the sync is refused until the entries made
    against the old central are uploaded there."""

    def __init__(self, message: str, *, resync: bool) -> None:
        super().__init__(message)
        self.resync = resync


@dataclass(frozen=True, slots=True)
class CustomerSelection:
    """Which customers the edge caches (``[offline] customers`` / ``seen_days``).

    ``all_customers`` true: every customer. Otherwise the customers central saw in this store
    within ``seen_days`` days, plus those identified at a till here while online within the
    same period (the edge records them and lists them in each pull)."""

    all_customers: bool = False
    seen_days: int = 30

    def __post_init__(self) -> None:
        if self.seen_days < 1:
            raise ConfigError("must be at least 1", key="offline.seen_days")


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one complete sync did."""

    version: int  #: the checkpoint after it
    pages: int
    documents: int
    snapshot: bool  #: the cache was replaced by a full snapshot
    duration_s: float


class SyncClient:
    """Pulls central's documents into an :class:`EdgeCache`."""

    def __init__(
        self,
        cache: EdgeCache,
        *,
        store: str,
        selection: CustomerSelection | None = None,
        page_size: int = 1000,
        page_timeout_s: float = 30.0,
        lock_wait_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.store = store
        self.selection = selection or CustomerSelection()
        self.page_size = page_size
        self.page_timeout_s = page_timeout_s
        self.lock_wait_s = lock_wait_s
        self.clock = clock
        self._snapshot_started = False
        self._central_checked = False

    # -- the sans-I/O part ---------------------------------------------------------------

    def pull_request(self) -> pb.PullRequest:
        """The request for everything since the stored checkpoint (0 when never synced, or
        for a ``seen`` selection last synced more than :data:`SEEN_DELTA_MAX_AGE_S` ago)."""
        since = self.cache.version() or 0
        if not self.selection.all_customers:
            last = self.cache.db.get_meta(META_LAST_SYNC_AT)
            if last is not None and self.clock() - float(last) > SEEN_DELTA_MAX_AGE_S:
                since = 0
        request = pb.PullRequest(
            store=self.store,
            since=since,
            page_size=self.page_size,
            all_customers=self.selection.all_customers,
            seen_days=self.selection.seen_days,
        )
        if not self.selection.all_customers:
            horizon = self.clock() - self.selection.seen_days * _DAY_S
            rows = self.cache.db.query(
                "SELECT customer_id FROM seen_customers WHERE seen_at >= ? ORDER BY customer_id",
                (horizon,),
            )
            listed = {str(row["customer_id"]) for row in rows} | self._unsent_customers()
            request.customer_ids.extend(sorted(listed))
        return request

    def _unsent_customers(self) -> set[str]:
        """Customers with an offline confirm central has not acknowledged yet."""
        rows = self.cache.db.query(
            "SELECT customer_id FROM offline_purchases WHERE acked_at IS NULL "
            "UNION SELECT customer_id FROM offline_redemptions WHERE acked_at IS NULL"
        )
        return {str(row["customer_id"]) for row in rows}

    def _held_tombstones(self) -> set[str]:
        raw = self.cache.db.get_meta(META_HELD_TOMBSTONES)
        return set(json.loads(raw)) if raw else set()

    def _set_held_tombstones(self, held: set[str]) -> None:
        self.cache.db.set_meta(META_HELD_TOMBSTONES, json.dumps(sorted(held)))

    def _hold_tombstones(self, documents: list[pb.Document]) -> list[pb.Document]:
        """``documents`` less the customer tombstones held back (see module docstring);
        records them, and forgets held ones a live document of the page replaces."""
        latest = {doc.id: doc for doc in documents if doc.kind == "customer"}
        unsent = self._unsent_customers()
        held_now = {cid for cid, doc in latest.items() if doc.deleted and cid in unsent}
        held = self._held_tombstones()
        updated = (held - {cid for cid, doc in latest.items() if not doc.deleted}) | held_now
        if updated != held:
            self._set_held_tombstones(updated)
        if held_now:
            log.info("sync_tombstone_held", customers=sorted(held_now))
        return [doc for doc in documents if not (doc.kind == "customer" and doc.id in held_now)]

    def _release_tombstones(self) -> None:
        """Apply the held tombstones whose customers have nothing unsent any more."""
        held = self._held_tombstones()
        if not held:
            return
        released = held - self._unsent_customers()
        if released:
            self.cache.apply_documents(
                pb.Document(kind="customer", id=cid, deleted=True) for cid in sorted(released)
            )
            self._set_held_tombstones(held - released)

    def begin_stream(self) -> None:
        """Forget the state of an earlier, interrupted stream."""
        self._snapshot_started = False
        self._central_checked = False

    def apply_page(self, page: pb.SyncPage) -> None:
        """Apply one page and (for delta pages and a snapshot's last page) its checkpoint,
        in one transaction. Raises :class:`CentralChanged` before applying anything from a
        central database other than the cache's."""
        if not self._central_checked:
            self._adopt_central(page)
            self._central_checked = True
        with self.cache.db.transaction():
            if page.snapshot:
                if not self._snapshot_started:
                    self.cache.start_shadow()
                    self._snapshot_started = True
                self.cache.apply_documents(page.documents, shadow=True)
                if not page.last:
                    return
                self.cache.swap_shadow()
                self._snapshot_started = False
                # the snapshot holds every customer still in scope (the unsent ones included)
                if self._held_tombstones():
                    self._set_held_tombstones(set())
                changed = {"promotion", "catalog"}  # everything may differ
            else:
                if self._snapshot_started:
                    raise RemoteProtocolError(
                        f"sync page at version {page.version}: a delta page inside a snapshot"
                    )
                changed = self.cache.apply_documents(self._hold_tombstones(list(page.documents)))
            self.cache.db.set_meta(META_SYNC_VERSION, str(page.version))
            if "promotion" in changed:
                self.cache.bump_generation(META_PROMOTIONS_GENERATION)
            if "catalog" in changed:
                self.cache.bump_generation(META_CATALOG_GENERATION)

    def _adopt_central(self, page: pb.SyncPage) -> None:
        db = self.cache.db
        known = db.get_meta(META_CENTRAL)
        if known == (page.central or None):
            return
        if known is None:
            with db.transaction():
                db.set_meta(META_CENTRAL, page.central)
            return
        # A central too old to name its database cannot be told apart from another one.
        reached = page.central or "(one that does not name its database: an older tillgate)"
        waiting = int(db.get_meta(META_OUTBOX_PENDING) or 0)
        log.warning("central_changed", before=known, after=page.central, waiting=waiting)
        if waiting:
            raise CentralChanged(
                f"central {reached} is not central {known}, which this store synced from and "
                f"whose {waiting} journal entries wait: they can only be uploaded there. Point "
                "the daemon back at it until `tillgate status` shows outbox.depth 0 (if that "
                "central's database is gone for good: "
                "`tillgate forget-central --old-central-is-gone`)",
                resync=False,
            )
        with db.transaction() as conn:
            conn.execute(
                "DELETE FROM meta WHERE key IN (?, ?)", (META_SYNC_VERSION, META_CENTRAL)
            )
            if page.central:
                db.set_meta(META_CENTRAL, page.central)
        if not page.snapshot:  # a delta counted in the old central's versions: start over
            raise CentralChanged(
                f"central {reached} replaces central {known}: pulling its snapshot",
                resync=True,
            )

    def finish(self, *, started_at: float, duration_s: float) -> None:
        """Bookkeeping after a complete sync (one transaction)."""
        db = self.cache.db
        with db.transaction() as conn:
            db.set_meta(META_LAST_SYNC_AT, repr(self.clock()))
            db.set_meta(META_LAST_SYNC_DURATION_S, f"{duration_s:.3f}")
            # Central acknowledged them: forgotten once the synced documents hold them, that
            # is once the checkpoint reaches the version central named in its acknowledgement
            # (the time rule, for a central that names none, misses an acknowledgement that
            # arrived while the pull ran, which may or may not hold it: kept until the next);
            # a rejected confirm is held by no document: kept while the entry is rejected
            synced = self.cache.version() or 0
            for table in ("offline_redemptions", "offline_purchases"):
                conn.execute(
                    f"DELETE FROM {table} WHERE acked_at IS NOT NULL AND "  # noqa: S608  # fixed table names
                    "(acked_version <= ? OR (acked_version IS NULL AND acked_at < ?)) "
                    f"AND receipt_id NOT IN ({REJECTED_CONFIRMS})",
                    (synced, started_at),
                )
            self._release_tombstones()
            conn.execute(
                "DELETE FROM seen_customers WHERE seen_at < ?",
                (self.clock() - self.selection.seen_days * _DAY_S,),
            )

    # -- the transport -------------------------------------------------------------------

    async def sync_once(self, channel: grpc.aio.Channel) -> SyncResult:
        """Pull and apply everything since the checkpoint; raises UpstreamUnavailable when
        the stream fails (pages applied so far stay applied), :class:`SyncBusyError` when another
        pull into the same database did not end within ``lock_wait_s``."""
        lock = await self._lock()
        try:
            try:
                return await self._pull(channel)
            except CentralChanged as exc:
                if not exc.resync:
                    raise
                return await self._pull(channel)
        finally:
            lock.release()

    async def _lock(self) -> SyncLock:
        lock = SyncLock(self.cache.db.path)
        deadline = time.monotonic() + self.lock_wait_s
        while not lock.try_acquire():
            if time.monotonic() >= deadline:
                raise lock.busy(self.lock_wait_s)
            await asyncio.sleep(0.05)
        return lock

    async def _pull(self, channel: grpc.aio.Channel) -> SyncResult:
        started_at = self.clock()
        monotonic_start = time.monotonic()
        request = self.pull_request()
        stub = pb_grpc.SyncStub(channel)
        call = stub.Pull(request)
        self.begin_stream()
        pages = documents = 0
        snapshot = False
        try:
            while True:
                page = await asyncio.wait_for(call.read(), self.page_timeout_s)
                if page is grpc.aio.EOF:
                    raise UpstreamUnavailable(
                        f"sync from version {request.since}: the stream ended before its last page"
                    )
                assert isinstance(page, pb.SyncPage)
                self.apply_page(page)
                pages += 1
                documents += len(page.documents)
                snapshot = snapshot or page.snapshot
                if page.last:
                    break
        except CentralChanged:
            call.cancel()
            raise
        except TimeoutError as exc:
            call.cancel()
            raise UpstreamUnavailable(
                f"sync from version {request.since}: no page within {self.page_timeout_s} s"
            ) from exc
        except grpc.aio.AioRpcError as exc:
            raise UpstreamUnavailable(
                f"sync from version {request.since}: {exc.code().name}: {exc.details()}"
            ) from exc
        duration = time.monotonic() - monotonic_start
        self.finish(started_at=started_at, duration_s=duration)
        version = self.cache.version() or 0
        log.info(
            "sync_done",
            since=request.since,
            version=version,
            pages=pages,
            documents=documents,
            snapshot=snapshot,
            duration_s=round(duration, 3),
        )
        return SyncResult(version, pages, documents, snapshot, duration)


async def sync_once(
    channel: grpc.aio.Channel,
    cache: EdgeCache,
    *,
    store: str,
    selection: CustomerSelection | None = None,
    page_size: int = 1000,
) -> SyncResult:
    """One complete sync of ``cache`` over ``channel`` (see :class:`SyncClient`)."""
    client = SyncClient(cache, store=store, selection=selection, page_size=page_size)
    return await client.sync_once(channel)


async def run_sync_loop(
    client: SyncClient,
    channel: grpc.aio.Channel,
    *,
    interval_s: float,
    stop: asyncio.Event,
    retry_s: float = 5.0,
    on_synced: Callable[[SyncResult], None] | None = None,
) -> None:
    """Sync every ``interval_s`` seconds until ``stop`` is set; after a failure, retry
    sooner (``retry_s``). Failures are logged, never raised; ``on_synced`` hears of every
    complete sync (the daemon's metrics)."""
    while not stop.is_set():
        delay = interval_s
        try:
            result = await client.sync_once(channel)
            if on_synced is not None:
                on_synced(result)
            await asyncio.to_thread(client.cache.db.checkpoint)
        except UpstreamUnavailable as exc:
            log.warning("sync_failed", error=str(exc))
            delay = min(retry_s, interval_s)
        except SyncBusyError as exc:
            log.warning("sync_busy", error=str(exc))
            delay = min(retry_s, interval_s)
        except StorageError as exc:
            log.error("sync_storage_failed", error=str(exc))
            delay = min(retry_s, interval_s)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            continue
