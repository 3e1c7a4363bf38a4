"""The edge against the real central server: offline sales reach central exactly once through
a flapping network, and a delta sync that dies mid-stream resumes from its checkpoint."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from central.admin import customer_view, receipts_view
from central.importer import import_file
from central.server import CentralServer, start_server
from loyalty import CustomerRef
from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.policy import OfflinePolicy
from offline.processor import OfflineProcessor
from offline.sync import CustomerSelection, SyncBusyError, SyncClient, SyncResult
from offline.uploader import Uploader
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.faultproxy import FaultProxy
from tests.offline.data import catalog_item, customer
from tests.offline.edge import (
    ANNA,
    DEFAULT_DOCS,
    STORE,
    calculate_request,
    confirm_request,
    context,
)

ROOT = Path(__file__).resolve().parents[2]


def _import(server: CentralServer, folder: Path, name: str, docs: list[dict[str, Any]]) -> None:
    path = folder / name
    path.write_text("\n".join(json.dumps(doc, ensure_ascii=False) for doc in docs) + "\n")
    import_file(server.repository, path, datetime.now(UTC))


def serve_with(folder: Path, docs: list[tuple[str, dict[str, Any]]]) -> CentralServer:
    """A central server on loopback over a database in ``folder`` loaded with ``docs``."""
    folder.mkdir(exist_ok=True)
    server = start_server(folder / "central.db", "127.0.0.1:0")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, body in docs:
        by_kind.setdefault(kind, []).append(body)
    for kind, bodies in by_kind.items():
        _import(server, folder, f"{kind}.jsonl", bodies)
    return server


@pytest.fixture
def central(tmp_path: Path) -> Iterator[CentralServer]:
    server = serve_with(tmp_path, DEFAULT_DOCS)
    yield server
    server.stop(1)


def sync_cache(cache: EdgeCache, address: str, *, page_size: int = 500) -> SyncResult:
    async def main() -> SyncResult:
        client = SyncClient(
            cache, store=STORE, selection=CustomerSelection(all_customers=True), page_size=page_size
        )
        async with grpc.aio.insecure_channel(address) as channel:
            return await client.sync_once(channel)

    return asyncio.run(main())


def synced_edge(
    central: CentralServer, tmp_path: Path
) -> tuple[EdgeDatabase, EdgeCache, OfflineProcessor]:
    """A store's edge database synced from ``central``, and its offline processor."""
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    sync_cache(cache, central.address)
    return db, cache, OfflineProcessor(db, store=STORE, policy=OfflinePolicy())


def test_offline_sales_reach_central_exactly_once(central: CentralServer, tmp_path: Path) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    sync_cache(cache, central.address)
    edge = OfflineProcessor(
        db, store=STORE, policy=OfflinePolicy(redeem="limited", redeem_cap=3000)
    )

    accrued = redeemed = 0
    confirmed: list[str] = []
    for n in range(40):
        receipt_id = f"OFF-{n:03d}"
        calc = edge.calculate(
            calculate_request(receipt_id, points_to_redeem=2000 if n % 3 == 0 else 0)
        ).calculation
        if n % 10 == 9:
            assert not edge.cancel(
                pb.CancelRequest(context=context(), receipt_id=receipt_id)
            ).HasField("error")
            continue
        reply = edge.confirm(confirm_request(receipt_id, calc.due))
        assert not reply.HasField("error"), reply.error
        accrued += reply.points.accrued
        redeemed += reply.points.redeemed
        confirmed.append(receipt_id)
    refund = edge.refund(pb.RefundRequest(context=context(), refund_id="F1", receipt_id="OFF-001"))
    assert refund.mode == "offline"
    assert redeemed > 0
    total_entries = edge.outbox.depth()

    rng = random.Random(5)

    async def upload() -> int:
        async with FaultProxy(central.port) as proxy:
            uploader = Uploader(
                edge.outbox,
                batch_size=7,
                call_timeout_s=1,
                backoff_initial_s=0.01,
                backoff_max_s=0.1,
            )

            async def flap() -> None:
                while True:
                    await asyncio.sleep(rng.uniform(0.01, 0.04))
                    proxy.set_mode(rng.choice(["reset", "stall", "drop"]))
                    await asyncio.sleep(rng.uniform(0.005, 0.03))
                    proxy.set_mode("pass")

            flapper = asyncio.create_task(flap())
            try:
                async with grpc.aio.insecure_channel(proxy.address) as channel:
                    return await uploader.drain(channel)
            finally:
                flapper.cancel()
                await asyncio.gather(flapper, return_exceptions=True)

    assert asyncio.run(upload()) == total_entries
    assert edge.outbox.depth() == 0
    rejected = db.query("SELECT receipt_id, ack_message FROM outbox WHERE status = 'rejected'")
    assert [dict(row) for row in rejected] == []

    receipts = {r["receipt_id"]: r for r in receipts_view(central.repository)}
    for receipt_id in confirmed:
        assert receipts[receipt_id]["state"] == "confirmed"
        assert receipts[receipt_id]["mode"] == "offline"
    assert receipts["OFF-009"]["state"] == "cancelled"
    view = customer_view(central.repository, "C1")
    by_receipt: dict[str, list[tuple[str, int]]] = {}
    for row in view["ledger"]:
        by_receipt.setdefault(row["receipt_id"], []).append((row["kind"], row["points"]))
    # every confirm moved the balance once, however often its entry was sent
    for receipt_id in confirmed:
        kinds = [kind for kind, _ in by_receipt[receipt_id]]
        assert kinds.count("accrual") == 1, (receipt_id, by_receipt[receipt_id])
    expected = (
        ANNA["balance"] + accrued - redeemed - refund.points.reversed + refund.points.restored
    )
    assert view["balance"] == expected

    # after the next sync the edge holds central's balance, and forgets what it redeemed
    sync_cache(cache, central.address)
    anna = cache.customer_by_id("C1")
    assert anna is not None
    assert anna.balance == expected
    assert db.query("SELECT count(*) AS n FROM offline_redemptions")[0]["n"] == 0
    assert cache.content_hash() == central.content_hash()


def test_delta_sync_crashed_mid_stream_resumes_from_its_checkpoint(
    central: CentralServer, tmp_path: Path
) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    sync_cache(cache, central.address)
    first = cache.version()
    assert first is not None
    _import(central, tmp_path, "more.jsonl", [catalog_item(i) for i in range(100, 1100)])

    class CrashError(Exception):
        """The process dies between two pages."""

    class CrashingClient(SyncClient):
        applied = 0

        def apply_page(self, page: pb.SyncPage) -> None:
            super().apply_page(page)
            self.applied += 1
            if self.applied == 6:
                raise CrashError

    async def crash() -> None:
        client = CrashingClient(
            cache, store=STORE, selection=CustomerSelection(all_customers=True), page_size=20
        )
        async with grpc.aio.insecure_channel(central.address) as channel:
            with pytest.raises(CrashError):
                await client.sync_once(channel)

    asyncio.run(crash())
    checkpoint = cache.version()
    assert checkpoint is not None
    assert checkpoint == first + 6 * 20, "six pages of twenty were applied, with their checkpoint"
    assert cache.content_hash() != central.content_hash()
    resumed = sync_cache(cache, central.address)
    assert not resumed.snapshot
    assert resumed.documents == first + 1000 - checkpoint, "only what was not applied yet"
    assert cache.version() == first + 1000
    assert cache.content_hash() == central.content_hash()


def test_seen_selection_brings_customers_identified_at_the_store(
    central: CentralServer, tmp_path: Path
) -> None:
    _import(central, tmp_path, "more-customers.jsonl", [customer(i) for i in range(2, 6)])
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    edge = OfflineProcessor(db, store=STORE)

    def sync() -> SyncResult:
        async def main() -> SyncResult:
            client = SyncClient(cache, store=STORE, selection=CustomerSelection(seen_days=30))
            async with grpc.aio.insecure_channel(central.address) as channel:
                return await client.sync_once(channel)

        return asyncio.run(main())

    sync()
    assert cache.count("customer") == 0, "nobody was seen in this store yet"
    with grpc.insecure_channel(central.address) as channel:
        reply = pb_grpc.ProcessingStub(channel).Identify(
            pb.IdentifyRequest(
                context=context("id-1"), customer=pb.CustomerRef(card=customer(3)["cards"][0])
            ),
            timeout=10,
        )
    assert reply.customer.id == "C3"
    edge.record_online_identify(reply)
    result = sync()
    assert not result.snapshot
    assert cache.customer_by_id("C3") is not None
    assert cache.count("customer") == 1
    assert list(SyncClient(cache, store=STORE).pull_request().customer_ids) == ["C3"]


class _AcksDuringSync(SyncClient):
    """A sync during which the uploader records central's acknowledgements: the daemon runs
    both as tasks of one event loop, so the acks may land while pages stream in."""

    def __init__(self, cache: EdgeCache, record: Any) -> None:
        super().__init__(cache, store=STORE, selection=CustomerSelection(all_customers=True))
        self.record = record

    def apply_page(self, page: pb.SyncPage) -> None:
        if self.record is not None:
            self.record()
            self.record = None
        super().apply_page(page)


@pytest.mark.parametrize("beyond", [0, 1000])
def test_an_offline_sale_acknowledged_during_a_sync_is_counted_once(
    central: CentralServer, tmp_path: Path, beyond: int
) -> None:
    db, cache, edge = synced_edge(central, tmp_path)
    calc = edge.calculate(calculate_request("RACE-1")).calculation
    assert not edge.confirm(confirm_request("RACE-1", calc.due)).HasField("error")
    purchases_before = customer_view(central.repository, "C1")["purchases"]
    central_id, entries = edge.outbox.pending_batch(100)
    stub = pb_grpc.ProcessingStub(grpc.insecure_channel(central.address))
    reply = stub.Upload(pb.UploadRequest(store=STORE, entries=entries, central=central_id))
    assert [ack.status for ack in reply.acks] == ["applied", "applied"]
    assert reply.version > 0
    assert customer_view(central.repository, "C1")["purchases"] == purchases_before + 1

    def record() -> None:
        edge.outbox.record_acks(entries, reply.acks, version=reply.version + beyond)

    async def main() -> None:
        async with grpc.aio.insecure_channel(central.address) as channel:
            await _AcksDuringSync(cache, record).sync_once(channel)

    asyncio.run(main())
    rows = db.query("SELECT count(*) AS n FROM offline_purchases")[0]["n"]
    synced = cache.customer_by_id("C1")
    assert synced is not None
    if beyond == 0:  # the sync reached the version: its document holds the sale; row forgotten
        assert (synced.purchases, rows) == (purchases_before + 1, 0)
    else:  # a version the sync did not reach: the row is kept until a sync that does
        assert rows == 1


def test_what_an_online_confirm_spent_counts_offline_before_the_next_sync(
    central: CentralServer, tmp_path: Path
) -> None:
    db, cache, edge = synced_edge(central, tmp_path)
    stub = pb_grpc.ProcessingStub(grpc.insecure_channel(central.address))
    request = calculate_request("ON-1", coupons=("SPRING-0001",))
    online = stub.Calculate(request)
    assert "spring" in [p.id for p in online.calculation.promotions]
    edge.record_online_calculation(request, online)  # as the daemon mirrors online answers
    confirm = confirm_request("ON-1", online.calculation.due)
    confirm.context.request_id = "q2"  # central keeps answers by request id
    confirmed = stub.Confirm(confirm)
    assert not confirmed.HasField("error"), confirmed.error
    edge.record_online_confirm(confirm, confirmed)

    # central goes away before the next sync: the coupon is spent offline too
    again = edge.calculate(calculate_request("OFF-1", coupons=("SPRING-0001",))).calculation
    assert "spring" not in [p.id for p in again.promotions]
    assert "Купон SPRING-0001 уже использован" in [m.text for m in again.messages]
    later = calculate_request("ON-2", coupons=("SPRING-0001",))
    later.context.request_id = "q3"
    assert stub.Calculate(later).calculation.promotions == again.promotions
    kept = db.query("SELECT count(*) AS n FROM offline_purchases WHERE acked_at IS NOT NULL")
    assert kept[0]["n"] == 1
    sync_cache(cache, central.address)  # the synced document now holds the purchase
    assert db.query("SELECT count(*) AS n FROM offline_purchases")[0]["n"] == 0


def test_a_customer_who_left_the_seen_selection_is_dropped_from_the_cache(
    central: CentralServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import(central, tmp_path, "more-customers.jsonl", [customer(i) for i in range(2, 6)])
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    t0 = datetime.now(UTC).timestamp()
    now = [t0]
    edge = OfflineProcessor(db, store=STORE, clock=lambda: now[0])
    client = SyncClient(
        cache, store=STORE, selection=CustomerSelection(seen_days=1), clock=lambda: now[0]
    )

    def at(days: float) -> None:
        now[0] = t0 + days * 86_400
        monkeypatch.setenv("TILLGATE_CENTRAL_NOW", datetime.fromtimestamp(now[0], UTC).isoformat())

    def identify(i: int) -> None:
        with grpc.insecure_channel(central.address) as channel:
            reply = pb_grpc.ProcessingStub(channel).Identify(
                pb.IdentifyRequest(
                    context=context(f"id-{i}"),
                    customer=pb.CustomerRef(card=customer(i)["cards"][0]),
                ),
                timeout=10,
            )
        edge.record_online_identify(reply)

    def sync() -> SyncResult:
        async def main() -> SyncResult:
            async with grpc.aio.insecure_channel(central.address) as channel:
                return await client.sync_once(channel)

        return asyncio.run(main())

    at(0)
    identify(3)
    sync()
    at(0.9)
    identify(4)
    sync()
    assert cache.customer_by_id("C3") is not None
    assert cache.customer_by_id("C4") is not None

    at(1.05)  # C3 was last seen more than a day ago, C4 not
    result = sync()
    assert not result.snapshot, "a delta names who left"
    assert cache.customer_by_id("C3") is None
    assert db.query("SELECT count(*) AS n FROM customer_keys WHERE customer_id = 'C3'")[0]["n"] == 0
    assert cache.customer_by_id("C4") is not None

    at(2.2)  # no sync for more than a day: a snapshot, C4 left meanwhile
    result = sync()
    assert result.snapshot
    assert cache.count("customer") == 0


def test_a_customer_with_an_offline_confirm_waiting_is_not_dropped_by_the_seen_selection(
    central: CentralServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import(central, tmp_path, "more-customers.jsonl", [customer(3)])
    card = customer(3)["cards"][0]
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    t0 = datetime.now(UTC).timestamp()
    now = [t0]
    edge = OfflineProcessor(
        db, store=STORE, policy=OfflinePolicy(redeem="limited"), clock=lambda: now[0]
    )
    client = SyncClient(
        cache, store=STORE, selection=CustomerSelection(seen_days=1), clock=lambda: now[0]
    )

    def at(days: float) -> None:
        now[0] = t0 + days * 86_400
        monkeypatch.setenv("TILLGATE_CENTRAL_NOW", datetime.fromtimestamp(now[0], UTC).isoformat())

    def sync() -> SyncResult:
        async def main() -> SyncResult:
            async with grpc.aio.insecure_channel(central.address) as channel:
                return await client.sync_once(channel)

        return asyncio.run(main())

    at(0)
    with grpc.insecure_channel(central.address) as channel:
        reply = pb_grpc.ProcessingStub(channel).Identify(
            pb.IdentifyRequest(context=context("id-3"), customer=pb.CustomerRef(card=card)),
            timeout=10,
        )
    edge.record_online_identify(reply)
    sync()
    at(0.9)
    sync()
    at(1.05)  # central unreachable: a sale redeeming points, confirmed offline
    calc = edge.calculate(calculate_request("OFF1", card=card, points_to_redeem=1000))
    assert calc.calculation.points.redeem == 1000
    assert not edge.confirm(confirm_request("OFF1", calc.calculation.due)).HasField("error")
    ref = CustomerRef("card", card)
    assert edge.holds_unsent(ref, [])

    at(1.06)  # central is back; this sync runs before the uploader delivered OFF1
    result = sync()
    assert not result.snapshot
    assert cache.customer_by_id("C3") is not None
    assert edge.holds_unsent(ref, []), "the next calculate stays here until central has OFF1"

    assert _drain(edge.outbox, central.address) == 2  # OFF1's calculate and confirm
    assert not edge.holds_unsent(ref, [])
    sync()
    accrued = calc.calculation.points.accrue
    # OFF1 applied once: its redemption, its accrual, the purchase counted once
    assert customer_view(central.repository, "C3")["balance"] == 340_000 - 1000 + accrued
    cached = cache.customer_by_id("C3")
    assert cached is not None
    assert cached.balance == 340_000 - 1000 + accrued
    assert cached.purchases == customer(3)["purchases"] + 1


def test_a_second_sync_waits_for_the_running_one_or_names_its_pid(
    central: CentralServer, tmp_path: Path
) -> None:
    _import(central, tmp_path, "items.jsonl", [catalog_item(i) for i in range(50)])
    db_path = tmp_path / "cache.db"
    hold = tmp_path / "hold"
    hold.mkdir()
    cache = EdgeCache(EdgeDatabase(db_path))

    def pull(lock_wait_s: float) -> SyncResult:
        async def main() -> SyncResult:
            client = SyncClient(
                cache,
                store=STORE,
                selection=CustomerSelection(all_customers=True),
                page_size=10,
                lock_wait_s=lock_wait_s,
            )
            async with grpc.aio.insecure_channel(central.address) as channel:
                return await client.sync_once(channel)

        return asyncio.run(main())

    # `tillgate sync` in another process, paused in the middle of its snapshot
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.offline.sync_hold_child", str(db_path), central.address,
         str(hold)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (hold / "paused").exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never applied its first page"
            time.sleep(0.02)
        with pytest.raises(SyncBusyError, match=rf"another sync is running \(pid {child.pid}\)"):
            pull(0.2)
        (hold / "go").touch()
        result = pull(30)  # waits for the child's snapshot, then pulls what is left
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert not result.snapshot
    assert cache.content_hash() == central.content_hash()


def _drain(outbox: Any, address: str) -> int:
    async def main() -> int:
        async with grpc.aio.insecure_channel(address) as channel:
            return await Uploader(outbox, backoff_initial_s=0.01).drain(channel)

    return int(asyncio.run(main()))


def test_another_entry_under_a_key_central_applied_is_refused_and_kept(
    central: CentralServer, tmp_path: Path
) -> None:
    _, _, edge = synced_edge(central, tmp_path)
    edge.calculate(calculate_request("R-KEY"))
    _, first = edge.outbox.pending_batch(10)
    _drain(edge.outbox, central.address)
    assert edge.outbox.depth() == 0

    # the store's edge database is made anew (a disk replaced): its seqs start again at 1
    (tmp_path / "new").mkdir()
    db = EdgeDatabase(tmp_path / "new" / "cache.db")
    sync_cache(EdgeCache(db), central.address)
    fresh = OfflineProcessor(db, store=STORE, policy=OfflinePolicy())
    other = calculate_request("R-KEY")
    del other.receipt.lines[1]
    fresh.calculate(other)
    _, second = fresh.outbox.pending_batch(10)
    assert (second[0].receipt_id, second[0].seq) == (first[0].receipt_id, first[0].seq)
    assert second[0] != first[0]

    assert _drain(fresh.outbox, central.address) == 1
    [kept] = fresh.outbox.rejected()
    assert (kept.seq, kept.receipt_id, kept.operation) == (first[0].seq, "R-KEY", "calculate")
    assert "was applied on" in kept.message
    assert "as another entry (calculate made" in kept.message
    assert "settle the receipt by hand" in kept.message
    [receipt] = [r for r in receipts_view(central.repository) if r["receipt_id"] == "R-KEY"]
    assert receipt["due"] == first[0].calculate.given.due != second[0].calculate.given.due

    # the very entry applied before, sent again: a duplicate, as ever
    stub = pb_grpc.ProcessingStub(grpc.insecure_channel(central.address))
    reply = stub.Upload(pb.UploadRequest(store=STORE, entries=first))
    assert [ack.status for ack in reply.acks] == ["duplicate"]
