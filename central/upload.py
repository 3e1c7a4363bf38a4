"""Applying a store's journal (the edge outbox) exactly once.

Theory of operation: each JournalEntry is keyed by (store, receipt_id, seq) and applied in
its own transaction: a key applied before is acked ``duplicate`` when the entry is the one
applied, and ``rejected`` (naming the conflict, logged as an error, nothing applied) when it
is another (an edge database restored from a backup or made anew counts its seqs again): a
different sale must never pass as already counted. Otherwise the operation is applied and the
entry recorded ``applied``, or — when it cannot be (a state clash, an unknown receipt, a
broken entry) — recorded ``rejected`` with a message for review. A rejection never blocks the
entries after it and is never lost.

Central accepts what the store already gave the customer: an offline calculation is kept
as given, an offline confirm moves exactly the points the store announced, never
re-priced. A confirm for a receipt central holds open (online or offline) finalizes it;
the receipt's ``mode`` records where it was confirmed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TypeVar

import structlog

from central import clock
from central.processing import (
    Processing,
    Refusal,
    fiscal_text,
    refund_identity,
    store_timezone,
)
from central.schema import CENTRAL_ID
from central.storage import JournalRecord, KeptRefund, ReceiptRecord, Transaction
from loyalty import ConfirmEffects, confirm_effects
from loyalty.values import parse_time
from protos import tillgate_pb2 as pb
from protos.convert import calculation_from_pb, receipt_from_pb
from tillgate.errors import DocumentError, StorageError, ValidationError

log = structlog.get_logger("tillgate.central")


class EntryRejectedError(Exception):
    """The entry cannot be applied; the message says why (kept for review)."""


#: entries applied per transaction: one commit (fsync) per chunk instead of per entry, while the
#: write lock is never held long enough to delay the online calls of other stores
ENTRIES_PER_TRANSACTION = 50
#: the largest journal seq (the store's SQLite rowid; a signed 64-bit integer)
MAX_SEQ = 2**63 - 1


def foreign_entries(processing: Processing, request: pb.UploadRequest) -> str | None:
    """Why the upload's entries are not this central's to apply, or None when they are.

    A store names the central it synced from: entries journaled against another central
    database (another chain, a staging server) belong to that one's customers."""
    if not request.central:
        return None
    with processing.repository.read() as tx:
        own = tx.setting(CENTRAL_ID)
    if own is None or request.central == own:
        return None
    return (
        f"store {request.store!r} journaled these entries while synced from central "
        f"{request.central}; this is central {own}: they can only be uploaded there"
    )


def upload(processing: Processing, request: pb.UploadRequest) -> pb.UploadReply:
    """Apply every entry of an upload; one ack per entry, in order."""
    reply = pb.UploadReply()
    entries = list(request.entries)
    for start in range(0, len(entries), ENTRIES_PER_TRANSACTION):
        with processing.repository.transaction() as tx:
            for entry in entries[start : start + ENTRIES_PER_TRANSACTION]:
                reply.acks.append(_apply_entry(processing, tx, request.store, entry))
    with processing.repository.read() as tx:
        reply.version = tx.head_version()
    counts: dict[str, int] = {}
    for ack in reply.acks:
        counts[ack.status] = counts.get(ack.status, 0) + 1
    log.info("journal_upload", store=request.store, **counts)
    return reply


def _apply_entry(
    processing: Processing, tx: Transaction, store: str, entry: pb.JournalEntry
) -> pb.EntryAck:
    ack = pb.EntryAck(receipt_id=entry.receipt_id, seq=entry.seq)
    now = clock.now()
    key_store = store or entry.store  # an entry is the uploader's, even when misaddressed
    if not 0 < entry.seq <= MAX_SEQ:
        # Not storable (SQLite integers are signed 64-bit), so not even as rejected: refused in
        # its ack alone, and the entries after it are applied.
        ack.status = "rejected"
        ack.message = f"seq {entry.seq} is outside 1..{MAX_SEQ}"
        log.warning("journal_entry_rejected", store=key_store, receipt_id=entry.receipt_id,
                    seq=entry.seq, message=ack.message)
        return ack
    kept = tx.journal_entry(key_store, entry.receipt_id, entry.seq)
    if kept is not None and kept.status == "applied":
        first = pb.JournalEntry.FromString(kept.entry)
        if first == entry:
            ack.status = "duplicate"
            return ack
        ack.status = "rejected"
        ack.message = (
            f"seq {entry.seq} of receipt {entry.receipt_id!r} was applied on {kept.at} as "
            f"another entry ({first.WhichOneof('operation')} made {first.at}); this "
            f"{entry.WhichOneof('operation')} (made {entry.at}) was not applied, and sending it "
            "again cannot help: settle the receipt by hand (was the store's edge database "
            "restored from a backup or made anew?)"
        )
        log.error("journal_entry_conflict", store=key_store, receipt_id=entry.receipt_id,
                  seq=entry.seq, message=ack.message)  # fmt: skip
        return ack
    if kept is not None:
        # Rejected before, which changed nothing: the store sends it again once the cause is
        # fixed (`tillgate retry-rejected`), so it is judged again, never applied twice.
        tx.forget_journal_entry(key_store, entry.receipt_id, entry.seq)
        log.info("journal_entry_retried", store=key_store, receipt_id=entry.receipt_id,
                 seq=entry.seq, rejected_for=kept.message)
    status = "applied"
    message = ""
    try:
        with tx.savepoint():
            if not key_store:
                raise EntryRejectedError("entry names no store")
            if entry.store and store and entry.store != store:
                raise EntryRejectedError(
                    f"entry of store {entry.store!r} uploaded by store {store!r}"
                )
            message = _apply(processing, tx, key_store, entry, _entry_time(entry, now))
    except EntryRejectedError as exc:
        status, message = "rejected", str(exc)
    except Refusal as refusal:
        status, message = "rejected", f"{refusal.error.code}: {refusal.error.message}"
    except (ValidationError, DocumentError, ValueError) as exc:
        status, message = "rejected", f"invalid entry: {exc}"
    except StorageError:
        raise  # central cannot store anything now: the store retries the upload
    except Exception as exc:  # a bug in one entry must not block the queue
        log.exception("journal_entry_failed", store=key_store, receipt_id=entry.receipt_id,
                      seq=entry.seq)
        status, message = "rejected", f"internal error: {exc!r}"
    tx.put_journal_entry(
        JournalRecord(
            store=key_store,
            receipt_id=entry.receipt_id,
            seq=entry.seq,
            status="rejected" if status == "rejected" else "applied",
            message=message,
            entry=entry.SerializeToString(),
            at=clock.to_text(now),
        )
    )
    ack.status = status
    ack.message = message
    if status == "rejected":
        log.warning("journal_entry_rejected", store=key_store, receipt_id=entry.receipt_id,
                    seq=entry.seq, message=message)
    return ack


def _entry_time(entry: pb.JournalEntry, fallback: datetime) -> datetime:
    if not entry.at:
        return fallback
    try:
        return parse_time(entry.at, "at")
    except ValidationError as exc:
        raise EntryRejectedError(f"at {entry.at!r} {exc.message}") from None


def _check_given(told: int, limit: int, what: str) -> None:
    """A figure the store told the customer: never negative, never more than the receipt's
    own (else one entry could move any number of points and break the account)."""
    if not 0 <= told <= limit:
        raise EntryRejectedError(f"{what} {told} is outside 0..{limit}, the receipt's own")


def _apply(
    processing: Processing, tx: Transaction, store: str, entry: pb.JournalEntry, at: datetime
) -> str:
    operation = entry.WhichOneof("operation")
    if operation == "calculate":
        return _calculate(tx, store, entry, at)
    if operation == "confirm":
        return _confirm(processing, tx, store, entry, at)
    if operation == "cancel":
        return _cancel(tx, store, entry)
    if operation == "refund":
        return _refund(processing, tx, store, entry, at)
    raise EntryRejectedError("entry carries no operation")


def _calculate(tx: Transaction, store: str, entry: pb.JournalEntry, at: datetime) -> str:
    request, given = entry.calculate.request, entry.calculate.given
    record = tx.receipt(store, entry.receipt_id)
    if record is not None and record.state != "open":
        raise EntryRejectedError(f"receipt {entry.receipt_id!r} is {record.state}")
    calculation = calculation_from_pb(given)
    receipt_from_pb(request.receipt)  # validates the receipt as kept
    tx.put_receipt(
        ReceiptRecord(
            store=store,
            receipt_id=entry.receipt_id,
            state="open",
            mode="offline",
            customer_id=calculation.customer.id if calculation.customer else None,
            receipt=request.receipt.SerializeToString(),
            calculation=given.SerializeToString(),
            calculated_at=clock.to_text(at),
            due=calculation.due,
        )
    )
    return ""


def _confirm(
    processing: Processing, tx: Transaction, store: str, entry: pb.JournalEntry, at: datetime
) -> str:
    offline = entry.confirm
    fiscal = fiscal_text(offline.request.fiscal)
    record = tx.receipt(store, entry.receipt_id)
    if record is not None and record.state == "confirmed":
        if record.fiscal == fiscal:
            return _keep_given_confirmation(tx, record, offline.given)
        raise EntryRejectedError(
            f"receipt {entry.receipt_id!r} is already confirmed with other fiscal data"
        )
    if record is not None and record.state == "cancelled":
        raise EntryRejectedError(f"receipt {entry.receipt_id!r} is cancelled")
    if offline.HasField("calculation"):
        calculation_msg = offline.calculation
    elif record is not None and record.calculation is not None:
        calculation_msg = pb.Calculation.FromString(record.calculation)
    else:
        raise EntryRejectedError("confirm carries no calculation and central has none")
    if offline.HasField("receipt"):
        receipt_msg = offline.receipt
    elif record is not None and record.receipt is not None:
        receipt_msg = pb.Receipt.FromString(record.receipt)
    else:
        raise EntryRejectedError("confirm carries no receipt and central has none")
    calculation = calculation_from_pb(calculation_msg)
    receipt = receipt_from_pb(receipt_msg)
    tz = store_timezone(offline.request.context.timezone)
    customer = (
        processing.load_customer(tx, calculation.customer.id, at)
        if calculation.customer is not None
        else None
    )
    effects = confirm_effects(calculation, customer)
    given_points = offline.given.points
    _check_given(given_points.accrued, calculation.points.accrue, "points accrued")
    _check_given(given_points.redeemed, calculation.points.redeem, "points redeemed")
    # The customer was told these points: they are what moves, never a re-priced figure.
    effects = ConfirmEffects(
        customer_id=effects.customer_id
        or (calculation.customer.id if calculation.customer is not None else None),
        accrued=given_points.accrued,
        redeemed=given_points.redeemed,
        counters=effects.counters,
        coupons=effects.coupons,
        first_purchase=effects.first_purchase,
    )
    processing.apply_confirm(tx, store, receipt, calculation, effects, now=at, tz=tz)
    note = ""
    if calculation.customer is not None and customer is None:
        # Deleted since the edge synced, or the store was pointed at another chain: the sale
        # is recorded, the points have no account to move; said in the entry's ack for review.
        note = (
            f"customer {calculation.customer.id!r} is unknown to central: the "
            f"{given_points.accrued} points accrued and {given_points.redeemed} redeemed "
            "offline were not moved"
        )
        log.warning("offline_customer_unknown", store=store, receipt_id=entry.receipt_id,
                    customer_id=calculation.customer.id)  # fmt: skip
    tx.put_receipt(
        ReceiptRecord(
            store=store,
            receipt_id=entry.receipt_id,
            state="confirmed",
            mode="offline",
            customer_id=effects.customer_id,
            receipt=receipt_msg.SerializeToString(),
            calculation=calculation_msg.SerializeToString(),
            calculated_at=record.calculated_at if record is not None else clock.to_text(at),
            fiscal=fiscal,
            confirmation=_kept_answer(offline.given),
            confirmed_at=clock.to_text(at),
            due=calculation.due,
        )
    )
    return note


_Answer = TypeVar("_Answer", pb.ConfirmReply, pb.RefundReply)


def _kept_answer(given: _Answer) -> bytes:
    """The answer the store gave its register, as central keeps it for repeats: marked
    ``offline``, where it was made."""
    answer = type(given)()
    answer.CopyFrom(given)
    answer.mode = "offline"
    return answer.SerializeToString()


def _keep_given_confirmation(
    tx: Transaction, record: ReceiptRecord, given: pb.ConfirmReply
) -> str:
    """The receipt was confirmed online, and the answer was lost on its way to the store, which
    then confirmed it offline: the register was told the offline answer, so a repeat of the
    confirm must get that one (register spec §2.3), as long as the points it names are the ones
    central moved."""
    kept = pb.ConfirmReply.FromString(record.confirmation) if record.confirmation else None
    told = (given.points.accrued, given.points.redeemed)
    if kept is not None and (kept.points.accrued, kept.points.redeemed) != told:
        return (
            "already confirmed with the same fiscal data; nothing changed: the store was told "
            f"{told[0]} accrued / {told[1]} redeemed, central moved "
            f"{kept.points.accrued} / {kept.points.redeemed}"
        )
    tx.put_receipt(replace(record, confirmation=_kept_answer(given)))
    return "already confirmed with the same fiscal data; the store's answer is kept for repeats"


def _cancel(tx: Transaction, store: str, entry: pb.JournalEntry) -> str:
    record = tx.receipt(store, entry.receipt_id)
    if record is None:
        # §2.4: cancelling an unknown receipt is answered and has no effect; recording it
        # as cancelled would refuse the sale the register may make under that id later.
        return "receipt unknown to central: no effect"
    if record.state == "confirmed":
        raise EntryRejectedError(f"receipt {entry.receipt_id!r} is confirmed: cannot cancel")
    if record.state == "open":
        tx.put_receipt(replace(record, state="cancelled"))
        return ""
    return "already cancelled"


def _refund(
    processing: Processing, tx: Transaction, store: str, entry: pb.JournalEntry, at: datetime
) -> str:
    request, given = entry.refund.request, entry.refund.given
    if not request.refund_id:
        raise EntryRejectedError("refund carries no refund_id")
    receipt_id = request.receipt_id or entry.receipt_id
    kept = tx.refund(store, request.refund_id)
    if kept is not None:
        return _keep_given_refund(tx, store, kept, request, given)
    record = processing.sold_receipt(tx, store, receipt_id, at)
    if record is None:
        raise EntryRejectedError(f"receipt {receipt_id!r} is unknown to central")
    if record.state != "confirmed":
        raise EntryRejectedError(f"receipt {receipt_id!r} is {record.state}, not confirmed")
    if given.HasField("points") and record.calculation is not None:
        points = pb.Calculation.FromString(record.calculation).points
        _check_given(given.points.reversed, points.accrue, "points reversed")
        _check_given(given.points.restored, points.redeem, "points restored")
    processing.apply_refund(
        tx, record, request, now=at, given=given.points if given.HasField("points") else None,
        at_store=store,
    )
    # A repeat of the refund gets what the register was told (register spec §2.3), as a
    # repeat of an offline confirm does: not a balance and a customer line it never showed.
    tx.put_refund(
        store,
        KeptRefund(request.refund_id, receipt_id, refund_identity(request), _kept_answer(given)),
        clock.to_text(at),
    )
    return ""


def _keep_given_refund(
    tx: Transaction, store: str, kept: KeptRefund, request: pb.RefundRequest,
    given: pb.RefundReply,
) -> str:
    """As :func:`_keep_given_confirmation`, for a refund applied online whose answer was lost."""
    applied = f"refund {request.refund_id!r} was applied before"
    if kept.request != refund_identity(request):
        return f"{applied} with other lines; nothing changed"
    if not given.HasField("points"):
        return f"{applied}; nothing changed (the store, not knowing the receipt, named no points)"
    reply = pb.RefundReply.FromString(kept.reply)
    told = (given.points.reversed, given.points.restored)
    if (reply.points.reversed, reply.points.restored) != told:
        return (
            f"{applied}; nothing changed: the store was told {told[0]} reversed / {told[1]} "
            f"restored, central moved {reply.points.reversed} / {reply.points.restored}"
        )
    tx.replace_refund_reply(store, request.refund_id, _kept_answer(given))
    return f"{applied}; the store's answer is kept for repeats"
