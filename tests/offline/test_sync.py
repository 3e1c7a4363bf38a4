"""Delta sync against a real gRPC feed on loopback: pages, checkpoints, resume after a kill,
atomic snapshots, tombstones and the content hash."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from loyalty import CustomerRef
from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.sync import CustomerSelection, SyncClient, SyncResult, run_sync_loop
from protos import tillgate_pb2 as pb
from protos.sync import canonical_json
from tests.offline.data import catalog_item, customer, fill, promotion
from tests.offline.fakecentral import FakeCentral
from tillgate.errors import UpstreamUnavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def central() -> Iterator[FakeCentral]:
    server = FakeCentral()
    yield server
    server.stop()


def _sync(db_path: Path, address: str, *, page_size: int = 10) -> SyncResult:
    async def main() -> SyncResult:
        db = EdgeDatabase(db_path)
        try:
            client = SyncClient(
                EdgeCache(db),
                store="S001",
                selection=CustomerSelection(all_customers=True),
                page_size=page_size,
                page_timeout_s=10,
            )
            async with grpc.aio.insecure_channel(address) as channel:
                return await client.sync_once(channel)
        finally:
            db.close()

    return asyncio.run(main())


def _hash(db_path: Path) -> str:
    db = EdgeDatabase(db_path)
    try:
        return EdgeCache(db).content_hash()
    finally:
        db.close()


def _version(db_path: Path) -> int | None:
    db = EdgeDatabase(db_path, readonly=True)
    try:
        return EdgeCache(db).version()
    finally:
        db.close()


def test_first_sync_is_a_snapshot_and_matches_central(central: FakeCentral, tmp_path: Path) -> None:
    fill(central.sync.put, items=40, customers=15, promotions=12)
    result = _sync(tmp_path / "cache.db", central.address)
    assert result.snapshot
    assert result.version == central.sync.version
    assert result.documents == 67
    assert _hash(tmp_path / "cache.db") == central.sync.content_hash()

    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    found = cache.customer_by_ref(CustomerRef("phone", "+7 (916) 000-00-07"))
    assert found is not None
    assert found.id == "C7"
    token = cache.customer_by_ref(CustomerRef("token", "tok-3"))
    assert token is not None
    assert token.id == "C3"
    assert set(cache.catalog_for(["4600001", "4600002", "nope"])) == {"4600001", "4600002"}
    db.close()


def test_delta_sync_applies_changes_and_tombstones(central: FakeCentral, tmp_path: Path) -> None:
    fill(central.sync.put, items=20, customers=5, promotions=3)
    _sync(tmp_path / "cache.db", central.address)
    central.sync.put("customer", {**customer(1), "cards": ["7799"], "balance": 5})
    central.sync.delete("catalog", catalog_item(3)["sku"])
    central.sync.put("promotion", {**promotion(1), "name": "renamed"})
    central.sync.put("coupon", {"id": "SPRING-0001"})
    result = _sync(tmp_path / "cache.db", central.address)
    assert not result.snapshot
    assert central.sync.requests[-1].since == 28
    assert result.documents == 4
    assert _hash(tmp_path / "cache.db") == central.sync.content_hash()
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    assert cache.customer_by_ref(CustomerRef("card", customer(1)["cards"][0])) is None
    moved = cache.customer_by_ref(CustomerRef("card", "7799"))
    assert moved is not None
    assert moved.balance == 5
    assert cache.spent_coupons(["spring-0001", "SPRING-0002"]) == frozenset({"spring-0001"})
    db.close()


def test_killed_mid_stream_resumes_from_its_checkpoint(
    central: FakeCentral, tmp_path: Path
) -> None:
    db_path = tmp_path / "cache.db"
    fill(central.sync.put, items=10, customers=0, promotions=0)
    _sync(db_path, central.address)
    first_checkpoint = central.sync.version
    fill(central.sync.put, items=200, customers=30, promotions=20)  # 250 changes, 25 pages
    central.sync.control.pause_after_pages = 7
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.offline.sync_child", str(db_path), central.address, "10"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert central.sync.control.paused.wait(60), "the feed never sent page 7"
        # the feed now holds the stream open after page 7: wait until the child committed
        # the 7 pages it has, then kill it while it waits for page 8
        target = first_checkpoint + 70
        deadline = time.monotonic() + 60
        while _version(db_path) != target and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdout.close()
        child.stderr.close()
    central.sync.control.pause_after_pages = None
    central.sync.control.resume.set()

    db = EdgeDatabase(db_path)
    checkpoint = EdgeCache(db).version()
    db.close()
    assert checkpoint is not None
    assert checkpoint == first_checkpoint + 70
    result = _sync(db_path, central.address)
    assert central.sync.requests[-1].since == checkpoint
    assert not result.snapshot
    assert result.documents == central.sync.version - checkpoint
    assert _hash(db_path) == central.sync.content_hash()


def test_cut_stream_raises_and_keeps_applied_pages(central: FakeCentral, tmp_path: Path) -> None:
    db_path = tmp_path / "cache.db"
    fill(central.sync.put, items=5, customers=0, promotions=0)
    _sync(db_path, central.address)
    fill(central.sync.put, items=100, customers=0, promotions=0)
    central.sync.control.abort_after_pages = 3
    with pytest.raises(UpstreamUnavailable, match="UNAVAILABLE"):
        _sync(db_path, central.address)
    db = EdgeDatabase(db_path)
    assert EdgeCache(db).version() == 5 + 30
    db.close()
    _sync(db_path, central.address)
    assert _hash(db_path) == central.sync.content_hash()


def test_snapshot_swap_is_atomic(central: FakeCentral, tmp_path: Path) -> None:
    db_path = tmp_path / "cache.db"
    fill(central.sync.put, items=30, customers=5, promotions=5)
    _sync(db_path, central.address)
    old_hash = _hash(db_path)
    old_version = central.sync.version
    # central forgets history: the edge's checkpoint now needs a snapshot
    for i in range(30, 80):
        central.sync.put("catalog", catalog_item(i))
    central.sync.delete("customer", "C2")
    central.sync.compact()
    central.sync.control.abort_after_pages = 4
    with pytest.raises(UpstreamUnavailable):
        _sync(db_path, central.address)
    # half a snapshot arrived and was dropped on the floor: the live cache is untouched
    assert _hash(db_path) == old_hash
    db = EdgeDatabase(db_path)
    assert EdgeCache(db).version() == old_version
    assert db.query("SELECT count(*) AS n FROM documents_shadow")[0]["n"] == 40
    db.close()

    result = _sync(db_path, central.address)
    assert result.snapshot
    assert central.sync.requests[-1].since == old_version
    assert _hash(db_path) == central.sync.content_hash()
    db = EdgeDatabase(db_path)
    cache = EdgeCache(db)
    assert cache.customer_by_id("C2") is None
    assert cache.customer_by_ref(CustomerRef("card", customer(2)["cards"][0])) is None
    assert cache.customer_by_ref(CustomerRef("card", customer(3)["cards"][0])) is not None
    db.close()


def test_selection_lists_recently_identified_customers(tmp_path: Path) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    now = 1_800_000_000.0
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO seen_customers VALUES ('C1', ?), ('C9', ?)", (now - 3600, now - 40 * 86400)
        )
    client = SyncClient(
        EdgeCache(db), store="S001", selection=CustomerSelection(seen_days=30), clock=lambda: now
    )
    request = client.pull_request()
    assert list(request.customer_ids) == ["C1"]
    assert not request.all_customers
    assert request.seen_days == 30
    assert request.since == 0
    db.close()


def test_selection_lists_customers_with_an_unacknowledged_offline_confirm(
    tmp_path: Path,
) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    now = 1_800_000_000.0
    with db.transaction() as conn:
        conn.execute("INSERT INTO seen_customers VALUES ('C1', ?)", (now - 3600,))
        conn.execute("INSERT INTO offline_purchases VALUES ('R1', 'C7', '{}', NULL, NULL)")
        conn.execute("INSERT INTO offline_redemptions VALUES ('R2', 'C8', 100, NULL, NULL)")
        conn.execute("INSERT INTO offline_purchases VALUES ('R3', 'C9', '{}', ?, 5)", (now,))
    client = SyncClient(
        EdgeCache(db), store="S001", selection=CustomerSelection(seen_days=30), clock=lambda: now
    )
    # C9's confirm reached central: its document is central's business again
    assert list(client.pull_request().customer_ids) == ["C1", "C7", "C8"]
    db.close()


def test_a_tombstone_waits_while_the_customer_has_an_unsent_offline_confirm(
    tmp_path: Path,
) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    client = SyncClient(cache, store="S001", selection=CustomerSelection(seen_days=1))
    body = customer(3)
    live = pb.Document(kind="customer", id="C3", json=canonical_json(body), version=1)
    client.apply_page(pb.SyncPage(version=1, last=True, documents=[live]))
    with db.transaction() as conn:
        conn.execute("INSERT INTO offline_purchases VALUES ('OFF1', 'C3', '{}', NULL, NULL)")
    tombstone = pb.Document(kind="customer", id="C3", deleted=True, version=2)
    client.apply_page(pb.SyncPage(version=2, last=True, documents=[tombstone]))
    client.finish(started_at=0.0, duration_s=0.0)
    assert cache.customer_by_id("C3") is not None, "held while OFF1 is unsent"
    assert cache.version() == 2
    with db.transaction() as conn:  # the uploader's acknowledgement
        conn.execute("UPDATE offline_purchases SET acked_at = 1.0, acked_version = 9")
    client.finish(started_at=0.0, duration_s=0.0)
    assert cache.customer_by_id("C3") is None, "applied by the first sync after the ack"
    assert cache.customer_by_ref(CustomerRef("card", body["cards"][0])) is None
    db.close()


def test_a_held_tombstone_is_dropped_when_the_customer_comes_back(tmp_path: Path) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    client = SyncClient(cache, store="S001", selection=CustomerSelection(seen_days=1))
    live = pb.Document(kind="customer", id="C3", json=canonical_json(customer(3)), version=1)
    client.apply_page(pb.SyncPage(version=1, last=True, documents=[live]))
    with db.transaction() as conn:
        conn.execute("INSERT INTO offline_purchases VALUES ('OFF1', 'C3', '{}', NULL, NULL)")
    tombstone = pb.Document(kind="customer", id="C3", deleted=True, version=2)
    client.apply_page(pb.SyncPage(version=2, last=True, documents=[tombstone]))
    again = pb.Document(kind="customer", id="C3", json=canonical_json(customer(3)), version=3)
    client.apply_page(pb.SyncPage(version=3, last=True, documents=[again]))
    with db.transaction() as conn:
        conn.execute("UPDATE offline_purchases SET acked_at = 1.0, acked_version = 9")
    client.finish(started_at=0.0, duration_s=0.0)
    assert cache.customer_by_id("C3") is not None
    db.close()


def test_sync_against_a_dead_server_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(UpstreamUnavailable, match="sync from version 0"):
        _sync(tmp_path / "cache.db", "127.0.0.1:1")


def test_documents_are_stored_byte_for_byte(central: FakeCentral, tmp_path: Path) -> None:
    central.sync.put("promotion", promotion(4))
    _sync(tmp_path / "cache.db", central.address)
    db = EdgeDatabase(tmp_path / "cache.db")
    body = EdgeCache(db).document("promotion", "promo-4")
    assert body is not None
    assert json.loads(body) == promotion(4)
    db.close()


def test_sync_loop_syncs_and_stops(central: FakeCentral, tmp_path: Path) -> None:
    fill(central.sync.put, items=10, customers=2, promotions=2)

    async def main() -> None:
        db = EdgeDatabase(tmp_path / "cache.db")
        client = SyncClient(
            EdgeCache(db), store="S001", selection=CustomerSelection(all_customers=True)
        )
        stop = asyncio.Event()
        async with grpc.aio.insecure_channel(central.address) as channel:
            loop = asyncio.create_task(run_sync_loop(client, channel, interval_s=0.05, stop=stop))
            while len(central.sync.requests) < 3:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(loop, 10)
        db.close()

    asyncio.run(main())
    assert [r.since for r in central.sync.requests[:2]] == [0, 14]
    assert _hash(tmp_path / "cache.db") == central.sync.content_hash()


def test_promotion_index_is_rebuilt_only_when_promotions_change(tmp_path: Path) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    cache = EdgeCache(db)
    client = SyncClient(cache, store="S001")

    def page(version: int, kind: str, body: dict[str, object]) -> pb.SyncPage:
        doc_id = str(body["sku"] if kind == "catalog" else body["id"])
        return pb.SyncPage(
            version=version,
            last=True,
            documents=[
                pb.Document(kind=kind, id=doc_id, json=canonical_json(body), version=version)
            ],
        )

    client.apply_page(page(1, "promotion", promotion(0)))
    first = cache.promotion_index()
    assert len(first) == 1
    client.apply_page(page(2, "catalog", catalog_item(1)))
    assert cache.promotion_index() is first, "a catalog change keeps the index"
    client.apply_page(page(3, "promotion", promotion(1)))
    second = cache.promotion_index()
    assert second is not first
    assert len(second) == 2
    # another process sharing the file sees the change too (the generation is in the file)
    other = EdgeCache(EdgeDatabase(tmp_path / "cache.db"))
    assert len(other.promotion_index()) == 2
    db.close()
