"""Upload of the edge journal: exactly once, the store's answers kept, rejects kept for review."""

from __future__ import annotations

from central import admin
from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import STORE, ctx, fiscal, oil_receipt
from tests.central.helpers import ledger_sum, sell


def _offline_calculation(
    receipt_id: str, *, accrue: int = 1000, due: int = 30000
) -> pb.Calculation:
    """A calculation as an edge might have given it (deliberately not central's figures)."""
    return pb.Calculation(
        receipt_id=receipt_id, mode="offline",
        customer=pb.CustomerSummary(id="C1", name="Анна К.", status="gold"),
        lines=[pb.LineResult(n=1, discount=31980 - due, amount=due, points=accrue),
               pb.LineResult(n=2, discount=0, amount=4500)],
        total=36480, discount=31980 - due, due=due + 4500,
        points=pb.Points(accrue=accrue, redeem=0, redeem_max=0),
    )


def _confirm_entry(receipt_id: str, seq: int, *, accrued: int = 1000,
                   document: str = "1001") -> pb.JournalEntry:
    calculation = _offline_calculation(receipt_id, accrue=accrued)
    request = pb.ConfirmRequest(context=ctx(), receipt_id=receipt_id, due=calculation.due,
                                fiscal=fiscal(document))
    given = pb.ConfirmReply(receipt_id=receipt_id, mode="offline",
                            points=pb.PointsMovement(accrued=accrued, redeemed=0))
    return pb.JournalEntry(
        store=STORE, receipt_id=receipt_id, seq=seq, at="2026-11-23T10:17:00+03:00",
        confirm=pb.OfflineConfirm(request=request, given=given, calculation=calculation,
                                  receipt=oil_receipt(receipt_id)),
    )


def _whole_refund_entry(receipt_id: str, seq: int) -> pb.JournalEntry:
    """An offline refund of a whole receipt the edge did not know (no points given)."""
    refund_id = f"RF-{receipt_id}"
    return pb.JournalEntry(
        store=STORE, receipt_id=receipt_id, seq=seq, at="2026-11-23T10:18:00+03:00",
        refund=pb.OfflineRefund(
            request=pb.RefundRequest(context=ctx(), refund_id=refund_id, receipt_id=receipt_id),
            given=pb.RefundReply(refund_id=refund_id, mode="offline")),
    )


def _upload(stub: pb_grpc.ProcessingStub, *entries: pb.JournalEntry) -> list[tuple[str, str]]:
    reply = stub.Upload(pb.UploadRequest(store=STORE, entries=list(entries)))
    return [(ack.receipt_id, ack.status) for ack in reply.acks]


def test_offline_confirm_applied_once_with_the_given_points(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    entry = _confirm_entry("OFF1", 1, accrued=1234)
    assert _upload(stub, entry) == [("OFF1", "applied")]
    assert ledger_sum(server, "C1") == 340000 + 1234  # as given, never re-priced
    assert _upload(stub, entry) == [("OFF1", "duplicate")]
    assert ledger_sum(server, "C1") == 340000 + 1234
    rows = {row["receipt_id"]: row for row in admin.receipts_view(server.repository)}
    assert (rows["OFF1"]["state"], rows["OFF1"]["mode"]) == ("confirmed", "offline")
    # the register repeating the confirm online gets the kept (offline) confirmation
    again = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="OFF1",
                                           due=entry.confirm.request.due, fiscal=fiscal()))
    assert not again.HasField("error")
    assert (again.mode, again.points.accrued) == ("offline", 1234)


def test_offline_confirm_finalizes_an_online_open_receipt(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    online = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("OFF2")))
    assert not online.HasField("error")
    assert _upload(stub, _confirm_entry("OFF2", 2, accrued=777)) == [("OFF2", "applied")]
    rows = {row["receipt_id"]: row for row in admin.receipts_view(server.repository)}
    assert (rows["OFF2"]["state"], rows["OFF2"]["mode"]) == ("confirmed", "offline")
    assert ledger_sum(server, "C1") == 340000 + 777


def test_rejected_entry_is_kept_and_does_not_block(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    refund_unknown = _whole_refund_entry("NOPE", 3)
    acks = stub.Upload(pb.UploadRequest(store=STORE, entries=[
        refund_unknown, _confirm_entry("OFF3", 4)])).acks
    assert [(a.seq, a.status) for a in acks] == [(3, "rejected"), (4, "applied")]
    assert "NOPE" in acks[0].message
    kept = admin.journal_view(server.repository, rejected_only=True)
    assert [(r["receipt_id"], r["seq"], r["operation"]) for r in kept] == [("NOPE", 3, "refund")]
    assert "unknown" in kept[0]["message"]
    # a rejected entry sent again is judged again (it changed nothing the first time)
    assert _upload(stub, refund_unknown) == [("NOPE", "rejected")]
    assert len(admin.journal_view(server.repository, rejected_only=True)) == 1


def test_a_rejected_entry_sent_again_after_the_cause_is_fixed_is_applied_once(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    refund = _whole_refund_entry("LATE1", 30)
    assert _upload(stub, refund) == [("LATE1", "rejected")]
    sell(stub, "LATE1")  # the receipt reaches central (say, from a till that was offline)
    balance = ledger_sum(server, "C1")
    assert _upload(stub, refund) == [("LATE1", "applied")]
    assert ledger_sum(server, "C1") < balance  # the refund took its points back
    after = ledger_sum(server, "C1")
    assert _upload(stub, refund) == [("LATE1", "duplicate")]
    assert ledger_sum(server, "C1") == after
    assert admin.journal_view(server.repository, rejected_only=True) == []


def test_offline_refund_cancel_and_calculate(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    _upload(stub, _confirm_entry("OFF4", 5, accrued=1000))
    refund = pb.JournalEntry(
        store=STORE, receipt_id="OFF4", seq=6, at="2026-11-23T11:00:00+03:00",
        refund=pb.OfflineRefund(
            request=pb.RefundRequest(context=ctx(), refund_id="RF4", receipt_id="OFF4"),
            given=pb.RefundReply(refund_id="RF4", mode="offline",
                                 points=pb.RefundPoints(reversed=1000, restored=0))),
    )
    calc = pb.JournalEntry(
        store=STORE, receipt_id="OFF5", seq=7, at="2026-11-23T11:01:00+03:00",
        calculate=pb.OfflineCalculation(
            request=pb.CalculateRequest(context=ctx(), receipt=oil_receipt("OFF5")),
            given=_offline_calculation("OFF5")),
    )
    cancel = pb.JournalEntry(store=STORE, receipt_id="OFF5", seq=8,
                             cancel=pb.CancelRequest(context=ctx(), receipt_id="OFF5"))
    cancel_confirmed = pb.JournalEntry(store=STORE, receipt_id="OFF4", seq=9,
                                       cancel=pb.CancelRequest(context=ctx(), receipt_id="OFF4"))
    assert _upload(stub, refund, calc, cancel, cancel_confirmed) == [
        ("OFF4", "applied"), ("OFF5", "applied"), ("OFF5", "applied"), ("OFF4", "rejected")]
    assert ledger_sum(server, "C1") == 340000
    rows = {row["receipt_id"]: row for row in admin.receipts_view(server.repository)}
    assert rows["OFF4"]["refunded"] == 30000 + 4500
    assert (rows["OFF5"]["state"], rows["OFF5"]["mode"]) == ("cancelled", "offline")
    # A repeat of the refund, under a new request id, gets what the register was told
    # (§2.3), as a confirm does: no balance or customer line it never showed.
    repeat = stub.Refund(pb.RefundRequest(context=ctx(rid="again-RF4"), refund_id="RF4",
                                          receipt_id="OFF4"))
    assert repeat == refund.refund.given


def test_entry_of_another_store_is_rejected(stub: pb_grpc.ProcessingStub) -> None:
    entry = _confirm_entry("OFF6", 10)
    entry.store = "S999"
    assert _upload(stub, entry) == [("OFF6", "rejected")]


def test_offline_cancel_of_a_receipt_central_never_saw_has_no_effect(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    # §2.4: unknown × cancel is "answered, no effect"; the register may sell under that id
    # later (here offline too), and central must keep what the customer was then given.
    cancel = pb.JournalEntry(store=STORE, receipt_id="OFF9", seq=20,
                             cancel=pb.CancelRequest(context=ctx(), receipt_id="OFF9"))
    calc = pb.JournalEntry(
        store=STORE, receipt_id="OFF9", seq=21, at="2026-11-23T11:01:00+03:00",
        calculate=pb.OfflineCalculation(
            request=pb.CalculateRequest(context=ctx(), receipt=oil_receipt("OFF9")),
            given=_offline_calculation("OFF9")),
    )
    assert _upload(stub, cancel, calc, _confirm_entry("OFF9", 22, accrued=1000)) == [
        ("OFF9", "applied"), ("OFF9", "applied"), ("OFF9", "applied")]
    rows = {row["receipt_id"]: row for row in admin.receipts_view(server.repository)}
    assert rows["OFF9"]["state"] == "confirmed"
    assert ledger_sum(server, "C1") == 340000 + 1000


def test_offline_confirm_for_a_customer_central_does_not_know_says_so(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    entry = _confirm_entry("OFF9", 9, accrued=450)
    entry.confirm.calculation.customer.id = "C-GONE"
    reply = stub.Upload(pb.UploadRequest(store=STORE, entries=[entry]))
    note = (
        "customer 'C-GONE' is unknown to central: the 450 points accrued and 0 redeemed "
        "offline were not moved"
    )
    assert [(ack.status, ack.message) for ack in reply.acks] == [("applied", note)]
    rows = {row["receipt_id"]: row for row in admin.receipts_view(server.repository)}
    assert rows["OFF9"]["state"] == "confirmed"  # the sale itself is recorded
    journal = [row for row in admin.journal_view(server.repository) if row["receipt_id"] == "OFF9"]
    assert "is unknown to central" in journal[0]["message"]


def _lost_confirm_entry(
    calc: pb.CalculateReply, confirm: pb.ConfirmReply, seq: int, *, accrued: int
) -> pb.JournalEntry:
    """The store's offline confirm of a receipt central confirmed online (answer lost)."""
    receipt_id = calc.calculation.receipt_id
    request = pb.ConfirmRequest(context=ctx(), receipt_id=receipt_id,
                                due=calc.calculation.due, fiscal=fiscal())
    given = pb.ConfirmReply(
        receipt_id=receipt_id, mode="offline",
        points=pb.PointsMovement(accrued=accrued, redeemed=confirm.points.redeemed, balance=1),
        messages=[pb.Message(target="receipt", text="told offline")])
    return pb.JournalEntry(
        store=STORE, receipt_id=receipt_id, seq=seq, at="2026-11-23T10:17:00+03:00",
        confirm=pb.OfflineConfirm(request=request, given=given, calculation=calc.calculation,
                                  receipt=oil_receipt(receipt_id)))


def test_a_confirm_whose_online_answer_was_lost_repeats_what_the_register_was_told(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    calc, online = sell(stub, "LOST1")
    balance = ledger_sum(server, "C1")
    entry = _lost_confirm_entry(calc, online, 20, accrued=online.points.accrued)
    acks = stub.Upload(pb.UploadRequest(store=STORE, entries=[entry])).acks
    assert [(a.status, a.message) for a in acks] == [
        ("applied", ("already confirmed with the same fiscal data; the store's answer is kept "
                     "for repeats"))]
    assert ledger_sum(server, "C1") == balance  # nothing moved twice
    again = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="LOST1",
                                           due=calc.calculation.due, fiscal=fiscal()))
    assert again == entry.confirm.given


def test_a_lost_confirm_told_other_points_keeps_what_central_moved_and_says_so(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    calc, online = sell(stub, "LOST2")
    entry = _lost_confirm_entry(calc, online, 21, accrued=online.points.accrued + 1)
    (ack,) = stub.Upload(pb.UploadRequest(store=STORE, entries=[entry])).acks
    assert ack.status == "applied"
    assert f"told {online.points.accrued + 1} accrued" in ack.message
    assert f"central moved {online.points.accrued} / 0" in ack.message
    again = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="LOST2",
                                           due=calc.calculation.due, fiscal=fiscal()))
    assert again == online


def test_a_refund_whose_online_answer_was_lost_repeats_what_the_register_was_told(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    sell(stub, "LOST3")
    request = pb.RefundRequest(context=ctx(), refund_id="RF-LOST3", receipt_id="LOST3")
    online = stub.Refund(request)
    assert not online.HasField("error")
    balance = ledger_sum(server, "C1")
    given = pb.RefundReply(refund_id="RF-LOST3", mode="offline", points=pb.RefundPoints(
        reversed=online.points.reversed, restored=online.points.restored, balance=1),
        messages=[pb.Message(target="receipt", text="told offline")])
    entry = pb.JournalEntry(store=STORE, receipt_id="LOST3", seq=22,
                            at="2026-11-23T10:30:00+03:00",
                            refund=pb.OfflineRefund(request=request, given=given))
    (ack,) = stub.Upload(pb.UploadRequest(store=STORE, entries=[entry])).acks
    assert (ack.status, ack.message) == (
        "applied", "refund 'RF-LOST3' was applied before; the store's answer is kept for repeats")
    assert ledger_sum(server, "C1") == balance
    request.context.request_id = "a-new-id"
    assert stub.Refund(request) == given


def test_an_entry_cannot_move_more_points_than_its_receipt_or_any_negative(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    over = _confirm_entry("BAD1", 21, accrued=1000)
    over.confirm.given.points.accrued = 2**63 - 1  # the calculation says 1000
    negative = _confirm_entry("BAD2", 22, accrued=1000)
    negative.confirm.given.points.accrued = -10**12
    assert _upload(stub, over, negative) == [("BAD1", "rejected"), ("BAD2", "rejected")]
    reply = stub.Upload(pb.UploadRequest(store=STORE, entries=[over]))
    assert reply.acks[0].message == (
        "points accrued 9223372036854775807 is outside 0..1000, the receipt's own")
    assert _upload(stub, _confirm_entry("OK1", 23, accrued=1000)) == [("OK1", "applied")]
    refund = pb.JournalEntry(
        store=STORE, receipt_id="OK1", seq=24, at="2026-11-23T11:00:00+03:00",
        refund=pb.OfflineRefund(
            request=pb.RefundRequest(context=ctx(), refund_id="RF-OK1", receipt_id="OK1"),
            given=pb.RefundReply(refund_id="RF-OK1", mode="offline",
                                 points=pb.RefundPoints(reversed=-4 * 10**11,
                                                        restored=4 * 10**11))),
    )
    assert _upload(stub, refund) == [("OK1", "rejected")]
    assert ledger_sum(server, "C1") == 340000 + 1000  # only the sound confirm moved points
    assert stub.Balance(pb.IdentifyRequest(context=ctx(), customer=pb.CustomerRef(
        card="7700001234567"))).customer.balance == 341000


def test_entries_at_unstorable_times_or_seqs_are_refused_alone(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    entries = []
    for seq, at in [(31, "0001-01-01T00:00:00+00:00"), (32, "9999-12-31T23:59:59-14:00"),
                    (33, "2026-11-23T10:17:00")]:
        entry = _confirm_entry(f"T{seq}", seq)
        entry.at = at
        entries.append(entry)
    huge = _confirm_entry("T34", 2**63)
    sound = _confirm_entry("T35", 35)
    reply = stub.Upload(pb.UploadRequest(store=STORE, entries=[*entries, huge, sound]))
    assert [(ack.receipt_id, ack.status) for ack in reply.acks] == [
        ("T31", "rejected"), ("T32", "rejected"), ("T33", "rejected"), ("T34", "rejected"),
        ("T35", "applied")]
    assert reply.acks[0].message == (
        "at '0001-01-01T00:00:00+00:00' must be between 1900-01-01 and 2999-12-31 (UTC)")
    assert reply.acks[2].message == (
        "at '2026-11-23T10:17:00' must be an RFC 3339 time with seconds and an offset, e.g. "
        "2026-11-23T10:15:00+03:00")
    assert reply.acks[3].message == f"seq {2**63} is outside 1..{2**63 - 1}"
    # the receipt of a refused entry stays usable online
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("T31")))
    assert not calc.HasField("error")


def test_an_offline_refund_of_a_receipt_sold_at_another_store_is_applied(
    stub: pb_grpc.ProcessingStub, server: CentralServer
) -> None:
    calc, _ = sell(stub, "SOLD-S002", store="S002")
    assert _upload(stub, _whole_refund_entry("SOLD-S002", 40)) == [("SOLD-S002", "applied")]
    assert ledger_sum(server, "C1") == 340000
    with server.repository.read() as tx:
        record = tx.receipt("S002", "SOLD-S002")
        assert record is not None
        assert record.refunded == calc.calculation.due
