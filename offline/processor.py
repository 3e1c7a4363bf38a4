"""The offline processor: central's Processing methods, answered from the edge cache.

Theory of operation: each method takes the same protobuf request central takes and returns
the same reply shape, with ``mode: "offline"`` and balances unset (unknown). Domain refusals
travel in ``reply.error`` exactly as central's do. The receipt lifecycle of register protocol
§2.4 is the table in :mod:`offline.lifecycle`; the state of every receipt the edge knows sits
in SQLite, so it survives restarts. Online answers are recorded too
(``record_online_*``), so a receipt calculated online can be confirmed or refunded offline.

Every offline result and every offline confirm, cancel and refund is journaled in the outbox
in the SAME transaction that changes the receipt's state, and that transaction commits
(``synchronous=FULL``) before the method returns: the daemon answers the register after.

Pricing is the loyalty engine over the cached documents (catalog items by the receipt's skus,
one customer, the promotion index kept in memory), so that online and offline agree to the
kopeck on the same data. What differs offline is the policy: redemption is denied or limited
(:class:`offline.policy.OfflinePolicy`), coupons spent offline are never accepted twice at
this store, and the cashier sees that the answer was made offline.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from loyalty import (
    Calculation,
    ConfirmEffects,
    Customer,
    CustomerRef,
    FrozenMap,
    Message,
    OverRefund,
    PointsSummary,
    RefundEffects,
    confirm_effects,
    confirm_messages,
    customer_summary,
    offers_of,
    price_receipt,
    refund_effects,
)
from loyalty.messages import customer_line
from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.lifecycle import OPEN_EXPIRY_S, Action, Op, ReceiptState, decide, effective_state
from offline.outbox import REJECTED_CONFIRMS, Outbox
from offline.policy import OfflinePolicy
from offline.sync import META_LAST_SYNC_AT
from protos import convert
from protos import tillgate_pb2 as pb
from tillgate.errors import DocumentError, ValidationError

__all__ = [
    "AGE_WARNING",
    "OFFLINE_LOOKUP_NOTE",
    "OFFLINE_NOTE",
    "QUEUE_WARNING",
    "UNKNOWN_REFUND_NOTE",
    "OfflineProcessor",
]

log = structlog.get_logger("tillgate.offline.processor")

#: cashier message on every offline answer that journals something
OFFLINE_NOTE = "Нет связи с процессингом: операция сохранена и будет передана позже"
#: identify and balance offline: nothing is saved, the balance is what is missing
OFFLINE_LOOKUP_NOTE = "Нет связи с процессингом: баланс сейчас неизвестен"
#: cashier message when the outbox nears ``max_queued``
QUEUE_WARNING = "Очередь офлайн-операций почти заполнена ({depth} из {limit}): проверьте связь"
#: cashier message when the oldest waiting entry is older than ``max_age_hours``
AGE_WARNING = "Офлайн-операции не переданы больше {hours} ч: проверьте связь с процессингом"
#: cashier message for the offline refund of a receipt the edge does not know
UNKNOWN_REFUND_NOTE = "Чек не найден в кассовом кэше: баллы пересчитает процессинг"

DEFAULT_TIMEZONE = "Europe/Moscow"
#: confirmed receipts are kept this long for offline refunds
RECEIPT_RETENTION_S = 90 * 86_400.0


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def _same_refund(first: pb.RefundRequest, second: pb.RefundRequest) -> bool:
    """Two refunds under one refund_id are the same refund when their requests are equal,
    context aside (as central judges them)."""
    first_copy, second_copy = pb.RefundRequest(), pb.RefundRequest()
    first_copy.CopyFrom(first)
    second_copy.CopyFrom(second)
    first_copy.ClearField("context")
    second_copy.ClearField("context")
    return first_copy == second_copy


def _error(code: str, *, reason: str = "", field: str = "", message: str = "") -> pb.Error:
    return pb.Error(code=code, reason=reason, field=field, message=message or code)


def _conflict(reason: str, receipt_id: str) -> pb.Error:
    return _error("conflict", reason=reason, message=f"receipt {receipt_id} is {reason}")


@dataclass(frozen=True, slots=True)
class _KnownReceipt:
    """A receipt row, decoded."""

    request: pb.CalculateRequest  #: of the last calculation
    calculation: pb.Calculation  #: as given to the register
    customer_id: str | None
    confirm_request: pb.ConfirmRequest | None
    confirm_reply: pb.ConfirmReply | None
    refunded: dict[int, int]  #: line n → thousandths refunded so far
    mode: str  #: where the last calculation was made: online, offline
    updated_at: float  #: of an open receipt: when its last calculation was recorded here


_LINE_FIELDS = frozenset({"n", "sku", "quantity", "price", "amount", "barcode", "name"})


def _locate_receipt_error(receipt: pb.Receipt, error: ValidationError) -> ValidationError:
    """The error with its full path (``receipt.lines[2].amount``): a line's own check does
    not know the line's index, so find the first line that fails it alone."""
    if error.field in _LINE_FIELDS:
        for index, line in enumerate(receipt.lines):
            try:
                convert.receipt_from_pb(pb.Receipt(id=receipt.id or "x", lines=[line]))
            except ValidationError as line_error:
                return line_error.under(f"receipt.lines[{index}]")
    return error.under("receipt")


def _refund_of(
    row: _KnownReceipt, request: pb.RefundRequest
) -> tuple[RefundEffects, dict[int, int]]:
    """The effects of ``request`` on a known receipt and the refunded quantities after it;
    raises OverRefund / ValidationError like :func:`loyalty.refund_effects`."""
    refunded = dict(row.refunded)
    effects = refund_effects(
        convert.receipt_from_pb(row.request.receipt),
        convert.calculation_from_pb(row.calculation),
        refunded_before=refunded,
        lines=convert.refund_lines_from_pb(request.lines) or None,
    )
    for line in effects.lines:
        refunded[line.n] = refunded.get(line.n, 0) + line.quantity
    return effects, refunded


def _count_until_synced(conn: sqlite3.Connection, receipt_id: str, effects: ConfirmEffects,
                        redeemed: int, now: float, *, acked: bool) -> None:
    """What a confirm made here spent, counted in offline pricing until a sync brings the
    customer's document that holds it: the points redeemed, the purchase and its counters,
    the coupons. ``acked``: central already has it (an online confirm)."""
    acked_at = now if acked else None
    if effects.customer_id is not None and redeemed:
        conn.execute(
            "INSERT OR REPLACE INTO offline_redemptions (receipt_id, customer_id, points, "
            "acked_at) VALUES (?, ?, ?, ?)",
            (receipt_id, effects.customer_id, redeemed, acked_at),
        )
    if effects.customer_id is not None:
        counted: dict[str, int] = {}
        for delta in effects.counters:
            counted[delta.name] = counted.get(delta.name, 0) + delta.add
        conn.execute(
            "INSERT OR REPLACE INTO offline_purchases (receipt_id, customer_id, counters, "
            "acked_at) VALUES (?, ?, ?, ?)",
            (receipt_id, effects.customer_id, json.dumps(counted, sort_keys=True), acked_at),
        )
    conn.executemany(
        "INSERT OR IGNORE INTO offline_coupons (code, receipt_id, at) VALUES (?, ?, ?)",
        [(code.upper(), receipt_id, now) for code in effects.coupons],
    )


class OfflineProcessor:
    """Answers Processing requests from the edge database (one instance per daemon)."""

    def __init__(
        self,
        db: EdgeDatabase,
        *,
        store: str,
        timezone: str = DEFAULT_TIMEZONE,
        policy: OfflinePolicy | None = None,
        clock: Callable[[], float] = time.time,
        on_journal: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.timezone = timezone
        self.policy = policy or OfflinePolicy()
        self.clock = clock
        self.cache = EdgeCache(db)
        self.outbox = Outbox(db, store=store, clock=clock)
        self._on_journal = on_journal

    # -- helpers -------------------------------------------------------------------------

    def _tz(self, context: pb.Context) -> tzinfo:
        name = context.timezone or self.timezone
        try:
            return _zone(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError("context.timezone", f"unknown time zone {name!r}") from exc

    def _now(self, tz: tzinfo) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz)

    def _receipt_row(self, receipt_id: str) -> tuple[ReceiptState, _KnownReceipt | None]:
        rows = self.db.query("SELECT * FROM receipts WHERE receipt_id = ?", (receipt_id,))
        if not rows:
            return ReceiptState.UNKNOWN, None
        row = rows[0]
        known = _KnownReceipt(
            request=pb.CalculateRequest.FromString(bytes(row["request"])),
            calculation=pb.Calculation.FromString(bytes(row["calculation"])),
            customer_id=row["customer_id"],
            confirm_request=pb.ConfirmRequest.FromString(bytes(row["confirm_request"]))
            if row["confirm_request"] is not None
            else None,
            confirm_reply=pb.ConfirmReply.FromString(bytes(row["confirm_reply"]))
            if row["confirm_reply"] is not None
            else None,
            refunded={int(n): int(q) for n, q in json.loads(row["refunded"]).items()},
            mode=str(row["calculated_mode"]),
            updated_at=float(row["updated_at"]),
        )
        # Open for 7 days after its last calculate, as central counts (a calculate of an open
        # receipt sets updated_at; so does nothing else that leaves it open).
        state = effective_state(ReceiptState(row["state"]), float(row["updated_at"]), self.clock())
        return state, known

    def _customer(self, lookup: Callable[[], Customer | None]) -> Customer | None:
        try:
            return lookup()
        except DocumentError as exc:
            log.error("cached_customer_unreadable", error=str(exc))
            return None

    def _receipt_customer(self, row: _KnownReceipt) -> Customer | None:
        """The cached customer a known receipt was priced for, if any."""
        customer_id = row.customer_id
        if not customer_id:
            return None
        return self._customer(lambda: self.cache.customer_by_id(customer_id))

    def _with_offline_purchases(self, customer: Customer) -> Customer:
        """``customer`` as of its synced document plus the purchases confirmed offline here
        that no synced document holds yet: their counters count, and so do they for
        ``first_purchase`` (central counts them once the outbox reaches it)."""
        purchases, added = self._purchases_here(customer.id)
        if not purchases:
            return customer
        counters = dict(customer.counters)
        for name, add in added.items():
            counters[name] = counters.get(name, 0) + add
        return replace(customer, counters=FrozenMap(counters),
                       purchases=customer.purchases + purchases)

    def holds_unsent(self, customer_ref: CustomerRef | None, coupons: Sequence[str]) -> bool:
        """True while an offline confirm made here for this customer, or spending one of these
        coupons, has not reached central: central would price as if it never happened (a
        coupon accepted twice, a first purchase given twice), so the edge answers."""
        codes = [code.upper() for code in coupons]
        if codes:
            marks = ",".join("?" * len(codes))
            rows = self.db.query(
                f"SELECT receipt_id FROM offline_coupons WHERE code IN ({marks})",  # noqa: S608  # placeholders only
                codes,
            )
            if any(self.outbox.has_pending(row["receipt_id"]) for row in rows):
                return True
        if customer_ref is None:
            return False
        # only the id: this runs before every online calculate, no document needs parsing
        customer_id = self.cache.customer_id_by_ref(customer_ref)
        if customer_id is None:
            return False
        pending = self.db.query(
            "SELECT 1 FROM offline_purchases WHERE customer_id = ? AND acked_at IS NULL LIMIT 1",
            (customer_id,),
        )
        return bool(pending)

    def _notes(self, *, journaling: bool = True) -> list[Message]:
        """The offline cashier note plus the queue and age warnings that apply now (counting
        the entry about to be journaled when ``journaling``; a lookup journals nothing, and
        its note says what is missing instead)."""
        notes = [Message("cashier", OFFLINE_NOTE if journaling else OFFLINE_LOOKUP_NOTE)]
        depth = self.outbox.depth() + (1 if journaling else 0)
        if self.policy.queue_warning(depth):
            notes.append(
                Message("cashier", QUEUE_WARNING.format(depth=depth, limit=self.policy.max_queued))
            )
        if self.policy.too_old(self.outbox.oldest_age_s()):
            notes.append(Message("cashier", AGE_WARNING.format(hours=self.policy.max_age_hours)))
        return notes

    def _journaled(self) -> None:
        if self._on_journal is not None:
            self._on_journal()

    def _offline_view(self, calc: Calculation) -> Calculation:
        """Balances unknown (the engine priced in offline mode: its customer line and
        ``{balance}`` leave the balance out); the offline notes last."""
        messages = [*calc.messages, *self._notes()]
        return replace(
            calc,
            customer=replace(calc.customer, balance=None) if calc.customer else None,
            points=PointsSummary(
                accrue=calc.points.accrue,
                redeem=calc.points.redeem,
                redeem_max=calc.points.redeem_max,
                balance=None,
            ),
            messages=tuple(messages),
            mode="offline",
        )

    def _store_receipt(
        self,
        request: pb.CalculateRequest,
        calculation: pb.Calculation,
        *,
        mode: str,
        customer_id: str | None,
    ) -> None:
        now = self.clock()
        self.db.conn.execute(
            "INSERT INTO receipts (receipt_id, state, calculated_mode, request, calculation, "
            "customer_id, created_at, updated_at) VALUES (?, 'open', ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (receipt_id) DO UPDATE SET state = 'open', "
            "calculated_mode = excluded.calculated_mode, request = excluded.request, "
            "calculation = excluded.calculation, customer_id = excluded.customer_id, "
            "updated_at = excluded.updated_at",
            (
                request.receipt.id,
                mode,
                request.SerializeToString(),
                calculation.SerializeToString(),
                customer_id,
                now,
                now,
            ),
        )

    def _remember_customer(self, customer_id: str) -> None:
        self.db.conn.execute(
            "INSERT OR REPLACE INTO seen_customers (customer_id, seen_at) VALUES (?, ?)",
            (customer_id, self.clock()),
        )

    # -- Processing ----------------------------------------------------------------------

    def calculate(self, request: pb.CalculateRequest) -> pb.CalculateReply:
        """Price a receipt from the cache and journal the result."""
        receipt_id = request.receipt.id
        if not receipt_id:
            return pb.CalculateReply(
                error=_error("invalid", field="receipt.id", message="required")
            )
        if self.cache.is_empty():
            return pb.CalculateReply(
                error=_error(
                    "unavailable",
                    reason="cache_empty",
                    message="central is unreachable and the edge cache holds no complete sync yet",
                )
            )
        state, _row = self._receipt_row(receipt_id)
        verdict = decide(state, Op.CALCULATE)
        if verdict.action is Action.CONFLICT:
            return pb.CalculateReply(error=_conflict(verdict.reason, receipt_id))
        depth = self.outbox.depth()
        if self.policy.queue_full(depth):
            return pb.CalculateReply(
                error=_error(
                    "unavailable",
                    reason="outbox_full",
                    message=f"{depth} offline operations wait for central "
                    f"(offline.max_queued = {self.policy.max_queued})",
                )
            )
        try:
            tz = self._tz(request.context)
            receipt = convert.receipt_from_pb(request.receipt)
        except ValidationError as exc:
            located = (
                exc
                if exc.field.startswith("context")
                else _locate_receipt_error(request.receipt, exc)
            )
            return pb.CalculateReply(
                error=_error("invalid", field=located.field, message=located.message)
            )
        except ValueError as exc:
            return pb.CalculateReply(error=_error("invalid", field="receipt", message=str(exc)))
        if receipt.opened_at is None:
            # the daemon always sets it; priced with the edge's clock otherwise, and journaled
            # with that instant so that central sees the same one
            opened_at = self._now(tz)
            receipt = replace(receipt, opened_at=opened_at)
            stamped = pb.CalculateRequest()
            stamped.CopyFrom(request)
            stamped.receipt.opened_at = opened_at.isoformat()
            request = stamped
        customer = None
        if receipt.customer is not None:
            ref = receipt.customer
            customer = self._customer(lambda: self.cache.customer_by_ref(ref))
            if customer is not None:
                customer = self._with_offline_purchases(customer)
        limit = (
            None
            if customer is None
            else self.policy.redeem_limit(customer.balance, self._redeemed_here(customer.id))
        )
        try:
            catalog = self.cache.catalog_for(line.sku for line in receipt.lines)
        except DocumentError as exc:
            log.error("cached_catalog_unreadable", error=str(exc))
            return pb.CalculateReply(
                error=_error("unavailable", reason="cache_invalid", message=str(exc))
            )
        calc = price_receipt(
            receipt,
            catalog=catalog,
            promotions=self.cache.promotion_index(),
            customer=customer,
            store=self.store,
            tz=tz,
            spent_coupons=self.cache.spent_coupons(receipt.coupons),
            redeem_limit=limit,
            mode="offline",
        )
        given = convert.calculation_to_pb(self._offline_view(calc))
        with self.db.transaction():
            self._store_receipt(
                request, given, mode="offline", customer_id=customer.id if customer else None
            )
            self.outbox.append(
                receipt_id, "calculate", pb.OfflineCalculation(request=request, given=given)
            )
        self._journaled()
        return pb.CalculateReply(calculation=given)

    def confirm(self, request: pb.ConfirmRequest) -> pb.ConfirmReply:
        """Finalize the last calculation (online or offline) and journal the confirm, if what
        it relied on still holds here (:meth:`_stale`); checked and written in one
        transaction."""
        with self.db.transaction() as conn:
            reply, journaled = self._confirm(conn, request)
        if journaled:
            self._journaled()
        return reply

    def _confirm(
        self, conn: sqlite3.Connection, request: pb.ConfirmRequest
    ) -> tuple[pb.ConfirmReply, bool]:
        """The reply, and whether the confirm was journaled."""
        receipt_id = request.receipt_id
        state, row = self._receipt_row(receipt_id)
        verdict = decide(state, Op.CONFIRM)
        if verdict.action is Action.NOT_FOUND:
            return pb.ConfirmReply(
                error=_error(
                    "not_found", field="receipt_id", message=f"receipt {receipt_id} is unknown"
                )
            ), False
        if verdict.action is Action.CONFLICT:
            return pb.ConfirmReply(error=_conflict(verdict.reason, receipt_id)), False
        assert row is not None
        if verdict.action is Action.KEPT_IF_SAME:
            if (
                row.confirm_request is not None
                and row.confirm_reply is not None
                and row.confirm_request.fiscal == request.fiscal
            ):
                return row.confirm_reply, False
            return pb.ConfirmReply(error=_conflict("confirmed", receipt_id)), False
        calc_pb = row.calculation
        if request.due != calc_pb.due:
            return pb.ConfirmReply(
                error=_error(
                    "conflict",
                    reason="stale",
                    field="due",
                    message=f"due {request.due} differs from the last calculation's {calc_pb.due}",
                )
            ), False
        try:
            tz = self._tz(request.context)
        except ValidationError as exc:
            return pb.ConfirmReply(
                error=_error("invalid", field=exc.field, message=exc.message)
            ), False
        calc = convert.calculation_from_pb(calc_pb)
        customer = self._receipt_customer(row)
        stale = self._stale(row, calc, customer)
        if stale is not None:
            return pb.ConfirmReply(error=_error("conflict", reason="stale", message=stale)), False
        effects = confirm_effects(calc, customer)
        messages = list(
            confirm_messages(calc, customer, now=self._now(tz), tz=tz, balance_after=None)
        )
        messages.extend(self._notes())
        reply = pb.ConfirmReply(
            receipt_id=receipt_id,
            mode="offline",
            points=pb.PointsMovement(accrued=effects.accrued, redeemed=effects.redeemed),
            messages=convert.messages_to_pb(messages),
        )
        now = self.clock()
        conn.execute(
            "UPDATE receipts SET state = 'confirmed', confirm_request = ?, confirm_reply = ?, "
            "updated_at = ? WHERE receipt_id = ?",
            (request.SerializeToString(), reply.SerializeToString(), now, receipt_id),
        )
        _count_until_synced(conn, receipt_id, effects, effects.redeemed, now, acked=False)
        self.outbox.append(
            receipt_id,
            "confirm",
            pb.OfflineConfirm(
                request=request, given=reply, calculation=calc_pb, receipt=row.request.receipt
            ),
        )
        return reply, True

    def _central_saw_at(self, row: _KnownReceipt, calc: Calculation) -> float | None:
        """When central made the receipt's calculation, if that is newer than the cache (an
        online calculation recorded after the last complete sync); else None."""
        if row.mode != "online" or calc.customer is None:
            return None
        last_sync = self.db.get_meta(META_LAST_SYNC_AT)
        if last_sync is not None and float(last_sync) >= row.updated_at:
            return None
        return row.updated_at

    @staticmethod
    def _not_applied_since(since: float | None) -> tuple[str, tuple[object, ...]]:
        """The filter (after ``customer_id = ?``) and its parameters for the rows of confirms
        made here that no synced document holds yet (``since`` None), or that central had not
        applied at ``since`` (one acknowledged at that very instant counts: it may not have;
        a rejected one always counts: central never applied it)."""
        if since is None:
            return "", ()
        where = f" AND (acked_at IS NULL OR acked_at >= ? OR receipt_id IN ({REJECTED_CONFIRMS}))"
        return where, (since,)

    def _redeemed_here(self, customer_id: str, since: float | None = None) -> int:
        """Points redeemed by the confirms made here (see :meth:`_not_applied_since`)."""
        where, params = self._not_applied_since(since)
        rows = self.db.query(
            "SELECT coalesce(sum(points), 0) AS n FROM offline_redemptions "  # noqa: S608  # fixed text
            f"WHERE customer_id = ?{where}",
            (customer_id, *params),
        )
        return int(rows[0]["n"])

    def _purchases_here(
        self, customer_id: str, since: float | None = None
    ) -> tuple[int, dict[str, int]]:
        """How many confirms made here, and the counter changes they add (see
        :meth:`_not_applied_since`)."""
        where, params = self._not_applied_since(since)
        rows = self.db.query(
            f"SELECT counters FROM offline_purchases WHERE customer_id = ?{where}",  # noqa: S608  # fixed text
            (customer_id, *params),
        )
        counters: dict[str, int] = {}
        for row in rows:
            for name, add in json.loads(row["counters"]).items():
                counters[name] = counters.get(name, 0) + int(add)
        return len(rows), counters

    def _stale(
        self, row: _KnownReceipt, calc: Calculation, customer: Customer | None
    ) -> str | None:
        """Why the calculation no longer holds here, or None: central's re-check
        (promotions §9) against what the edge knows. A coupon of it spent since (synced, or
        confirmed here); more points redeemed than spendable; a first-purchase or counter
        condition that a purchase confirmed since has taken.

        The basis is the cache as offline pricing sees it (the synced documents plus what
        was confirmed here and no synced document holds yet), unless central made the
        calculation after the last sync: then it is what central saw then (its balance, and
        for a promotion it applied, no purchase and a counter one short of the goal at least)
        plus what was confirmed here that central had not applied at that moment."""
        spent = sorted(self.cache.spent_coupons(calc.effects.coupons))
        if spent:
            return f"coupon {spent[0]} was spent after the calculation"
        customer_id = calc.customer.id if calc.customer is not None else row.customer_id
        if not customer_id:
            return None
        since = self._central_saw_at(row, calc)
        redeemed = self._redeemed_here(customer_id, since)
        purchases, counted = self._purchases_here(customer_id, since)
        balance: int | None
        if since is not None:
            balance = calc.points.balance
        else:
            balance = customer.balance if customer is not None else None
        redeem = calc.points.redeem
        if redeem:
            if balance is None:
                return (f"the calculation redeems {redeem} points, and the balance of "
                        f"customer {customer_id} is not known here")
            available = balance - redeemed
            if redeem > available:
                return (f"the calculation redeems {redeem} points, {max(0, available)} "
                        "available now")
        index = self.cache.promotion_index()
        for applied in calc.promotions:
            promotion = index.get(applied.id)
            if promotion is None:  # a personal offer, or deleted since: no condition to see
                continue
            conditions = promotion.conditions
            if conditions.first_purchase:
                before = 0 if since is not None else (
                    customer.purchases if customer is not None else None)
                if before is None or before + purchases > 0:
                    return (f"promotion {applied.id!r} needs a first purchase, "
                            "and the customer has one now")
            counter = conditions.counter
            if counter is not None:
                start = counter.at_least - 1 if since is not None else (
                    customer.counters.get(counter.name, 0) if customer is not None else None)
                if start is None or start + counted.get(counter.name, 0) + 1 < counter.at_least:
                    return (f"promotion {applied.id!r}: counter {counter.name!r} is below "
                            f"{counter.at_least} now")
        return None

    def cancel(self, request: pb.CancelRequest) -> pb.CancelReply:
        """Cancel an open receipt; journaled (also for a receipt the edge does not know)."""
        receipt_id = request.receipt_id
        state, row = self._receipt_row(receipt_id)
        verdict = decide(state, Op.CANCEL)
        if verdict.action is Action.CONFLICT:
            return pb.CancelReply(error=_conflict(verdict.reason, receipt_id))
        if verdict.action is Action.NO_EFFECT:
            return pb.CancelReply(receipt_id=receipt_id)
        with self.db.transaction() as conn:
            if row is not None:
                conn.execute(
                    "UPDATE receipts SET state = 'cancelled', updated_at = ? WHERE receipt_id = ?",
                    (self.clock(), receipt_id),
                )
            self.outbox.append(receipt_id, "cancel", request)
        self._journaled()
        return pb.CancelReply(receipt_id=receipt_id)

    def refund(self, request: pb.RefundRequest) -> pb.RefundReply:
        """Refund (part of) a confirmed receipt; a receipt the edge does not know is journaled
        and answered with points unset."""
        refund_id, receipt_id = request.refund_id, request.receipt_id
        if not refund_id:
            return pb.RefundReply(error=_error("invalid", field="refund_id", message="required"))
        kept = self.db.query("SELECT * FROM refunds WHERE refund_id = ?", (refund_id,))
        if kept:
            first = kept[0]
            if not _same_refund(pb.RefundRequest.FromString(bytes(first["request"])), request):
                made_for = (f"for receipt {first['receipt_id']}"
                            if first["receipt_id"] != receipt_id else "with other lines or fiscal")
                return pb.RefundReply(
                    error=_error("conflict", reason="id_reused", field="refund_id",
                                 message=f"refund {refund_id} was made {made_for}")
                )
            return pb.RefundReply.FromString(bytes(first["reply"]))
        state, row = self._receipt_row(receipt_id)
        verdict = decide(state, Op.REFUND)
        if verdict.action is Action.CONFLICT:
            return pb.RefundReply(error=_conflict(verdict.reason, receipt_id))
        refunded: dict[int, int] = {}
        if verdict.action is Action.JOURNAL_UNKNOWN:
            reply = pb.RefundReply(
                refund_id=refund_id,
                mode="offline",
                messages=convert.messages_to_pb(
                    [Message("cashier", UNKNOWN_REFUND_NOTE), *self._notes()]
                ),
            )
        else:
            assert row is not None
            try:
                effects, refunded = _refund_of(row, request)
            except OverRefund as exc:
                return pb.RefundReply(
                    error=pb.Error(
                        code="conflict",
                        reason="over_refund",
                        field=exc.field,
                        message=exc.message,
                        remaining=convert.refund_lines_to_pb(exc.remaining),
                    )
                )
            except ValidationError as exc:
                return pb.RefundReply(error=_error("invalid", field=exc.field, message=exc.message))
            customer = self._receipt_customer(row)
            # the customer line as central gives it, without the balance (unknown offline)
            lines = [customer_line(customer, None)] if customer is not None else []
            reply = pb.RefundReply(
                refund_id=refund_id,
                mode="offline",
                points=pb.RefundPoints(reversed=effects.reversed, restored=effects.restored),
                messages=convert.messages_to_pb([*lines, *self._notes()]),
            )
        now = self.clock()
        with self.db.transaction() as conn:
            if row is not None:
                conn.execute(
                    "UPDATE receipts SET refunded = ?, updated_at = ? WHERE receipt_id = ?",
                    (json.dumps(refunded, sort_keys=True), now, receipt_id),
                )
            conn.execute(
                "INSERT INTO refunds (refund_id, receipt_id, request, reply, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    refund_id,
                    receipt_id,
                    request.SerializeToString(),
                    reply.SerializeToString(),
                    now,
                ),
            )
            self.outbox.append(receipt_id, "refund", pb.OfflineRefund(request=request, given=reply))
        self._journaled()
        return reply

    def identify(self, request: pb.IdentifyRequest) -> pb.IdentifyReply:
        """The cached customer with offers; balance unknown."""
        return self._customer_reply(request, with_offers=True)

    def balance(self, request: pb.IdentifyRequest) -> pb.IdentifyReply:
        """The cached customer; the balance is unknown offline."""
        return self._customer_reply(request, with_offers=False)

    def _customer_reply(
        self, request: pb.IdentifyRequest, *, with_offers: bool
    ) -> pb.IdentifyReply:
        try:
            ref = convert.customer_ref_from_pb(request.customer)
            tz = self._tz(request.context)
        except ValidationError as exc:
            return pb.IdentifyReply(error=_error("invalid", field=exc.field, message=exc.message))
        except ValueError as exc:
            return pb.IdentifyReply(error=_error("invalid", field="customer", message=str(exc)))
        if self.cache.is_empty():
            return pb.IdentifyReply(
                error=_error(
                    "unavailable",
                    reason="cache_empty",
                    message="central is unreachable and the edge cache holds no complete sync yet",
                )
            )
        customer = self._customer(lambda: self.cache.customer_by_ref(ref))
        if customer is None:
            return pb.IdentifyReply(
                error=_error(
                    "not_found", field="customer", message=f"no customer {ref.masked()} here"
                )
            )
        summary = replace(
            customer_summary(customer, balance=None),
            redeem_max=self.policy.redeem_limit(
                customer.balance, self._redeemed_here(customer.id)
            ),
        )
        reply = pb.IdentifyReply(
            customer=convert.customer_summary_to_pb(summary),
            messages=convert.messages_to_pb(
                [customer_line(customer, None), *self._notes(journaling=False)]
            ),
        )
        if with_offers:
            ends = {
                offer.id: offer.valid.end.isoformat() if offer.valid.end else ""
                for offer in customer.personal_offers
            }
            reply.offers.extend(
                pb.Offer(
                    id=offer.id, name=offer.name, text=offer.text, valid_to=ends.get(offer.id, "")
                )
                for offer in offers_of(customer, self._now(tz), tz=tz, balance_known=False)
            )
        return reply

    # -- what central answered online ----------------------------------------------------

    def record_online_calculation(
        self, request: pb.CalculateRequest, reply: pb.CalculateReply
    ) -> None:
        """Keep central's calculation so that the receipt can be confirmed offline."""
        if reply.HasField("error") or not request.receipt.id:
            return
        customer_id = (
            reply.calculation.customer.id if reply.calculation.HasField("customer") else None
        )
        with self.db.transaction():
            self._store_receipt(request, reply.calculation, mode="online", customer_id=customer_id)
            if customer_id:
                self._remember_customer(customer_id)

    def record_online_confirm(self, request: pb.ConfirmRequest, reply: pb.ConfirmReply) -> None:
        """Keep central's confirmation (a repeat offline returns it; refunds work offline),
        and count what it changed in offline pricing until a sync brings it: the coupons it
        spent, the purchase and its counters, the points it redeemed (central may go away
        before the next sync, and the same coupon or welcome bonus must not work twice)."""
        if reply.HasField("error"):
            return
        _, row = self._receipt_row(request.receipt_id)
        effects = None
        if row is not None:
            effects = confirm_effects(convert.calculation_from_pb(row.calculation),
                                      self._receipt_customer(row))
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE receipts SET state = 'confirmed', confirm_request = ?, confirm_reply = ?, "
                "updated_at = ? WHERE receipt_id = ?",
                (request.SerializeToString(), reply.SerializeToString(), now, request.receipt_id),
            )
            if effects is not None:  # central has it: forgotten by the first sync after now
                _count_until_synced(conn, request.receipt_id, effects, reply.points.redeemed, now,
                                    acked=True)

    def record_online_cancel(self, request: pb.CancelRequest, reply: pb.CancelReply) -> None:
        """Mark a receipt central cancelled."""
        if reply.HasField("error"):
            return
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE receipts SET state = 'cancelled', updated_at = ? "
                "WHERE receipt_id = ? AND state = 'open'",
                (self.clock(), request.receipt_id),
            )

    def record_online_refund(self, request: pb.RefundRequest, reply: pb.RefundReply) -> None:
        """Count what central refunded, so that an offline refund later sees what remains."""
        if reply.HasField("error"):
            return
        state, row = self._receipt_row(request.receipt_id)
        if row is None or state is not ReceiptState.CONFIRMED:
            return
        try:
            _effects, refunded = _refund_of(row, request)
        except ValidationError as exc:
            log.warning("online_refund_not_mirrored", receipt_id=request.receipt_id, error=str(exc))
            return
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE receipts SET refunded = ?, updated_at = ? WHERE receipt_id = ?",
                (json.dumps(refunded, sort_keys=True), now, request.receipt_id),
            )
            conn.execute(
                "INSERT OR IGNORE INTO refunds (refund_id, receipt_id, request, reply, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    request.refund_id,
                    request.receipt_id,
                    request.SerializeToString(),
                    reply.SerializeToString(),
                    now,
                ),
            )

    def record_online_identify(self, reply: pb.IdentifyReply) -> None:
        """Remember a customer identified online, so that the sync caches them."""
        if reply.HasField("error") or not reply.customer.id:
            return
        with self.db.transaction():
            self._remember_customer(reply.customer.id)

    def purge(self, *, keep_confirmed_s: float = RECEIPT_RETENTION_S) -> int:
        """Forget receipts no register can still act on: cancelled ones and open ones past
        the 7-day expiry, and confirmed ones (with their refunds) older than
        ``keep_confirmed_s`` (default 90 days, the refund window kept here). Receipts with
        an entry waiting for central are kept. Returns how many receipts were forgotten."""
        now = self.clock()
        with self.db.transaction() as conn:
            doomed = [
                row[0]
                for row in conn.execute(
                    "SELECT receipt_id FROM receipts WHERE "
                    "((state = 'cancelled' OR state = 'open') AND updated_at < ?) "
                    "OR (state = 'confirmed' AND updated_at < ?)",
                    (now - OPEN_EXPIRY_S, now - keep_confirmed_s),
                )
                if not self.outbox.has_pending(row[0])
            ]
            conn.executemany("DELETE FROM receipts WHERE receipt_id = ?", [(r,) for r in doomed])
            conn.executemany("DELETE FROM refunds WHERE receipt_id = ?", [(r,) for r in doomed])
        return len(doomed)

    def owns_receipt(self, receipt_id: str) -> bool:
        """True while an offline operation of this receipt waits for central: the daemon then
        keeps the receipt's later calls on the edge, so that they cannot overtake it."""
        return self.outbox.has_pending(receipt_id)
