"""Loading a customer again updates its profile and keeps central's books (balance, counters,
purchases): the file's values are only a new customer's opening state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from central.clock import now as central_now
from central.importer import import_file
from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx
from tests.central.helpers import ledger_sum, sell

#: C1 as a CRM export has it: opening balance, purchases and a counter, a new segment
C1_EXPORT = {
    "id": "C1", "cards": [CARD], "phone": "+79161234567", "name": "Анна К.",
    "statuses": {"tier": "silver"}, "segments": ["churn-risk"],
    "balance": 340000, "purchases": 0, "counters": {"visits": 0},
}


def _load(server: CentralServer, tmp_path: Path, *docs: dict[str, Any]) -> None:
    file = tmp_path / "customers.jsonl"
    file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs),
                    encoding="utf-8")
    import_file(server.repository, file, central_now())


def _books(server: CentralServer, customer_id: str) -> tuple[int, int, dict[str, int]]:
    with server.repository.read() as tx:
        return (sum(row.points for row in tx.ledger(customer_id)), tx.purchases(customer_id),
                tx.counters(customer_id))


def _synced(server: CentralServer, customer_id: str) -> dict[str, Any]:
    with server.repository.read() as tx:
        stored = tx.document("customer", customer_id)
    assert stored is not None
    assert stored.body is not None
    body: dict[str, Any] = json.loads(stored.body)
    return body


def test_reimport_keeps_accumulated_books_and_updates_the_profile(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path
) -> None:
    with server.repository.transaction() as tx:
        tx.set_counter("C1", "visits", 4)
    _, confirm = sell(stub, "RI1")
    books = _books(server, "C1")
    assert books == (340000 + confirm.points.accrued, 1, {"visits": 4})

    _load(server, tmp_path, C1_EXPORT)
    assert _books(server, "C1") == books
    synced = _synced(server, "C1")
    assert (synced["balance"], synced["purchases"], synced["counters"]) == (
        340000 + confirm.points.accrued, 1, {"visits": 4})
    assert synced["statuses"] == {"tier": "silver"}  # the profile is the file's
    assert synced["segments"] == ["churn-risk"]
    balance = stub.Balance(pb.IdentifyRequest(context=ctx(), customer=pb.CustomerRef(card=CARD)))
    assert balance.customer.balance == 340000 + confirm.points.accrued


def test_a_deleted_customer_loaded_again_finds_its_points_again(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path
) -> None:
    _, confirm = sell(stub, "RI2")
    books = _books(server, "C1")
    _load(server, tmp_path, {"id": "C1", "deleted": True})
    _load(server, tmp_path, C1_EXPORT)
    assert _books(server, "C1") == books
    assert _synced(server, "C1")["balance"] == 340000 + confirm.points.accrued
    # even once the tombstone is compacted away: the books are the customer's
    _load(server, tmp_path, {"id": "C1", "deleted": True})
    with server.repository.transaction() as tx:
        tx.compact_tombstones("9999")
        assert tx.document("customer", "C1") is None
    _load(server, tmp_path, C1_EXPORT)
    assert _books(server, "C1") == books


def test_a_new_customer_takes_its_opening_state_from_the_file(
    server: CentralServer, tmp_path: Path
) -> None:
    _load(server, tmp_path, {"id": "N1", "cards": ["7700009999999"], "balance": 5000,
                             "purchases": 3, "counters": {"visits": 2}})
    assert _books(server, "N1") == (5000, 3, {"visits": 2})
    assert ledger_sum(server, "N1") == 5000
    # a second load of the same file changes nothing, though the file says otherwise now
    _load(server, tmp_path, {"id": "N1", "cards": ["7700009999999"], "balance": 9000,
                             "purchases": 0, "counters": {"visits": 0}})
    assert _books(server, "N1") == (5000, 3, {"visits": 2})
