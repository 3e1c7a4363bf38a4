"""The receipt lifecycle over a real loopback gRPC server (register protocol §2.3–2.4, §3)."""

from __future__ import annotations

import pytest

from central.clock import NOW_ENV
from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx, fiscal, oil_receipt
from tests.central.helpers import ledger_sum, sell


def test_worked_example_calculate_confirm_refund(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("R1")))
    assert not calc.HasField("error")
    c = calc.calculation
    # promotions spec §4: oil 31980 − 4797; bread 4500
    assert (c.total, c.discount, c.due) == (36480, 4797, 31683)
    assert c.customer.id == "C1"
    assert c.points.balance == 340000
    confirm = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="R1", due=c.due,
                                             fiscal=fiscal()))
    assert not confirm.HasField("error")
    assert confirm.mode == "online"
    assert confirm.points.accrued == c.points.accrue
    assert confirm.points.balance == 340000 + c.points.accrue
    assert ledger_sum(server, "C1") == confirm.points.balance

    refund = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F1", receipt_id="R1"))
    assert not refund.HasField("error")
    assert refund.points.reversed == c.points.accrue
    assert refund.points.balance == 340000
    assert [(m.target, m.text) for m in refund.messages] == [
        ("cashier", "Анна К., gold, 3 400,00 баллов")]
    assert ledger_sum(server, "C1") == 340000


def test_repeat_returns_first_answer_and_reuse_is_conflict(stub: pb_grpc.ProcessingStub) -> None:
    first = stub.Calculate(pb.CalculateRequest(context=ctx(rid="same"), receipt=oil_receipt("R2")))
    again = stub.Calculate(pb.CalculateRequest(context=ctx(rid="same"), receipt=oil_receipt("R2")))
    assert again == first
    other = stub.Calculate(
        pb.CalculateRequest(context=ctx(rid="same"), receipt=oil_receipt("R2", oil=3))
    )
    assert other.error.code == "conflict"
    assert other.error.reason == "id_reused"
    # the same id in another store is another request
    elsewhere = stub.Calculate(
        pb.CalculateRequest(context=ctx("S002", rid="same"), receipt=oil_receipt("R2", oil=3))
    )
    assert not elsewhere.HasField("error")


def test_repeated_confirm_does_not_move_points_twice(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("R3")))
    request = pb.ConfirmRequest(context=ctx(rid="confirm-R3"), receipt_id="R3",
                                due=calc.calculation.due, fiscal=fiscal())
    first = stub.Confirm(request)
    second = stub.Confirm(request)
    assert first == second
    # under another id with the same fiscal: the kept confirmation
    third = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="R3",
                                           due=calc.calculation.due, fiscal=fiscal()))
    assert third == first
    assert ledger_sum(server, "C1") == 340000 + calc.calculation.points.accrue


def test_confirm_with_other_fiscal_is_conflict_confirmed(stub: pb_grpc.ProcessingStub) -> None:
    calc, _ = sell(stub, "R4")
    other = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="R4",
                                           due=calc.calculation.due, fiscal=fiscal("2002")))
    assert (other.error.code, other.error.reason) == ("conflict", "confirmed")


def test_stale_due_changes_nothing(stub: pb_grpc.ProcessingStub, server: CentralServer) -> None:
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("R5")))
    stale = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="R5",
                                           due=calc.calculation.due + 1, fiscal=fiscal()))
    assert (stale.error.code, stale.error.reason, stale.error.field) == ("conflict", "stale", "due")
    assert ledger_sum(server, "C1") == 340000
    # the receipt is still open: the right due confirms it
    ok = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="R5",
                                        due=calc.calculation.due, fiscal=fiscal()))
    assert not ok.HasField("error")


def test_second_calculate_replaces_the_first(stub: pb_grpc.ProcessingStub) -> None:
    first = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("R6")))
    second = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("R6", oil=1)))
    assert second.calculation.due != first.calculation.due
    old = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="R6",
                                         due=first.calculation.due, fiscal=fiscal()))
    assert old.error.reason == "stale"


def test_lifecycle_table(stub: pb_grpc.ProcessingStub) -> None:
    # unknown
    assert stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="U1", due=1)).error.code \
        == "not_found"
    unknown_cancel = stub.Cancel(pb.CancelRequest(context=ctx(), receipt_id="U1"))
    assert not unknown_cancel.HasField("error")
    assert unknown_cancel.receipt_id == "U1"
    refund = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F-U1", receipt_id="U1"))
    assert (refund.error.code, refund.error.field) == ("not_found", "receipt_id")
    # open
    stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("L1")))
    refund = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F-L1", receipt_id="L1"))
    assert (refund.error.code, refund.error.reason) == ("conflict", "open")
    assert not stub.Cancel(pb.CancelRequest(context=ctx(), receipt_id="L1")).HasField("error")
    # cancelled
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("L1")))
    assert (calc.error.code, calc.error.reason) == ("conflict", "cancelled")
    confirm = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="L1", due=1))
    assert confirm.error.reason == "cancelled"
    assert not stub.Cancel(pb.CancelRequest(context=ctx(), receipt_id="L1")).HasField("error")
    refund = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F-L1b", receipt_id="L1"))
    assert refund.error.reason == "cancelled"
    # confirmed
    sell(stub, "L2")
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("L2")))
    assert calc.error.reason == "confirmed"
    cancel = stub.Cancel(pb.CancelRequest(context=ctx(), receipt_id="L2"))
    assert (cancel.error.code, cancel.error.reason) == ("conflict", "confirmed")


def test_open_receipt_older_than_seven_days_counts_as_cancelled(
    stub: pb_grpc.ProcessingStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("OLD")))
    monkeypatch.setenv(NOW_ENV, "2026-11-30T10:21:00+03:00")
    late = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="OLD",
                                          due=calc.calculation.due, fiscal=fiscal()))
    assert (late.error.code, late.error.reason) == ("conflict", "cancelled")


def test_open_receipt_within_seven_days_confirms(
    stub: pb_grpc.ProcessingStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("WEEK")))
    monkeypatch.setenv(NOW_ENV, "2026-11-30T10:19:00+03:00")
    ok = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="WEEK",
                                        due=calc.calculation.due, fiscal=fiscal()))
    assert not ok.HasField("error")


def test_partial_refunds_add_up_and_over_refund_is_conflict(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    calc, _ = sell(stub, "P1", oil=3)
    accrued = calc.calculation.points.accrue
    parts = []
    for index in range(3):
        reply = stub.Refund(pb.RefundRequest(
            context=ctx(), refund_id=f"P1-{index}", receipt_id="P1",
            lines=[pb.RefundLine(n=1, quantity_milli=1000)]))
        assert not reply.HasField("error"), reply.error
        parts.append(reply.points.reversed)
    over = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="P1-x", receipt_id="P1",
                                        lines=[pb.RefundLine(n=1, quantity_milli=1000)]))
    assert (over.error.code, over.error.reason) == ("conflict", "over_refund")
    assert {(line.n, line.quantity_milli) for line in over.error.remaining} == {(2, 1000)}
    rest = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="P1-rest", receipt_id="P1"))
    assert not rest.HasField("error")
    assert sum(parts) + rest.points.reversed == accrued
    assert ledger_sum(server, "C1") == 340000


def test_refund_id_is_idempotent_and_reuse_is_conflict(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    sell(stub, "P2", oil=2)
    line = [pb.RefundLine(n=1, quantity_milli=1000)]
    first = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F2", receipt_id="P2",
                                         lines=line))
    balance = ledger_sum(server, "C1")
    again = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F2", receipt_id="P2",
                                         lines=line))
    assert again == first
    assert ledger_sum(server, "C1") == balance
    other = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F2", receipt_id="P2",
                                         lines=[pb.RefundLine(n=2, quantity_milli=1000)]))
    assert (other.error.code, other.error.reason) == ("conflict", "id_reused")


def test_redemption_moves_the_ledger(stub: pb_grpc.ProcessingStub, server: CentralServer) -> None:
    calc, confirm = sell(stub, "RD1", redeem=10000)
    assert calc.calculation.points.redeem == 10000
    assert confirm.points.redeemed == 10000
    assert confirm.points.balance == 340000 - 10000 + confirm.points.accrued
    assert ledger_sum(server, "C1") == confirm.points.balance


def test_coupon_is_spent_once(stub: pb_grpc.ProcessingStub) -> None:
    first, _ = sell(stub, "CP1", oil=6, coupons=("WELCOME-7F3K",))
    assert "welcome-coupon" in [p.id for p in first.calculation.promotions]
    second = stub.Calculate(pb.CalculateRequest(
        context=ctx(), receipt=oil_receipt("CP2", oil=6, coupons=("WELCOME-7F3K",))))
    assert "welcome-coupon" not in [p.id for p in second.calculation.promotions]


def test_identify_by_card_phone_token_and_not_found(stub: pb_grpc.ProcessingStub) -> None:
    by_card = stub.Identify(pb.IdentifyRequest(context=ctx(), customer=pb.CustomerRef(card=CARD)))
    assert (by_card.customer.id, by_card.customer.status, by_card.customer.balance) == (
        "C1", "gold", 340000)
    assert [offer.id for offer in by_card.offers] == ["po-coffee"]
    by_phone = stub.Identify(pb.IdentifyRequest(
        context=ctx(), customer=pb.CustomerRef(phone="+7 (916) 123-45-67")))
    assert by_phone.customer.id == "C1"
    by_token = stub.Balance(pb.IdentifyRequest(
        context=ctx(), customer=pb.CustomerRef(token="app-c3-token")))
    assert (by_token.customer.id, by_token.customer.balance) == ("C3", 0)
    missing = stub.Balance(pb.IdentifyRequest(context=ctx(),
                                              customer=pb.CustomerRef(card="000")))
    assert (missing.error.code, missing.error.field) == ("not_found", "customer")
    empty = stub.Identify(pb.IdentifyRequest(context=ctx(), customer=pb.CustomerRef()))
    assert (empty.error.code, empty.error.field) == ("invalid", "customer")


def test_unknown_customer_prices_without_one(stub: pb_grpc.ProcessingStub) -> None:
    reply = stub.Calculate(pb.CalculateRequest(context=ctx(),
                                               receipt=oil_receipt("NC", card="1111")))
    assert not reply.HasField("error")
    assert not reply.calculation.HasField("customer")
    assert reply.calculation.points.accrue == 0


def test_invalid_fields_are_named(stub: pb_grpc.ProcessingStub) -> None:
    # a zone that does not exist, a folder of the zone database, a name too long for a file
    for number, zone in enumerate(["Mars/Olympus", "Europe", "A" * 300]):
        bad_tz = pb.Context(store="S001", request_id=f"tz{number}", timezone=zone)
        reply = stub.Calculate(pb.CalculateRequest(context=bad_tz, receipt=oil_receipt("T1")))
        assert (reply.error.code, reply.error.field) == ("invalid", "context.timezone")
    receipt = oil_receipt("T2")
    receipt.lines[1].n = 1
    reply = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
    assert reply.error.code == "invalid"
    assert reply.error.field.startswith("receipt.lines[1]")
    receipt = oil_receipt("T3")
    receipt.lines[1].amount = 10**9
    reply = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
    assert (reply.error.code, reply.error.field) == ("invalid", "receipt.lines[1].amount")


def test_bad_opened_at_and_missing_store_are_invalid(stub: pb_grpc.ProcessingStub) -> None:
    receipt = oil_receipt("T4")
    receipt.opened_at = "yesterday"
    reply = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
    assert (reply.error.code, reply.error.field) == ("invalid", "receipt.opened_at")
    no_store = pb.Context(request_id="x", timezone="Europe/Moscow")
    reply = stub.Calculate(pb.CalculateRequest(context=no_store, receipt=oil_receipt("T5")))
    assert (reply.error.code, reply.error.field) == ("invalid", "context.store")


@pytest.mark.parametrize(
    "opened_at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+03:00", "3000-01-01T00:00:00Z"]
)
def test_an_opened_at_no_zone_can_hold_is_invalid_not_an_internal_error(
    stub: pb_grpc.ProcessingStub, opened_at: str
) -> None:
    receipt = oil_receipt("T6")
    receipt.opened_at = opened_at
    reply = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
    assert (reply.error.code, reply.error.field) == ("invalid", "receipt.opened_at")
    assert "between 1900-01-01 and 2999-12-31" in reply.error.message


def test_identify_answers_a_cashier_line(stub: pb_grpc.ProcessingStub) -> None:
    reply = stub.Identify(pb.IdentifyRequest(context=ctx(), customer=pb.CustomerRef(card=CARD)))
    assert [(m.target, m.text) for m in reply.messages] == [
        ("cashier", "Анна К., gold, 3 400,00 баллов")]


def test_kept_answers_are_forgotten_after_48_hours(
    stub: pb_grpc.ProcessingStub, sync_stub: pb_grpc.SyncStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.Calculate(pb.CalculateRequest(context=ctx(rid="old-id"), receipt=oil_receipt("H1")))
    monkeypatch.setenv(NOW_ENV, "2026-11-25T10:21:00+03:00")
    list(sync_stub.Pull(pb.PullRequest(store="S001", since=0)))  # housekeeping runs with Pull
    reply = stub.Calculate(pb.CalculateRequest(context=ctx(rid="old-id"),
                                               receipt=oil_receipt("H2")))
    assert not reply.HasField("error")
    assert reply.calculation.receipt_id == "H2"


def test_central_reads_the_receipt_as_strictly_as_the_register_protocol(
    stub: pb_grpc.ProcessingStub,
) -> None:
    def refused(receipt: pb.Receipt) -> tuple[str, str]:
        reply = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=receipt))
        return reply.error.code, reply.error.field

    huge = oil_receipt("Q1")
    huge.lines[0].quantity_milli = 2**63 - 1
    assert refused(huge) == ("invalid", "receipt.lines[0].quantity")
    far = oil_receipt("Q2")
    far.lines[0].n = 2**31 - 1
    assert refused(far) == ("invalid", "receipt.lines[0].n")
    assert refused(oil_receipt("R\x00\x1b[31m")) == ("invalid", "receipt.id")
    for text in ["2026-12-04 12:00:00+03:00", "2026-W49-5T12:00+03:00"]:
        spaced = oil_receipt("Q3")
        spaced.opened_at = text
        assert refused(spaced) == ("invalid", "receipt.opened_at")


def test_a_refund_naming_a_line_twice_is_invalid(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    sell(stub, "P9", oil=2)
    balance = ledger_sum(server, "C1")
    twice = [pb.RefundLine(n=1, quantity_milli=300), pb.RefundLine(n=1, quantity_milli=300)]
    reply = stub.Refund(pb.RefundRequest(context=ctx(), refund_id="F9", receipt_id="P9",
                                         lines=twice))
    assert (reply.error.code, reply.error.field) == ("invalid", "lines[1].n")
    assert ledger_sum(server, "C1") == balance


def test_refund_at_another_store_of_the_chain(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    calc, _ = sell(stub, "CHAIN-1")  # sold at S001
    request = pb.RefundRequest(context=ctx("S002"), refund_id="F-CH1", receipt_id="CHAIN-1",
                               lines=[pb.RefundLine(n=1, quantity_milli=1000)])
    refund = stub.Refund(request)
    assert not refund.HasField("error"), refund.error
    assert refund.points.reversed > 0
    assert stub.Refund(request) == refund  # repeated: the kept answer
    rest = stub.Refund(pb.RefundRequest(context=ctx("S001"), refund_id="F-CH1b",
                                        receipt_id="CHAIN-1"))
    assert not rest.HasField("error"), rest.error
    assert refund.points.reversed + rest.points.reversed == calc.calculation.points.accrue
    assert ledger_sum(server, "C1") == 340000
    # nothing remains, whichever store asks
    over = stub.Refund(pb.RefundRequest(context=ctx("S002"), refund_id="F-CH1c",
                                        receipt_id="CHAIN-1"))
    assert (over.error.code, over.error.reason) == ("conflict", "over_refund")
    with server.repository.read() as tx:
        reasons = [row.reason for row in tx.ledger("C1") if row.kind == "refund"]
    assert reasons[0] == "refund F-CH1 at S002: accrual"


def test_refund_of_an_id_sold_at_several_stores_is_not_found_naming_them(
    stub: pb_grpc.ProcessingStub,
) -> None:
    sell(stub, "TWICE", store="S001")
    sell(stub, "TWICE", store="S003")
    refund = stub.Refund(pb.RefundRequest(context=ctx("S002"), refund_id="F-TW",
                                          receipt_id="TWICE"))
    assert (refund.error.code, refund.error.field) == ("not_found", "receipt_id")
    assert "S001, S003" in refund.error.message
    # at a store that sold it, its own receipt
    own = stub.Refund(pb.RefundRequest(context=ctx("S003"), refund_id="F-TW",
                                       receipt_id="TWICE"))
    assert not own.HasField("error"), own.error
