"""A store pointed at another central (another chain, a staging server): two real central
servers with their own databases, one edge database synced from the first.

Nothing waits in the journal: the edge takes the new central's snapshot, and no document of
the old one stays. Entries wait: the sync is refused and the cache kept; the new central
refuses the upload and the entries stay waiting until they reach the central they were made
against, exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from central.admin import receipts_view
from central.schema import CENTRAL_ID
from central.server import CentralServer, start_server
from offline.cache import META_CENTRAL, EdgeCache
from offline.db import EdgeDatabase
from offline.policy import OfflinePolicy
from offline.processor import OfflineProcessor
from offline.sync import CentralChanged, CustomerSelection, SyncClient
from offline.uploader import Uploader
from tests.offline.data import catalog_item
from tests.offline.edge import DEFAULT_DOCS, STORE, calculate_request, confirm_request
from tests.offline.test_with_central import _import
from tillgate.errors import UpstreamUnavailable

FIRST_SKU, OTHER_SKU = "4699998", "4699999"  # sold by the first / the second chain only


def _serve(folder: Path, docs: list[tuple[str, dict[str, Any]]]) -> CentralServer:
    folder.mkdir()
    server = start_server(folder / "central.db", "127.0.0.1:0")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, body in docs:
        by_kind.setdefault(kind, []).append(body)
    for kind, bodies in by_kind.items():
        _import(server, folder, f"{kind}.jsonl", bodies)
    return server


@pytest.fixture
def centrals(tmp_path: Path) -> Iterator[tuple[CentralServer, CentralServer]]:
    # each chain sells one sku the other does not, so their snapshots are told apart
    first = _serve(tmp_path / "first", [*DEFAULT_DOCS, ("catalog", catalog_item(99_998))])
    second = _serve(tmp_path / "second", [*DEFAULT_DOCS, ("catalog", catalog_item(99_999))])
    yield first, second
    first.stop(1)
    second.stop(1)


def central_id(server: CentralServer) -> str:
    with server.repository.read() as tx:
        value = tx.setting(CENTRAL_ID)
    assert value is not None
    return value


def sync(cache: EdgeCache, address: str) -> None:
    async def main() -> None:
        client = SyncClient(cache, store=STORE, selection=CustomerSelection(all_customers=True))
        async with grpc.aio.insecure_channel(address) as channel:
            await client.sync_once(channel)

    asyncio.run(main())


def upload(edge: OfflineProcessor, address: str) -> None:
    async def main() -> None:
        uploader = Uploader(edge.outbox, batch_size=10, call_timeout_s=5)
        async with grpc.aio.insecure_channel(address) as channel:
            await uploader.upload_batch(channel)

    asyncio.run(main())


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
    db = EdgeDatabase(tmp_path / "edge.db")
    cache = EdgeCache(db)
    sync(cache, first.address)
    assert db.get_meta(META_CENTRAL) == central_id(first)
    assert cache.document("catalog", OTHER_SKU) is None
    sync(cache, second.address)  # a delta from the first's checkpoint would be meaningless
    assert db.get_meta(META_CENTRAL) == central_id(second)
    assert cache.document("catalog", OTHER_SKU) is not None
    assert cache.document("catalog", FIRST_SKU) is None
    assert cache.count("catalog") == len([k for k, _ in DEFAULT_DOCS if k == "catalog"]) + 1


def test_entries_made_against_one_central_never_reach_another(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, second = centrals
    db = EdgeDatabase(tmp_path / "edge.db")
    cache = EdgeCache(db)
    sync(cache, first.address)
    edge = OfflineProcessor(db, store=STORE, policy=OfflinePolicy())
    calc = edge.calculate(calculate_request("ID-1")).calculation
    assert not edge.confirm(confirm_request("ID-1", calc.due)).HasField("error")
    waiting = edge.outbox.depth()
    assert waiting == 2
    version = cache.version()

    with pytest.raises(CentralChanged) as refused:
        sync(cache, second.address)
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
    sync(cache, second.address)  # nothing waits now: the store may move
    assert db.get_meta(META_CENTRAL) == central_id(second)


def test_an_upload_naming_no_central_is_taken_as_before(
    centrals: tuple[CentralServer, CentralServer], tmp_path: Path
) -> None:
    first, _ = centrals
    db = EdgeDatabase(tmp_path / "edge.db")
    sync(EdgeCache(db), first.address)
    edge = OfflineProcessor(db, store=STORE, policy=OfflinePolicy())
    calc = edge.calculate(calculate_request("ID-2")).calculation
    assert not edge.confirm(confirm_request("ID-2", calc.due)).HasField("error")
    with db.transaction() as conn:  # a journal from before centrals named themselves
        conn.execute("DELETE FROM meta WHERE key = ?", (META_CENTRAL,))
    upload(edge, first.address)
    assert edge.outbox.depth() == 0
    assert [r["receipt_id"] for r in receipts_view(first.repository)] == ["ID-2"]
