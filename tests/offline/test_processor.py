"""The offline processor over a real edge database: the §2.4 lifecycle, journaling, records
of online answers, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty import CustomerRef
from offline.db import EdgeDatabase
from offline.outbox import Outbox
from offline.processor import (
    OFFLINE_LOOKUP_NOTE,
    OFFLINE_NOTE,
    UNKNOWN_REFUND_NOTE,
    OfflineProcessor,
)
from protos import tillgate_pb2 as pb
from tests.offline.edge import (
    ACTIVE,
    DEFAULT_DOCS,
    STORE,
    calculate_request,
    confirm_request,
    context,
    seed,
)

NOW = 1_795_418_100.0  # 2026-11-23T10:15:00+03:00


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def edge(tmp_path: Path, clock: Clock) -> OfflineProcessor:
    db = EdgeDatabase(tmp_path / "cache.db")
    seed(db)
    return OfflineProcessor(db, store=STORE, clock=clock)


def _journal(edge: OfflineProcessor) -> list[pb.JournalEntry]:
    return edge.outbox.pending(1000)


def _ack_all(edge: OfflineProcessor) -> None:
    entries = _journal(edge)
    edge.outbox.record_acks(
        entries,
        [pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="applied") for e in entries],
    )


def test_empty_cache_is_unavailable(tmp_path: Path) -> None:
    edge = OfflineProcessor(EdgeDatabase(tmp_path / "cache.db"), store=STORE)
    reply = edge.calculate(calculate_request())
    assert reply.error.code == "unavailable"
    assert reply.error.reason == "cache_empty"
    identify = edge.identify(
        pb.IdentifyRequest(context=context(), customer=pb.CustomerRef(card="1"))
    )
    assert identify.error.reason == "cache_empty"
    assert edge.outbox.depth() == 0


def test_offline_calculation_matches_the_worked_example_and_is_journaled(
    edge: OfflineProcessor,
) -> None:
    request = calculate_request()
    reply = edge.calculate(request)
    assert not reply.HasField("error")
    calc = reply.calculation
    assert calc.mode == "offline"
    assert [(line.discount, line.amount, line.points) for line in calc.lines] == [
        (4797, 27183, 1359),
        (0, 4500, 225),
    ]
    assert (calc.total, calc.discount, calc.due, calc.points.accrue) == (36480, 4797, 31683, 1584)
    assert not calc.points.HasField("balance")
    assert not calc.customer.HasField("balance")
    assert calc.customer.id == "C1"
    texts = [m.text for m in calc.messages if m.target == "cashier"]
    assert texts[0] == "Анна К., gold"
    assert texts[-1] == OFFLINE_NOTE

    [entry] = _journal(edge)
    assert entry.store == STORE
    assert entry.receipt_id == "R1"
    assert entry.WhichOneof("operation") == "calculate"
    assert entry.calculate.request == request
    assert entry.calculate.given == calc
    assert edge.owns_receipt("R1")
    _ack_all(edge)
    assert not edge.owns_receipt("R1")


def test_confirm_finalizes_the_last_calculation(edge: OfflineProcessor) -> None:
    edge.calculate(calculate_request(card=None))
    second = edge.calculate(calculate_request()).calculation  # replaces the first
    stale = edge.confirm(confirm_request("R1", due=second.due + 1))
    assert stale.error.reason == "stale"
    assert stale.error.field == "due", "named as central names it"
    assert len(_journal(edge)) == 2, "a stale confirm changes nothing"

    reply = edge.confirm(confirm_request("R1", due=second.due))
    assert not reply.HasField("error")
    assert reply.mode == "offline"
    assert (reply.points.accrued, reply.points.redeemed) == (1584, 0)
    assert not reply.points.HasField("balance")
    assert reply.messages[-1].text == OFFLINE_NOTE
    entry = _journal(edge)[-1]
    assert entry.WhichOneof("operation") == "confirm"
    assert entry.confirm.calculation == second
    assert entry.confirm.receipt.id == "R1"
    assert entry.confirm.given == reply

    again = edge.confirm(confirm_request("R1", due=second.due))
    assert again == reply
    other = edge.confirm(confirm_request("R1", due=second.due, document="1002"))
    assert other.error.code == "conflict"
    assert other.error.reason == "confirmed"
    assert edge.calculate(calculate_request()).error.reason == "confirmed"
    assert edge.cancel(pb.CancelRequest(context=context(), receipt_id="R1")).error.reason == (
        "confirmed"
    )
    assert len(_journal(edge)) == 3


def test_unknown_receipts(edge: OfflineProcessor) -> None:
    missing = edge.confirm(confirm_request("R404", due=100))
    assert missing.error.code == "not_found"
    assert missing.error.field == "receipt_id"
    cancel = edge.cancel(pb.CancelRequest(context=context(), receipt_id="R404"))
    assert not cancel.HasField("error")
    assert cancel.receipt_id == "R404"
    refund = edge.refund(pb.RefundRequest(context=context(), refund_id="F1", receipt_id="R405"))
    assert not refund.HasField("error")
    assert refund.mode == "offline"
    assert not refund.HasField("points")
    assert refund.messages[0].text == UNKNOWN_REFUND_NOTE
    operations = [(e.receipt_id, e.WhichOneof("operation")) for e in _journal(edge)]
    assert operations == [("R404", "cancel"), ("R405", "refund")]


def test_cancel_lifecycle(edge: OfflineProcessor) -> None:
    calc = edge.calculate(calculate_request()).calculation
    assert not edge.cancel(pb.CancelRequest(context=context(), receipt_id="R1")).HasField("error")
    assert edge.confirm(confirm_request("R1", calc.due)).error.reason == "cancelled"
    assert edge.calculate(calculate_request()).error.reason == "cancelled"
    refund = edge.refund(pb.RefundRequest(context=context(), refund_id="F1", receipt_id="R1"))
    assert refund.error.reason == "cancelled"
    again = edge.cancel(pb.CancelRequest(context=context(), receipt_id="R1"))
    assert not again.HasField("error")
    assert [e.WhichOneof("operation") for e in _journal(edge)] == ["calculate", "cancel"]


def test_open_receipt_expires_after_seven_days(edge: OfflineProcessor, clock: Clock) -> None:
    calc = edge.calculate(calculate_request()).calculation
    clock.now += 7 * 86400 + 1
    assert edge.confirm(confirm_request("R1", calc.due)).error.reason == "cancelled"


def test_the_seven_days_count_from_the_last_calculate_as_on_central(
    edge: OfflineProcessor, clock: Clock
) -> None:
    edge.calculate(calculate_request())
    clock.now += 6 * 86400
    calc = edge.calculate(calculate_request()).calculation  # the register priced it again
    clock.now += 86400 + 3600  # 7 days and an hour after the first calculate
    confirm = edge.confirm(confirm_request("R1", calc.due))
    assert not confirm.HasField("error"), confirm.error


def test_refunds_partial_then_rest_then_over(edge: OfflineProcessor) -> None:
    calc = edge.calculate(calculate_request()).calculation
    edge.confirm(confirm_request("R1", calc.due))
    assert (
        edge.refund(
            pb.RefundRequest(context=context(), refund_id="F0", receipt_id="R2")
        ).points.ByteSize()
        == 0
    )
    first = edge.refund(
        pb.RefundRequest(
            context=context(),
            refund_id="F1",
            receipt_id="R1",
            lines=[pb.RefundLine(n=1, quantity_milli=1000)],
        )
    )
    assert not first.HasField("error")
    assert first.HasField("points")
    assert 0 < first.points.reversed < calc.points.accrue
    assert not first.points.HasField("balance")
    # the customer line as central gives it, without the balance unknown offline
    assert (first.messages[0].target, first.messages[0].text) == ("cashier", "Анна К., gold")
    over = edge.refund(
        pb.RefundRequest(
            context=context(),
            refund_id="F3",
            receipt_id="R1",
            lines=[pb.RefundLine(n=1, quantity_milli=2000)],
        )
    )
    assert over.error.code == "conflict"
    assert over.error.reason == "over_refund"
    assert over.error.field == "lines[0].quantity"
    assert [(r.n, r.quantity_milli) for r in over.error.remaining] == [(1, 1000), (2, 1000)]
    rest = edge.refund(pb.RefundRequest(context=context(), refund_id="F2", receipt_id="R1"))
    assert first.points.reversed + rest.points.reversed == calc.points.accrue
    nothing = edge.refund(pb.RefundRequest(context=context(), refund_id="F4", receipt_id="R1"))
    assert nothing.error.reason == "over_refund"
    assert list(nothing.error.remaining) == []
    kept = edge.refund(pb.RefundRequest(context=context("q9"), refund_id="F1", receipt_id="R1",
                                        lines=[pb.RefundLine(n=1, quantity_milli=1000)]))
    assert kept == first
    reused = edge.refund(pb.RefundRequest(context=context(), refund_id="F1", receipt_id="R9"))
    assert reused.error.reason == "id_reused"


def test_state_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    db_path = tmp_path / "cache.db"
    db = EdgeDatabase(db_path)
    seed(db)
    calc = OfflineProcessor(db, store=STORE, clock=clock).calculate(calculate_request()).calculation
    db.close()
    reopened = OfflineProcessor(EdgeDatabase(db_path), store=STORE, clock=clock)
    assert reopened.owns_receipt("R1")
    reply = reopened.confirm(confirm_request("R1", calc.due))
    assert not reply.HasField("error")
    assert [e.seq for e in _journal(reopened)] == [1, 2]


def test_calculated_online_confirmed_offline(edge: OfflineProcessor) -> None:
    request = calculate_request("R7")
    online = pb.Calculation()
    online.CopyFrom(edge.calculate(calculate_request("R-shadow")).calculation)
    online.receipt_id = "R7"
    online.mode = "online"
    online.points.balance = 340000
    edge.record_online_calculation(request, pb.CalculateReply(calculation=online))
    assert not edge.owns_receipt("R7")
    reply = edge.confirm(confirm_request("R7", online.due))
    assert reply.mode == "offline"
    entry = _journal(edge)[-1]
    assert entry.confirm.calculation == online
    assert entry.confirm.receipt == request.receipt
    assert edge.owns_receipt("R7")


def test_confirmed_online_refunded_offline(edge: OfflineProcessor) -> None:
    request = calculate_request("R8")
    online = pb.Calculation()
    online.CopyFrom(edge.calculate(calculate_request("R-shadow")).calculation)
    online.receipt_id = "R8"
    online.mode = "online"
    edge.record_online_calculation(request, pb.CalculateReply(calculation=online))
    confirm = confirm_request("R8", online.due)
    online_reply = pb.ConfirmReply(receipt_id="R8", mode="online")
    edge.record_online_confirm(confirm, online_reply)
    assert edge.confirm(confirm) == online_reply, "a repeat gets central's confirmation"
    partial = pb.RefundRequest(
        context=context(),
        refund_id="F1",
        receipt_id="R8",
        lines=[pb.RefundLine(n=1, quantity_milli=2000)],
    )
    edge.record_online_refund(partial, pb.RefundReply(refund_id="F1", mode="online"))
    rest = edge.refund(pb.RefundRequest(context=context(), refund_id="F2", receipt_id="R8"))
    assert rest.mode == "offline"
    assert rest.points.reversed == 225, "only the bread line remained"
    assert (
        edge.cancel(pb.CancelRequest(context=context(), receipt_id="R8")).error.reason
        == "confirmed"
    )


def test_online_cancel_is_recorded(edge: OfflineProcessor) -> None:
    request = calculate_request("R9")
    online = pb.Calculation()
    online.CopyFrom(edge.calculate(calculate_request("R-shadow")).calculation)
    online.receipt_id = "R9"
    edge.record_online_calculation(request, pb.CalculateReply(calculation=online))
    edge.record_online_cancel(
        pb.CancelRequest(context=context(), receipt_id="R9"), pb.CancelReply(receipt_id="R9")
    )
    assert edge.confirm(confirm_request("R9", online.due)).error.reason == "cancelled"


def test_identify_and_balance_offline(edge: OfflineProcessor) -> None:
    reply = edge.identify(
        pb.IdentifyRequest(context=context(), customer=pb.CustomerRef(phone="+7 916 123-45-67"))
    )
    assert reply.customer.id == "C1"
    assert reply.customer.status == "gold"
    assert not reply.customer.HasField("balance")
    assert reply.customer.redeem_max == 0, "redemption is denied offline by default"
    # nothing is journaled for a lookup: the note says the balance is missing, not "saved"
    assert reply.messages[-1].text == OFFLINE_LOOKUP_NOTE
    assert edge.outbox.depth() == 0
    missing = edge.balance(pb.IdentifyRequest(context=context(), customer=pb.CustomerRef(card="0")))
    assert missing.error.code == "not_found"
    assert missing.error.field == "customer"
    invalid = edge.balance(pb.IdentifyRequest(context=context(), customer=pb.CustomerRef()))
    assert invalid.error.code == "invalid"


def test_unknown_customer_is_priced_without_one(edge: OfflineProcessor) -> None:
    calc = edge.calculate(calculate_request(card="0000")).calculation
    assert not calc.HasField("customer")
    assert calc.points.accrue == 0
    assert calc.discount == 4797


def test_invalid_receipt_names_the_field(edge: OfflineProcessor) -> None:
    request = calculate_request()
    request.receipt.lines[1].amount = 999_999
    reply = edge.calculate(request)
    assert reply.error.code == "invalid"
    assert reply.error.field == "receipt.lines[1].amount"
    assert edge.outbox.depth() == 0


def test_online_identify_is_remembered_for_sync(edge: OfflineProcessor) -> None:
    edge.record_online_identify(pb.IdentifyReply(customer=pb.CustomerSummary(id="C77")))
    rows = edge.db.query("SELECT customer_id FROM seen_customers")
    assert [row["customer_id"] for row in rows] == ["C77"]


def test_journal_is_durable_before_the_method_returns(tmp_path: Path, clock: Clock) -> None:
    db_path = tmp_path / "cache.db"
    db = EdgeDatabase(db_path)
    seed(db)
    edge = OfflineProcessor(db, store=STORE, clock=clock)
    edge.calculate(calculate_request())
    # another connection (another process would see the same) already sees the entry
    other = Outbox(EdgeDatabase(db_path), store=STORE)
    assert [e.receipt_id for e in other.pending(10)] == ["R1"]


def test_purge_forgets_finished_receipts_but_not_pending_ones(
    edge: OfflineProcessor, clock: Clock
) -> None:
    calc = edge.calculate(calculate_request("R1")).calculation
    edge.confirm(confirm_request("R1", calc.due))
    edge.calculate(calculate_request("R2"))
    edge.cancel(pb.CancelRequest(context=context(), receipt_id="R2"))
    clock.now += 91 * 86400
    assert edge.purge() == 0, "their journal entries still wait for central"
    _ack_all(edge)
    assert edge.purge() == 2
    assert edge.confirm(confirm_request("R1", calc.due)).error.code == "not_found"


def test_refund_of_an_unknown_line_names_it(edge: OfflineProcessor) -> None:
    calc = edge.calculate(calculate_request()).calculation
    edge.confirm(confirm_request("R1", calc.due))
    reply = edge.refund(
        pb.RefundRequest(
            context=context(),
            refund_id="F1",
            receipt_id="R1",
            lines=[pb.RefundLine(n=9, quantity_milli=1000)],
        )
    )
    assert reply.error.code == "invalid"
    assert reply.error.field == "lines[0].n"


def test_receipt_without_opened_at_is_priced_and_journaled_at_the_edge_clock(
    edge: OfflineProcessor,
) -> None:
    request = calculate_request(opened_at="")
    reply = edge.calculate(request)
    assert not reply.HasField("error")
    [entry] = _journal(edge)
    assert entry.calculate.request.receipt.opened_at == "2026-11-23T10:15:00+03:00"
    assert entry.calculate.given == reply.calculation


WELCOME = {"id": "welcome", "name": "Welcome", "active": ACTIVE, "priority": 5,
           "conditions": {"first_purchase": True}, "reward": {"type": "points_fixed",
                                                             "points": 777}}
VISITS = {"id": "visits", "name": "Visits", "active": ACTIVE, "priority": 4,
          "counters": [{"name": "visits", "add": 1}], "reward": {"type": "none"}}
SECOND = {"id": "second-visit", "name": "Second visit", "active": ACTIVE, "priority": 3,
          "conditions": {"counter": {"name": "visits", "at_least": 2}},
          "reward": {"type": "points_fixed", "points": 5000}}


def _applied(reply: pb.CalculateReply) -> list[str]:
    return [p.id for p in reply.calculation.promotions]


def test_purchases_confirmed_offline_count_until_a_sync_brings_them(
    tmp_path: Path, clock: Clock
) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    seed(db, [*DEFAULT_DOCS, ("promotion", WELCOME), ("promotion", VISITS),
              ("promotion", SECOND)])
    edge = OfflineProcessor(db, store=STORE, clock=clock)
    first = edge.calculate(calculate_request("R1"))
    assert "welcome" in _applied(first)
    assert "second-visit" not in _applied(first)
    edge.confirm(confirm_request("R1", first.calculation.due))
    assert edge.holds_unsent(CustomerRef("card", "7700001234567"), ())
    # the first purchase and its visit count on the next offline receipt, as central counts
    second = edge.calculate(calculate_request("R2"))
    assert "welcome" not in _applied(second)
    assert "second-visit" in _applied(second)
    _ack_all(edge)  # central has them now: online pricing may answer again
    assert not edge.holds_unsent(CustomerRef("card", "7700001234567"), ())
    assert "welcome" not in _applied(edge.calculate(calculate_request("R3")))


def test_a_coupon_spent_offline_keeps_its_receipts_on_the_edge_until_uploaded(
    edge: OfflineProcessor,
) -> None:
    calc = edge.calculate(calculate_request("R1", card=None, coupons=("SPRING-7F3K",)))
    edge.confirm(confirm_request("R1", calc.calculation.due))
    assert edge.holds_unsent(None, ["spring-7f3k"])
    assert not edge.holds_unsent(None, ["SPRING-OTHER"])
    _ack_all(edge)
    assert not edge.holds_unsent(None, ["SPRING-7F3K"])


def test_a_refund_id_answers_one_refund_only(edge: OfflineProcessor) -> None:
    calc = edge.calculate(calculate_request()).calculation
    edge.confirm(confirm_request("R1", calc.due))

    def refund(n: int, request_id: str) -> pb.RefundReply:
        return edge.refund(pb.RefundRequest(
            context=context(request_id), refund_id="F1", receipt_id="R1",
            lines=[pb.RefundLine(n=n, quantity_milli=1000)]))

    first = refund(1, "q1")
    assert not first.HasField("error")
    assert refund(1, "q2") == first  # the same refund again: the kept answer
    other = refund(2, "q3")  # as central answers it online
    assert (other.error.code, other.error.reason) == ("conflict", "id_reused")
