"""Bonus lifetime: activation delay and expiry, with central's clock pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from central import admin
from central.accounts import ACTIVATION_SETTING, VALIDITY_SETTING
from central.clock import NOW_ENV
from central.clock import now as central_now
from central.importer import import_file
from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx
from tests.central.helpers import sell


def _balance(stub: pb_grpc.ProcessingStub) -> int:
    reply = stub.Balance(pb.IdentifyRequest(context=ctx(), customer=pb.CustomerRef(card=CARD)))
    return reply.customer.balance


def _configure(server: CentralServer, activation: str, validity: str) -> None:
    with server.repository.transaction() as tx:
        tx.set_setting(ACTIVATION_SETTING, activation)
        tx.set_setting(VALIDITY_SETTING, validity)


def test_lifetime_off_by_default(stub: pb_grpc.ProcessingStub) -> None:
    _, confirm = sell(stub, "LT0")
    assert _balance(stub) == 340000 + confirm.points.accrued


def test_accrual_waits_for_activation_then_expires(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(server, "14", "30")
    _, confirm = sell(stub, "LT1")
    accrued = confirm.points.accrued
    assert accrued > 0
    assert confirm.points.balance == 340000  # spendable: the accrual still waits
    view = admin.customer_view(server.repository, "C1")
    assert view["balance"] == 340000 + accrued  # the ledger holds it
    assert view["available"] == 340000

    monkeypatch.setenv(NOW_ENV, "2026-12-07T10:19:00+03:00")  # 14 days less a minute
    assert _balance(stub) == 340000
    monkeypatch.setenv(NOW_ENV, "2026-12-07T10:21:00+03:00")
    assert _balance(stub) == 340000 + accrued

    monkeypatch.setenv(NOW_ENV, "2027-01-06T10:21:00+03:00")  # 14 + 30 days later
    assert _balance(stub) == 340000
    view = admin.customer_view(server.repository, "C1")
    kinds = [row["kind"] for row in view["ledger"]]
    assert kinds[-1] == "expiry"
    assert view["ledger"][-1]["points"] == -accrued
    assert view["balance"] == sum(row["points"] for row in view["ledger"]) == 340000


def test_spent_points_do_not_expire_again(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(server, "0", "10")
    _, first = sell(stub, "LT2")
    accrued = first.points.accrued
    # a redemption takes the soonest-expiring lot first: the accrual, not the opening balance
    monkeypatch.setenv(NOW_ENV, "2026-11-24T10:00:00+03:00")
    _, second = sell(stub, "LT3", redeem=accrued)
    assert second.points.redeemed == accrued
    monkeypatch.setenv(NOW_ENV, "2026-12-10T10:00:00+03:00")
    view = admin.customer_view(server.repository, "C1")
    expired = [row for row in view["ledger"] if row["kind"] == "expiry"]
    # only the second receipt's accrual remains unspent when its time comes
    assert sum(row["points"] for row in expired) == -second.points.accrued
    assert view["balance"] == 340000


def test_promotion_lifetime_overrides_the_global_one(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promo = {
        "id": "base-points", "name": "5% баллами", "priority": 10,
        "active": {"from": "2026-01-01T00:00:00+03:00", "to": "2028-01-01T00:00:00+03:00"},
        "audience": {"members_only": True},
        "reward": {"type": "points_percent", "percent": "5"},
        "points_lifetime": {"activation_days": 3},
    }
    file = tmp_path / "promo.jsonl"
    file.write_text(json.dumps(promo, ensure_ascii=False) + "\n", encoding="utf-8")
    import_file(server.repository, file, central_now())
    _, confirm = sell(stub, "LT4", bread=0)
    assert confirm.points.balance == 340000
    monkeypatch.setenv(NOW_ENV, "2026-11-26T10:21:00+03:00")
    assert _balance(stub) == 340000 + confirm.points.accrued
