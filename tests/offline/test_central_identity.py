"""A store pointed at another central (another chain, a staging server): two real central
servers with their own databases, one edge database synced from the first.

Nothing waits in the journal: the edge takes the new central's snapshot, and no document of
the old one stays. Entries wait: the sync is refused and the cache kept; the new central
refuses the upload and the entries stay waiting until they reach the central they were made
against, exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from central.admin import receipts_view
from central.schema import CENTRAL_ID
from central.server import CentralServer
from offline.cache import META_CENTRAL
from offline.processor import OfflineProcessor
from offline.sync import CentralChanged
from offline.uploader import Uploader
from protos import tillgate_pb2 as pb
from tests.offline.data import catalog_item
from tests.offline.edge import DEFAULT_DOCS, calculate_request, confirm_request
from tests.offline.test_with_central import serve_with, sync_cache, synced_edge
from tillgate.errors import UpstreamUnavailable

FIRST_SKU, OTHER_SKU = "4699998", "4699999"  # sold by the first / the second chain only


@pytest.fixture
def centrals(tmp_path: Path) -> Iterator[tuple[CentralServer, CentralServer]]:
    # each chain sells one sku the other does not, so their snapshots are told apart
    first = serve_with(tmp_path / "first", [*DEFAULT_DOCS, ("catalog", catalog_item(99_998))])
    second = serve_with(tmp_path / "second", [*DEFAULT_DOCS, ("catalog", catalog_item(99_999))])
    yield first, second
    first.stop(1)
    second.stop(1)


def central_id(server: CentralServer) -> str:
    with server.repository.read() as tx:
        value = tx.setting(CENTRAL_ID)
    assert value is not None
    return value


def upload(edge: OfflineProcessor, address: str) -> None:
    async def main() -> None:
        uploader = Uploader(edge.outbox, batch_size=10, call_timeout_s=5)
        async with grpc.aio.insecure_channel(address) as channel:
            await uploader.upload_batch(channel)

    asyncio.run(main())


def sell_offline(edge: OfflineProcessor, receipt_id: str) -> None:
    """Calculate and confirm offline: two journal entries."""
    calc = edge.calculate(calculate_request(receipt_id)).calculation
    assert not edge.confirm(confirm_request(receipt_id, calc.due)).HasField("error")


def test_each_central_database_names_itself_differently(
    centrals: tuple[CentralServer, CentralServer],
) -> None:
    first, second = centrals
    assert len(central_id(first)) == 32
    assert central_id(first) != central_id(second)


def test_a_store_with_nothing_waiting_takes_the_new_centrals_snapshot(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, second = centrals
    db, cache, _ = synced_edge(first, tmp_path)
    assert db.get_meta(META_CENTRAL) == central_id(first)
    assert cache.document("catalog", OTHER_SKU) is None
    sync_cache(cache, second.address)  # a delta from the first's checkpoint would be meaningless
    assert db.get_meta(META_CENTRAL) == central_id(second)
    assert cache.document("catalog", OTHER_SKU) is not None
    assert cache.document("catalog", FIRST_SKU) is None
    assert cache.count("catalog") == len([k for k, _ in DEFAULT_DOCS if k == "catalog"]) + 1


def test_entries_made_against_one_central_never_reach_another(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, second = centrals
    db, cache, edge = synced_edge(first, tmp_path)
    sell_offline(edge, "ID-1")
    waiting = edge.outbox.depth()
    assert waiting == 2
    version = cache.version()

    with pytest.raises(CentralChanged) as refused:
        sync_cache(cache, second.address)
    assert f"{waiting} journal entries wait" in str(refused.value)
    assert cache.version() == version
    assert db.get_meta(META_CENTRAL) == central_id(first)
    assert cache.document("catalog", OTHER_SKU) is None

    with pytest.raises(UpstreamUnavailable) as caught:
        upload(edge, second.address)
    assert "FAILED_PRECONDITION" in str(caught.value)
    assert f"this is central {central_id(second)}" in str(caught.value)
    assert edge.outbox.depth() == waiting
    assert receipts_view(second.repository) == []

    upload(edge, first.address)
    assert edge.outbox.depth() == 0
    [receipt] = receipts_view(first.repository)
    assert (receipt["receipt_id"], receipt["state"]) == ("ID-1", "confirmed")
    sync_cache(cache, second.address)  # nothing waits now: the store may move
    assert db.get_meta(META_CENTRAL) == central_id(second)


def test_an_upload_naming_no_central_is_taken_as_before(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, _ = centrals
    db, _, edge = synced_edge(first, tmp_path)
    sell_offline(edge, "ID-2")
    with db.transaction() as conn:  # a journal from before centrals named themselves
        conn.execute("UPDATE outbox SET central = NULL")
    upload(edge, first.address)
    assert edge.outbox.depth() == 0
    assert [r["receipt_id"] for r in receipts_view(first.repository)] == ["ID-2"]


def refund_unknown_receipt(edge: OfflineProcessor, receipt_id: str) -> None:
    """An offline refund of a receipt neither the edge nor central knows: journaled, and
    rejected by central."""
    reply = edge.refund(pb.RefundRequest(refund_id=f"RF-{receipt_id}", receipt_id=receipt_id))
    assert not reply.HasField("error")


def test_a_rejected_entry_of_the_old_central_is_not_requeued_to_the_new_one(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, second = centrals
    _, cache, edge = synced_edge(first, tmp_path)
    refund_unknown_receipt(edge, "GONE-1")
    upload(edge, first.address)
    [kept] = edge.outbox.rejected()
    assert (kept.receipt_id, kept.central) == ("GONE-1", central_id(first))
    sync_cache(cache, second.address)  # nothing waits: the store moves

    requeued, foreign = edge.outbox.requeue_rejected()
    assert (requeued, [entry.seq for entry in foreign]) == ([], [kept.seq])
    assert edge.outbox.depth() == 0
    assert receipts_view(second.repository) == []

    # the first central's database is gone for good: the engineer lets the entry go on
    assert edge.outbox.forget_central() == 1
    requeued, foreign = edge.outbox.requeue_rejected()
    assert ([entry.seq for entry in requeued], foreign) == ([kept.seq], [])
    upload(edge, second.address)  # accepted as an upload (and judged: the receipt is unknown)
    assert [entry.seq for entry in edge.outbox.rejected()] == [kept.seq]


def test_a_store_whose_central_was_rebuilt_is_let_go_by_forget_central(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, rebuilt = centrals
    db, cache, edge = synced_edge(first, tmp_path)
    sell_offline(edge, "RB-1")
    with pytest.raises(CentralChanged, match="tillgate forget-central"):
        sync_cache(cache, rebuilt.address)
    with pytest.raises(UpstreamUnavailable, match="FAILED_PRECONDITION"):
        upload(edge, rebuilt.address)

    assert edge.outbox.forget_central() == 2
    sync_cache(cache, rebuilt.address)
    assert db.get_meta(META_CENTRAL) == central_id(rebuilt)
    assert cache.document("catalog", OTHER_SKU) is not None
    upload(edge, rebuilt.address)
    assert edge.outbox.depth() == 0
    [receipt] = receipts_view(rebuilt.repository)
    assert (receipt["receipt_id"], receipt["state"]) == ("RB-1", "confirmed")


def test_a_central_that_does_not_name_itself_counts_as_another_one(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, second = centrals
    with sqlite3.connect(tmp_path / "second" / "central.db") as conn:  # an older tillgate
        conn.execute("DELETE FROM settings WHERE key = ?", (CENTRAL_ID,))
    db, cache, edge = synced_edge(first, tmp_path)
    assert not edge.calculate(calculate_request("UN-1")).HasField("error")  # journaled
    with pytest.raises(CentralChanged, match="does not name its database"):
        sync_cache(cache, second.address)
    assert cache.document("catalog", FIRST_SKU) is not None  # nothing of the other merged
    assert cache.document("catalog", OTHER_SKU) is None

    edge.cancel(pb.CancelRequest(receipt_id="UN-1"))
    upload(edge, first.address)
    assert edge.outbox.depth() == 0
    sync_cache(cache, second.address)  # nothing waits: its snapshot, and no binding
    assert db.get_meta(META_CENTRAL) is None
    assert cache.document("catalog", FIRST_SKU) is None
    assert cache.document("catalog", OTHER_SKU) is not None
