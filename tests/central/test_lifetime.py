"""Bonus lifetime: activation delay and expiry, with central's clock pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from central import admin
from central.accounts import ACTIVATION_SETTING, VALIDITY_SETTING
from central.clock import NOW_ENV
from central.clock import now as central_now
from central.demo import DEMO_FILES
from central.importer import import_file
from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx, fiscal, oil_receipt
from tests.central.helpers import ledger_sum, sell


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


C2_CARD = "7700002345678"


def _sell_bread(stub: pb_grpc.ProcessingStub, receipt_id: str,
                redeem: int = 0) -> tuple[pb.CalculateReply, pb.ConfirmReply]:
    """Ten loaves for Борис (C2: 12500 points from the import, which never expire)."""
    receipt = oil_receipt(receipt_id, card=C2_CARD, bread=10, redeem=redeem)
    del receipt.lines[0]
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
    assert not calc.HasField("error"), calc.error
    confirm = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id=receipt_id,
                                             due=calc.calculation.due, fiscal=fiscal()))
    assert not confirm.HasField("error"), confirm.error
    return calc, confirm


def _c2_balance(stub: pb_grpc.ProcessingStub) -> int:
    reply = stub.Balance(pb.IdentifyRequest(context=ctx(), customer=pb.CustomerRef(card=C2_CARD)))
    return reply.customer.balance


def _refund(stub: pb_grpc.ProcessingStub, refund_id: str, receipt_id: str) -> pb.RefundReply:
    reply = stub.Refund(pb.RefundRequest(context=ctx(), refund_id=refund_id,
                                         receipt_id=receipt_id))
    assert not reply.HasField("error"), reply.error
    return reply


def test_refund_restores_redeemed_points_with_the_expiry_they_had(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(server, "0", "30")
    _, first = _sell_bread(stub, "EXA")
    accrued = first.points.accrued
    assert accrued > 0
    # the redemption takes lot EXA whole (soonest expiry) and some of the import's points
    monkeypatch.setenv(NOW_ENV, "2026-12-01T10:00:00+03:00")
    _, second = _sell_bread(stub, "EXB", redeem=accrued + 1000)
    assert second.points.redeemed == accrued + 1000
    refund = _refund(stub, "F-EXB", "EXB")
    assert refund.points.restored == accrued + 1000
    view = admin.customer_view(server.repository, "C2")
    restored = sorted(((row["points"], row["expires_at"]) for row in view["ledger"]
                       if row["kind"] == "refund" and row["points"] > 0),
                      key=lambda pair: pair[0])
    accrual_lot = next(row for row in view["ledger"]
                       if row["kind"] == "accrual" and row["receipt_id"] == "EXA")
    assert restored == [(1000, None), (accrued, accrual_lot["expires_at"])]
    assert accrual_lot["expires_at"] is not None

    # three months later lot EXA's points are gone, the restored ones with them
    monkeypatch.setenv(NOW_ENV, "2027-03-01T10:00:00+03:00")
    assert _c2_balance(stub) == 12500
    assert ledger_sum(server, "C2") == 12500


def test_redeemed_points_whose_lot_expired_come_back_expired(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(server, "0", "30")
    _, first = _sell_bread(stub, "EXC")
    accrued = first.points.accrued
    monkeypatch.setenv(NOW_ENV, "2026-12-01T10:00:00+03:00")
    _, second = _sell_bread(stub, "EXD", redeem=accrued)
    assert second.points.redeemed == accrued
    monkeypatch.setenv(NOW_ENV, "2027-01-15T10:00:00+03:00")  # lot EXC expired meanwhile
    before = _c2_balance(stub)
    refund = _refund(stub, "F-EXD", "EXD")
    assert refund.points.restored == accrued
    # EXD's own accrual expired too: nothing of it to reverse, nothing restored to spend
    assert refund.points.reversed == 0
    assert refund.points.balance == before == _c2_balance(stub)
    rows = admin.customer_view(server.repository, "C2")["ledger"]
    assert [(row["kind"], row["points"]) for row in rows[-2:]] == [
        ("refund", accrued), ("expiry", -accrued)]
    assert ledger_sum(server, "C2") == before


def test_refund_after_the_accrual_expired_takes_no_other_points(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(server, "14", "30")
    _, confirm = sell(stub, "EXE", bread=0)
    assert confirm.points.accrued > 0
    monkeypatch.setenv(NOW_ENV, "2027-01-06T10:21:00+03:00")  # 14 + 30 days later: expired
    assert _balance(stub) == 340000
    refund = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F-EXE", receipt_id="EXE"))
    assert not refund.HasField("error")
    assert refund.points.reversed == 0
    assert refund.points.balance == 340000
    assert ledger_sum(server, "C1") == 340000


def test_refund_reverses_the_spent_part_of_an_expired_accrual_only(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(server, "0", "30")
    _, first = _sell_bread(stub, "EXF")
    accrued = first.points.accrued
    spent = accrued // 3
    monkeypatch.setenv(NOW_ENV, "2026-11-24T10:00:00+03:00")
    _sell_bread(stub, "EXG", redeem=spent)  # taken from lot EXF, the soonest to expire
    monkeypatch.setenv(NOW_ENV, "2026-12-23T11:00:00+03:00")  # EXF expired, EXG's not yet
    before = _c2_balance(stub)
    refund = _refund(stub, "F-EXF", "EXF")
    # only the spent third of EXF's accrual is still the customer's to give back
    assert refund.points.reversed == spent
    assert refund.points.balance == before - spent
    again = _refund(stub, "F-EXF-2", "EXG")
    assert again.points.restored == spent
    # both sales undone: the import's 12500 again, none of it left to expire later
    assert again.points.balance == 12500 == _c2_balance(stub)
    view = admin.customer_view(server.repository, "C2")
    assert view["balance"] == sum(row["points"] for row in view["ledger"])
    monkeypatch.setenv(NOW_ENV, "2027-06-01T10:00:00+03:00")
    assert _c2_balance(stub) == 12500


def _spend_from_a_lot_that_expires(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch,
    sale: str, spender: str,
) -> None:
    """``sale`` accrues; ``spender`` redeems a third of it (lot ``sale``: the soonest to
    expire); 30-day validity."""
    _configure(server, "0", "30")
    _, first = _sell_bread(stub, sale)
    monkeypatch.setenv(NOW_ENV, "2026-11-24T10:00:00+03:00")
    _, second = _sell_bread(stub, spender, redeem=first.points.accrued // 3)
    assert second.points.redeemed == first.points.accrued // 3


@pytest.mark.parametrize("order", ["sale first", "spender first"])
@pytest.mark.parametrize("balance_call", [False, True])
def test_both_sales_refunded_after_the_accrual_expired_give_the_opening_balance(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch,
    order: str, balance_call: bool,
) -> None:
    _spend_from_a_lot_that_expires(stub, server, monkeypatch, "EXH", "EXI")
    monkeypatch.setenv(NOW_ENV, "2026-12-23T11:00:00+03:00")  # EXH's lot expired, EXI's not
    if balance_call:
        _c2_balance(stub)
    receipts = ["EXH", "EXI"] if order == "sale first" else ["EXI", "EXH"]
    for receipt_id in receipts:
        last = _refund(stub, f"F-{receipt_id}", receipt_id)
    assert last.points.balance == 12500 == _c2_balance(stub)
    assert ledger_sum(server, "C2") == 12500
    monkeypatch.setenv(NOW_ENV, "2027-06-01T10:00:00+03:00")  # every lot's expiry passed
    assert _c2_balance(stub) == 12500


@pytest.mark.parametrize("balance_call", [False, True])
def test_points_restored_then_expired_are_not_taken_again_by_the_accrual_refund(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch,
    balance_call: bool,
) -> None:
    _spend_from_a_lot_that_expires(stub, server, monkeypatch, "EXJ", "EXK")
    # back with EXJ's expiry, not yet reached
    assert _refund(stub, "F-EXK", "EXK").points.restored > 0
    monkeypatch.setenv(NOW_ENV, "2027-03-01T11:00:00+03:00")  # EXJ's lot and the restored expired
    if balance_call:
        assert _c2_balance(stub) == 12500
    refund = _refund(stub, "F-EXJ", "EXJ")
    assert refund.points.reversed == 0
    assert refund.points.balance == 12500 == _c2_balance(stub)
    assert ledger_sum(server, "C2") == 12500


def _demo_promotion(promotion_id: str) -> dict[str, Any]:
    file = next(path for path in DEMO_FILES if path.name == "promotions.json")
    promotions = json.loads(file.read_text(encoding="utf-8"))
    found: dict[str, Any] = next(p for p in promotions if p["id"] == promotion_id)
    return found


def _load_promotion(server: CentralServer, tmp_path: Path, promotion: dict[str, Any]) -> None:
    file = tmp_path / f"{promotion['id']}.jsonl"
    file.write_text(json.dumps(promotion, ensure_ascii=False) + "\n", encoding="utf-8")
    import_file(server.repository, file, central_now())


def _accrual_lot(server: CentralServer, receipt_id: str) -> dict[str, Any]:
    rows = admin.customer_view(server.repository, "C2")["ledger"]
    lot: dict[str, Any] = next(row for row in rows
                               if row["kind"] == "accrual" and row["receipt_id"] == receipt_id)
    return lot


def test_a_discount_promotions_lifetime_does_not_govern_the_points(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path
) -> None:
    _configure(server, "", "30")
    # oil-15 applies first (a discount); base-points gives the points
    _load_promotion(server, tmp_path, {**_demo_promotion("oil-15"),
                                       "points_lifetime": {"activation_days": 1}})
    receipt = oil_receipt("LF1", card=C2_CARD, bread=0)
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
    assert [p.id for p in calc.calculation.promotions] == ["oil-15", "base-points"]
    stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="LF1", due=calc.calculation.due,
                                   fiscal=fiscal()))
    lot = _accrual_lot(server, "LF1")
    assert lot["points"] == calc.calculation.points.accrue > 0
    assert lot["available_at"] is None  # not the discount's one day
    assert lot["expires_at"] == "2026-12-23T07:20:00.000000+00:00"  # the global 30 days


def test_a_partial_lifetime_block_leaves_the_other_key_to_the_global_setting(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path
) -> None:
    _configure(server, "14", "30")
    _load_promotion(server, tmp_path, {**_demo_promotion("base-points"),
                                       "points_lifetime": {"activation_days": 3}})
    _sell_bread(stub, "LF2")
    lot = _accrual_lot(server, "LF2")
    assert lot["available_at"] == "2026-11-26T07:20:00.000000+00:00"  # the promotion's 3 days
    assert lot["expires_at"] == "2026-12-26T07:20:00.000000+00:00"  # then the global 30

    _load_promotion(server, tmp_path, {**_demo_promotion("base-points"),
                                       "points_lifetime": {"validity_days": 0}})
    _sell_bread(stub, "LF3")
    lot = _accrual_lot(server, "LF3")
    assert lot["available_at"] == "2026-12-07T07:20:00.000000+00:00"  # the global 14 days
    assert lot["expires_at"] is None  # 0: the promotion's points never expire


def test_partial_refund_then_expiry_then_the_rest_gives_the_opening_balance(
    stub: pb_grpc.ProcessingStub, server: CentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(server, "0", "30")
    _, sale = _sell_bread(stub, "EXP")
    monkeypatch.setenv(NOW_ENV, "2026-11-24T10:00:00+03:00")
    redeem = sale.points.accrued // 2  # taken from lot EXP, the soonest to expire
    _, spender = _sell_bread(stub, "EXQ", redeem=redeem)
    assert spender.points.redeemed == redeem
    accrued = spender.points.accrued
    assert accrued > 0

    monkeypatch.setenv(NOW_ENV, "2026-11-25T10:00:00+03:00")
    first = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F-EXQ-1", receipt_id="EXQ",
                                         lines=[pb.RefundLine(n=2, quantity_milli=4000)]))
    assert not first.HasField("error"), first.error
    assert 0 < first.points.restored < redeem
    assert 0 < first.points.reversed < accrued
    assert ledger_sum(server, "C2") == _c2_balance(stub)

    # lot EXP (and the points restored into it) expired; EXQ's own accrual has not yet
    monkeypatch.setenv(NOW_ENV, "2026-12-23T11:00:00+03:00")
    before = _c2_balance(stub)
    rest = _refund(stub, "F-EXQ-2", "EXQ")
    assert first.points.restored + rest.points.restored == redeem
    assert first.points.reversed + rest.points.reversed == accrued
    # the rest of the redemption comes back already expired: only the accrual is taken
    assert rest.points.balance == before - rest.points.reversed == 12500
    assert _c2_balance(stub) == 12500 == ledger_sum(server, "C2")
    monkeypatch.setenv(NOW_ENV, "2027-06-01T10:00:00+03:00")
    assert _c2_balance(stub) == 12500
