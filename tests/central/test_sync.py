"""The Sync feed: pages, checkpoints, snapshots, tombstones, customer filter, content hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from central import syncfeed
from central.clock import NOW_ENV
from central.clock import now as central_now
from central.importer import import_file
from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from protos.sync import canonical_json, content_hash
from tests.central.conftest import STORE, ctx, oil_receipt
from tests.central.helpers import sell

DEMO_DOCUMENTS = 21 + 3 + 6


def _pull(sync: pb_grpc.SyncStub, since: int, *, page_size: int = 0, all_customers: bool = True,
          customer_ids: tuple[str, ...] = (), seen_days: int = 0) -> list[pb.SyncPage]:
    return list(sync.Pull(pb.PullRequest(
        store=STORE, since=since, page_size=page_size, all_customers=all_customers,
        customer_ids=list(customer_ids), seen_days=seen_days)))


def _docs(pages: list[pb.SyncPage]) -> list[pb.Document]:
    return [doc for page in pages for doc in page.documents]


def _import(
    server: CentralServer, tmp_path: Path, name: str, docs: list[dict[str, object]]
) -> None:
    file = tmp_path / name
    file.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs), encoding="utf-8")
    import_file(server.repository, file, central_now())


def test_snapshot_pages_and_content_hash(
    sync_stub: pb_grpc.SyncStub, server: CentralServer
) -> None:
    pages = _pull(sync_stub, 0, page_size=7)
    assert len(pages) == 5
    assert all(page.snapshot for page in pages)
    assert [page.last for page in pages] == [False] * 4 + [True]
    versions = [page.version for page in pages]
    assert versions == sorted(versions)
    docs = _docs(pages)
    assert len(docs) == DEMO_DOCUMENTS
    assert [d.version for d in docs] == sorted(d.version for d in docs)
    for doc in docs:
        assert canonical_json(json.loads(doc.json)) == doc.json  # canonical bytes
    edge_hash = content_hash((d.kind, d.id, d.json) for d in docs)
    assert edge_hash == server.content_hash()


def test_delta_after_confirm_carries_the_customer_and_coupon(
    sync_stub: pb_grpc.SyncStub, stub: pb_grpc.ProcessingStub
) -> None:
    checkpoint = _pull(sync_stub, 0)[-1].version
    _, confirm = sell(stub, "SY1", oil=6, coupons=("WELCOME-AAAA",))
    pages = _pull(sync_stub, checkpoint)
    assert len(pages) == 1
    assert not pages[0].snapshot
    assert pages[0].last
    changed = {(d.kind, d.id): json.loads(d.json) for d in _docs(pages)}
    assert set(changed) == {("customer", "C1"), ("coupon", "WELCOME-AAAA")}
    customer = changed[("customer", "C1")]
    assert customer["balance"] == confirm.points.balance
    assert customer["purchases"] == 1
    # nothing more after the new checkpoint
    empty = _pull(sync_stub, pages[-1].version)
    assert [(len(p.documents), p.last) for p in empty] == [(0, True)]


def test_resume_from_a_page_checkpoint(
    sync_stub: pb_grpc.SyncStub, server: CentralServer, tmp_path: Path
) -> None:
    checkpoint = _pull(sync_stub, 0)[-1].version
    _import(server, tmp_path, "more.jsonl",
            [{"sku": f"77{i:05d}", "name": f"Товар {i}", "groups": ["grocery"]} for i in range(10)])
    pages = _pull(sync_stub, checkpoint, page_size=3)
    assert [len(p.documents) for p in pages] == [3, 3, 3, 1]
    resumed = _pull(sync_stub, pages[1].version, page_size=3)
    assert [d.id for d in _docs(resumed)] == [d.id for d in _docs(pages[2:])]


def test_tombstones_and_snapshot_when_checkpoint_is_too_old(
    sync_stub: pb_grpc.SyncStub, server: CentralServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checkpoint = _pull(sync_stub, 0)[-1].version
    _import(server, tmp_path, "gone.jsonl", [{"sku": "4600050", "deleted": True}])
    delta = _docs(_pull(sync_stub, checkpoint))
    assert [(d.kind, d.id, d.deleted) for d in delta] == [("catalog", "4600050", True)]
    snapshot = _docs(_pull(sync_stub, 0))
    assert len(snapshot) == DEMO_DOCUMENTS - 1
    assert all(not d.deleted for d in snapshot)
    head = _pull(sync_stub, checkpoint)[-1].version

    monkeypatch.setenv(NOW_ENV, "2026-12-24T10:00:00+03:00")  # past the 30-day horizon
    old = _pull(sync_stub, checkpoint)
    assert all(page.snapshot for page in old)
    assert old[-1].last
    assert len(_docs(old)) == DEMO_DOCUMENTS - 1
    recent = _pull(sync_stub, head)
    assert not recent[0].snapshot


def test_customer_filter(
    sync_stub: pb_grpc.SyncStub, stub: pb_grpc.ProcessingStub
) -> None:
    listed = _docs(_pull(sync_stub, 0, all_customers=False, customer_ids=("C2",)))
    assert [d.id for d in listed if d.kind == "customer"] == ["C2"]
    assert len([d for d in listed if d.kind == "catalog"]) == 21
    stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("SEEN")))
    seen = _docs(_pull(sync_stub, 0, all_customers=False, seen_days=7))
    assert [d.id for d in seen if d.kind == "customer"] == ["C1"]
    ever = _docs(_pull(sync_stub, 0, all_customers=False, seen_days=2**32 - 1))
    assert [d.id for d in ever if d.kind == "customer"] == ["C1"]  # "ever", not an overflow


def test_checkpoint_ahead_of_central_gets_a_snapshot(sync_stub: pb_grpc.SyncStub) -> None:
    pages = _pull(sync_stub, 10**9)
    assert pages[0].snapshot
    assert len(_docs(pages)) == DEMO_DOCUMENTS


def test_activation_reaches_the_feed(
    sync_stub: pb_grpc.SyncStub, stub: pb_grpc.ProcessingStub, server: CentralServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with server.repository.transaction() as tx:
        tx.set_setting("points.activation_days", "1")
    _, confirm = sell(stub, "ACT1")
    checkpoint = _pull(sync_stub, 0)[-1].version
    synced = {d.id: json.loads(d.json) for d in _docs(_pull(sync_stub, 0)) if d.kind == "customer"}
    assert synced["C1"]["balance"] == 340000  # the accrual is not spendable yet
    monkeypatch.setenv(NOW_ENV, "2026-11-24T10:21:00+03:00")
    delta = _docs(_pull(sync_stub, checkpoint))
    assert [(d.kind, d.id) for d in delta] == [("customer", "C1")]
    assert json.loads(delta[0].json)["balance"] == 340000 + confirm.points.accrued


def test_customer_seen_after_the_checkpoint_comes_with_the_next_delta(
    sync_stub: pb_grpc.SyncStub, stub: pb_grpc.ProcessingStub
) -> None:
    pages = _pull(sync_stub, 0, all_customers=False, seen_days=30)
    assert not [d for d in _docs(pages) if d.kind == "customer"]
    checkpoint = pages[-1].version
    seen = stub.Identify(pb.IdentifyRequest(context=ctx(),
                                            customer=pb.CustomerRef(card="7700002345678")))
    assert seen.customer.id == "C2"
    delta = _pull(sync_stub, checkpoint, all_customers=False, seen_days=30)
    assert [(d.kind, d.id) for d in _docs(delta)] == [("customer", "C2")]
    assert delta[-1].last
    # another store's edge does not get it
    other = list(sync_stub.Pull(pb.PullRequest(store="S002", since=checkpoint, seen_days=30)))
    assert not _docs(other)


def test_pages_stay_under_the_byte_budget(
    sync_stub: pb_grpc.SyncStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncfeed, "MAX_PAGE_BYTES", 3000)
    pages = _pull(sync_stub, 0)
    assert len(pages) > 1
    for page in pages:
        sizes = [doc.ByteSize() for doc in page.documents]
        assert sum(sizes) <= 3000 or len(sizes) == 1
    assert [page.last for page in pages] == [False] * (len(pages) - 1) + [True]
    assert len(_docs(pages)) == DEMO_DOCUMENTS
    versions = [page.version for page in pages]
    assert versions == sorted(versions)
