"""Confirm re-checks what its calculation relied on (register protocol §2.3: ``stale``).

Two lanes price receipts against the same state; the first confirm spends the coupon, the
points or the first purchase, and the second is ``conflict``/``stale`` with nothing changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from central.accounts import refresh_customer
from central.clock import now as central_now
from central.importer import import_file
from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import ctx, fiscal, oil_receipt
from tests.central.helpers import ledger_sum

C2_CARD = "7700002345678"
C3_CARD = "7700003456789"


def _bread(receipt_id: str, redeem: int) -> pb.Receipt:
    """Ten loaves for Борис (C2, balance 12500), redeeming ``redeem`` points."""
    receipt = oil_receipt(receipt_id, card=C2_CARD, bread=10, redeem=redeem)
    del receipt.lines[0]
    return receipt


def _calculate(stub: pb_grpc.ProcessingStub, receipt: pb.Receipt) -> pb.Calculation:
    reply = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
    assert not reply.HasField("error"), reply.error
    return reply.calculation


def _confirm(stub: pb_grpc.ProcessingStub, receipt_id: str, due: int,
             rid: str | None = None) -> pb.ConfirmReply:
    return stub.Confirm(pb.ConfirmRequest(context=ctx(rid=rid), receipt_id=receipt_id, due=due,
                                          fiscal=fiscal()))


def _state(server: CentralServer, customer_id: str) -> tuple[Any, ...]:
    with server.repository.read() as tx:
        return (
            sum(row.points for row in tx.ledger(customer_id)),
            len(tx.ledger(customer_id)),
            tx.purchases(customer_id),
            tx.counters(customer_id),
            tx.head_version(),
        )


def _import_promotions(server: CentralServer, tmp_path: Path, *promos: dict[str, Any]) -> None:
    file = tmp_path / "promos.jsonl"
    file.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in promos),
                    encoding="utf-8")
    import_file(server.repository, file, central_now())


def test_a_coupon_is_spent_once_by_two_calculated_receipts(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    first = _calculate(stub, oil_receipt("CPA", card=None, oil=10, coupons=("WELCOME-7F3K",)))
    second = _calculate(stub, oil_receipt("CPB", card=None, oil=10, coupons=("WELCOME-7F3K",)))
    assert "welcome-coupon" in [p.id for p in first.promotions]
    assert "welcome-coupon" in [p.id for p in second.promotions]
    assert not _confirm(stub, "CPA", first.due).HasField("error")
    with server.repository.read() as tx:
        head = tx.head_version()

    request = pb.ConfirmRequest(context=ctx(rid="confirm-CPB"), receipt_id="CPB",
                                due=second.due, fiscal=fiscal())
    stale = stub.Confirm(request)
    assert (stale.error.code, stale.error.reason) == ("conflict", "stale")
    assert "WELCOME-7F3K" in stale.error.message
    assert stub.Confirm(request) == stale  # the kept answer
    with server.repository.read() as tx:
        assert tx.head_version() == head  # nothing changed
        record = tx.receipt("S001", "CPB")
        assert record is not None
        assert record.state == "open"

    # the register recalculates: no coupon discount now, and that confirms
    again = _calculate(stub, oil_receipt("CPB", card=None, oil=10, coupons=("WELCOME-7F3K",)))
    assert "welcome-coupon" not in [p.id for p in again.promotions]
    assert again.due > second.due
    assert not _confirm(stub, "CPB", again.due).HasField("error")


def test_the_whole_balance_is_redeemed_once_by_two_calculated_receipts(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    first = _calculate(stub, _bread("RDA", 12500))
    second = _calculate(stub, _bread("RDB", 12500))
    assert first.points.redeem == second.points.redeem == 12500
    done = _confirm(stub, "RDA", first.due)
    assert not done.HasField("error")
    assert done.points.balance == first.points.accrue
    before = _state(server, "C2")

    stale = _confirm(stub, "RDB", second.due)
    assert (stale.error.code, stale.error.reason) == ("conflict", "stale")
    assert _state(server, "C2") == before
    assert ledger_sum(server, "C2") == first.points.accrue >= 0

    again = _calculate(stub, _bread("RDB", 12500))
    assert again.points.redeem == first.points.accrue
    assert not _confirm(stub, "RDB", again.due).HasField("error")
    assert ledger_sum(server, "C2") == first.points.accrue - again.points.redeem \
        + again.points.accrue


def test_a_first_purchase_promotion_is_given_once(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path
) -> None:
    _import_promotions(server, tmp_path, {
        "id": "first-buy", "name": "Первая покупка", "audience": {"members_only": True},
        "conditions": {"first_purchase": True},
        "reward": {"type": "points_fixed", "points": 50000},
    })
    first = _calculate(stub, oil_receipt("FPA", card=C3_CARD))
    second = _calculate(stub, oil_receipt("FPB", card=C3_CARD))
    assert "first-buy" in [p.id for p in second.promotions]
    assert not _confirm(stub, "FPA", first.due).HasField("error")
    before = _state(server, "C3")

    stale = _confirm(stub, "FPB", second.due)
    assert (stale.error.code, stale.error.reason) == ("conflict", "stale")
    assert "first-buy" in stale.error.message
    assert _state(server, "C3") == before

    again = _calculate(stub, oil_receipt("FPB", card=C3_CARD))
    assert "first-buy" not in [p.id for p in again.promotions]
    assert not _confirm(stub, "FPB", again.due).HasField("error")


def test_a_condition_added_to_a_promotion_after_the_calculation_makes_the_confirm_stale(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path
) -> None:
    """Documented (promotions §9, protocol): the conditions are the promotion's as it is now."""
    promotion: dict[str, Any] = {
        "id": "welcome", "name": "Добро пожаловать", "audience": {"members_only": True},
        "reward": {"type": "points_fixed", "points": 50000},
    }
    _import_promotions(server, tmp_path, promotion)
    bought = _calculate(stub, oil_receipt("WPA", card=C3_CARD))
    assert not _confirm(stub, "WPA", bought.due).HasField("error")
    calc = _calculate(stub, oil_receipt("WPB", card=C3_CARD))
    assert "welcome" in [p.id for p in calc.promotions]
    _import_promotions(server, tmp_path, {**promotion, "conditions": {"first_purchase": True}})
    before = _state(server, "C3")
    stale = _confirm(stub, "WPB", calc.due)
    assert (stale.error.code, stale.error.reason) == ("conflict", "stale")
    assert "welcome" in stale.error.message
    assert _state(server, "C3") == before


def test_a_counter_goal_is_rewarded_once(
    stub: pb_grpc.ProcessingStub, server: CentralServer, tmp_path: Path
) -> None:
    # a stamp card: every purchase stamps, the tenth is rewarded and takes ten stamps
    _import_promotions(server, tmp_path, {
        "id": "stamp", "name": "Штамп", "audience": {"members_only": True},
        "reward": {"type": "none"}, "counters": [{"name": "stamps"}],
    }, {
        "id": "tenth", "name": "Десятая покупка", "audience": {"members_only": True},
        "conditions": {"counter": {"name": "stamps", "at_least": 10}},
        "reward": {"type": "points_fixed", "points": 50000},
        "counters": [{"name": "stamps", "add": -10}],
    })
    with server.repository.transaction() as tx:
        tx.set_counter("C3", "stamps", 9)
        refresh_customer(tx, "C3", central_now())
    first = _calculate(stub, oil_receipt("CTA", card=C3_CARD))
    second = _calculate(stub, oil_receipt("CTB", card=C3_CARD))
    assert "tenth" in [p.id for p in second.promotions]
    assert not _confirm(stub, "CTA", first.due).HasField("error")
    before = _state(server, "C3")
    assert before[3] == {"stamps": 0}

    stale = _confirm(stub, "CTB", second.due)
    assert (stale.error.code, stale.error.reason) == ("conflict", "stale")
    assert "stamps" in stale.error.message
    assert _state(server, "C3") == before


def test_a_confirm_that_still_holds_goes_through_and_repeats_the_same(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    # the balance moved between calculate and confirm, but still covers the redemption
    first = _calculate(stub, _bread("OKA", 5000))
    second = _calculate(stub, _bread("OKB", 5000))
    assert not _confirm(stub, "OKA", first.due).HasField("error")
    confirmed = _confirm(stub, "OKB", second.due, rid="confirm-OKB")
    assert not confirmed.HasField("error")
    assert confirmed.points.redeemed == 5000
    # repeated, under the same id or another one: the kept confirmation, not stale
    assert _confirm(stub, "OKB", second.due, rid="confirm-OKB") == confirmed
    assert _confirm(stub, "OKB", second.due) == confirmed
    assert ledger_sum(server, "C2") == 12500 - 10000 + first.points.accrue \
        + second.points.accrue
