"""Central processing: the register protocol's receipt lifecycle over central's storage.

Theory of operation: every Processing call is one write transaction. It first looks for a
kept answer under (store, request id): the same request (its message with the id set aside)
gets the first answer back, a different one is ``conflict``/``id_reused``. Otherwise the
call checks the receipt's state against the lifecycle table (register protocol §2.4) and
either does the work or refuses with an ``Error`` in the reply (a refusal undoes whatever
the call had written, through a savepoint); either answer is kept. Pricing is the loyalty
engine's (``price_receipt``); confirm and refund apply the engine's effects to the ledger,
counters, coupons and purchases in the same transaction. gRPC never appears here: the
servicer in central.server is a thin shell.

Receipt states: ``open`` (a calculation is kept), ``confirmed`` (final; refunds allowed),
``cancelled``. An open receipt whose last calculation is older than
:data:`OPEN_RECEIPT_LIFETIME` counts as cancelled and is stored so when next touched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from google.protobuf.message import Message as ProtoMessage

from central import clock
from central.accounts import (
    lifetime_for,
    record_movement,
    refresh_customer,
    restore_redemption,
    reversible_accrual,
    settle,
    spendable_balance,
)
from central.storage import (
    KeptRefund,
    KeptRequest,
    ReceiptRecord,
    Repository,
    Transaction,
)
from loyalty import Calculation as CalculationValue
from loyalty import (
    CatalogItem,
    ConfirmEffects,
    Customer,
    CustomerRef,
    Message,
    OverRefund,
    PromotionIndex,
    Receipt,
    RefundLine,
    confirm_effects,
    confirm_messages,
    customer_summary,
    normalize_phone,
    offers_of,
    parse_catalog_item,
    parse_customer,
    parse_promotion,
    price_receipt,
    refund_effects,
)
from loyalty.messages import customer_line
from loyalty.values import parse_time
from protos import tillgate_pb2 as pb
from protos.convert import (
    calculation_from_pb,
    calculation_to_pb,
    customer_ref_from_pb,
    customer_summary_to_pb,
    messages_to_pb,
    receipt_from_pb,
    refund_lines_from_pb,
    refund_lines_to_pb,
)
from protos.sync import canonical_json
from tillgate.errors import StorageError, ValidationError

log = structlog.get_logger("tillgate.central")

#: An open receipt not confirmed within this time counts as cancelled (§2.4).
OPEN_RECEIPT_LIFETIME = timedelta(days=7)
#: The store time zone when Context.timezone is empty.
DEFAULT_TIMEZONE = "Europe/Moscow"

ReplyT = TypeVar("ReplyT", bound=ProtoMessage)


class Refusal(Exception):  # noqa: N818 -- a domain answer, not a failure
    """A domain refusal: becomes ``reply.error``; whatever the call wrote before is undone."""

    def __init__(
        self, code: str, message: str, *, reason: str = "", field: str = "",
        remaining: tuple[RefundLine, ...] = (),
    ) -> None:
        super().__init__(message)
        self.error = pb.Error(
            code=code,
            reason=reason,
            field=field,
            message=message,
            remaining=refund_lines_to_pb(remaining),
        )


def _error_reply(reply_type: type[ReplyT], refusal: Refusal) -> ReplyT:
    reply = reply_type()
    reply.error.CopyFrom(refusal.error)  # type: ignore[attr-defined]  # every reply type has ``error``
    return reply


def conflict(reason: str, message: str, **kwargs: Any) -> Refusal:
    """A ``conflict`` refusal with its reason (register protocol §3)."""
    return Refusal("conflict", message, reason=reason, **kwargs)


def fingerprint(method: str, request: ProtoMessage) -> bytes:
    """The identity of a request for repeat detection: the message with its id set aside."""
    copy = type(request)()
    copy.CopyFrom(request)
    context = getattr(copy, "context", None)
    if context is not None:
        context.request_id = ""
    return method.encode() + b"\0" + copy.SerializeToString(deterministic=True)


def fiscal_text(fiscal: pb.Fiscal) -> str:
    """The fiscal data as compared between confirms (canonical JSON)."""
    return canonical_json(
        {"fn": fiscal.fn, "document": fiscal.document, "sign": fiscal.sign, "at": fiscal.at}
    ).decode()


def store_timezone(name: str) -> tzinfo:
    """Context.timezone as a tzinfo; refuses unknown names as ``invalid``."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, a name too long
        raise Refusal(
            "invalid", f"unknown time zone {name!r}", field="context.timezone"
        ) from None


class Processing:
    """The Processing service's logic over a repository (see module docstring)."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._promotions_lock = threading.Lock()
        self._promotions: tuple[str, PromotionIndex] | None = None

    # ------------------------------------------------------------------ plumbing
    def _kept(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[ReplyT],
        work: Callable[[Transaction, datetime], ReplyT],
    ) -> ReplyT:
        context: pb.Context = getattr(request, "context")  # noqa: B009 -- every request has one
        store, request_id = context.store, context.request_id
        identity = fingerprint(method, request)
        now = clock.now()
        if not store:
            return _error_reply(
                reply_type, Refusal("invalid", "the store is required", field="context.store")
            )
        with self.repository.transaction() as tx:
            if request_id:
                kept = tx.kept_request(store, request_id)
                if kept is not None:
                    if kept.method == method and kept.fingerprint == identity:
                        return reply_type.FromString(kept.reply)
                    return _error_reply(reply_type, conflict(
                        "id_reused", f"request id {request_id!r} was used for another request"
                    ))
            try:
                with tx.savepoint():  # a refusal leaves nothing of the work behind
                    reply = work(tx, now)
            except Refusal as refusal:
                reply = _error_reply(reply_type, refusal)
            if request_id:
                tx.keep_request(
                    store,
                    request_id,
                    KeptRequest(method, identity, reply.SerializeToString()),
                    clock.to_text(now),
                )
            return reply

    def _receipt(
        self, tx: Transaction, store: str, receipt_id: str, now: datetime
    ) -> ReceiptRecord | None:
        record = tx.receipt(store, receipt_id)
        if (
            record is not None
            and record.state == "open"
            and record.calculated_at is not None
            and clock.from_text(record.calculated_at) < now - OPEN_RECEIPT_LIFETIME
        ):
            record = replace(record, state="cancelled")
            tx.put_receipt(record)
            log.info("receipt_expired", store=store, receipt_id=receipt_id)
        return record

    def promotion_index(self, tx: Transaction) -> PromotionIndex:
        """The promotions as the engine's index, rebuilt only when promotions changed."""
        marker = tx.setting("kind.promotion.changed") or ""
        with self._promotions_lock:
            if self._promotions is not None and self._promotions[0] == marker:
                return self._promotions[1]
        index = PromotionIndex(
            parse_promotion(doc.raw) for doc in tx.documents("promotion") if doc.raw is not None
        )
        with self._promotions_lock:
            self._promotions = (marker, index)
        return index

    @staticmethod
    def find_customer(tx: Transaction, ref: CustomerRef) -> str | None:
        """A customer id by card, phone (digits only) or app token."""
        value = normalize_phone(ref.value) if ref.kind == "phone" else ref.value
        return tx.find_customer(ref.kind, value) if value else None

    @staticmethod
    def load_customer(tx: Transaction, customer_id: str, now: datetime) -> Customer | None:
        """The customer as the engine sees it (synced document), lifetime settled first."""
        settle(tx, now, customer_id)
        stored = tx.document("customer", customer_id)
        if stored is None or stored.body is None or not stored.body:
            return None
        return parse_customer(json.loads(stored.body))

    @staticmethod
    def catalog_for(tx: Transaction, receipt: Receipt) -> dict[str, CatalogItem]:
        """The catalog items of the receipt's skus (unknown skus are left out)."""
        items: dict[str, CatalogItem] = {}
        for line in receipt.lines:
            if line.sku in items:
                continue
            stored = tx.document("catalog", line.sku)
            if stored is not None and stored.raw is not None:
                items[line.sku] = parse_catalog_item(stored.raw)
        return items

    @staticmethod
    def spent_coupons(tx: Transaction, codes: tuple[str, ...]) -> frozenset[str]:
        """Which of the receipt's coupon codes were spent already."""
        return frozenset(
            code for code in codes
            if (doc := tx.document("coupon", code.upper())) is not None and not doc.deleted
        )

    # ------------------------------------------------------------------ calculate
    def calculate(self, request: pb.CalculateRequest) -> pb.CalculateReply:
        """Price a receipt and keep the calculation (replaces an open one)."""
        return self._kept(
            "calculate", request, pb.CalculateReply,
            lambda tx, now: self._calculate(tx, now, request),
        )

    def _calculate(
        self, tx: Transaction, now: datetime, request: pb.CalculateRequest
    ) -> pb.CalculateReply:
        store = request.context.store
        record = self._receipt(tx, store, request.receipt.id, now)
        if record is not None and record.state != "open":
            raise conflict(record.state, f"receipt {request.receipt.id!r} is {record.state}")
        receipt, calculation, customer_id = self.price(tx, request.context, request.receipt, now)
        tx.put_receipt(
            ReceiptRecord(
                store=store,
                receipt_id=receipt.id,
                state="open",
                mode="online",
                customer_id=customer_id,
                receipt=request.receipt.SerializeToString(),
                calculation=calculation_to_pb(calculation).SerializeToString(),
                calculated_at=clock.to_text(now),
                due=calculation.due,
            )
        )
        if customer_id is not None:
            tx.mark_seen(store, customer_id, clock.to_text(now))
        log.info(
            "calculated", store=store, receipt_id=receipt.id, due=calculation.due,
            customer=customer_id,
        )
        return pb.CalculateReply(calculation=calculation_to_pb(calculation))

    def price(
        self, tx: Transaction, context: pb.Context, receipt_msg: pb.Receipt, now: datetime
    ) -> tuple[Receipt, CalculationValue, str | None]:
        """Validate and price a receipt without storing anything."""
        tz = store_timezone(context.timezone)
        if not receipt_msg.id:
            raise Refusal("invalid", "receipt id is required", field="receipt.id")
        if receipt_msg.opened_at:
            try:
                parse_time(receipt_msg.opened_at, "receipt.opened_at")
            except ValidationError as exc:
                raise Refusal("invalid", exc.message, field=exc.field) from None
        if receipt_msg.HasField("customer") and not (
            receipt_msg.customer.card or receipt_msg.customer.phone or receipt_msg.customer.token
        ):
            raise Refusal("invalid", "needs a card, phone or token", field="receipt.customer")
        try:
            receipt = receipt_from_pb(receipt_msg)
        except ValidationError as exc:
            raise Refusal("invalid", exc.message, field=exc.under("receipt").field) from None
        if receipt.opened_at is None:
            receipt = replace(receipt, opened_at=now)
        customer: Customer | None = None
        customer_id: str | None = None
        if receipt.customer is not None:
            customer_id = self.find_customer(tx, receipt.customer)
            if customer_id is not None:
                customer = self.load_customer(tx, customer_id, now)
                if customer is None:
                    customer_id = None
        calculation = price_receipt(
            receipt,
            catalog=self.catalog_for(tx, receipt),
            promotions=self.promotion_index(tx),
            customer=customer,
            store=context.store,
            tz=tz,
            spent_coupons=self.spent_coupons(tx, receipt.coupons),
        )
        return receipt, calculation, customer_id

    # ------------------------------------------------------------------ confirm
    def confirm(self, request: pb.ConfirmRequest) -> pb.ConfirmReply:
        """Finalize the last calculation: points, counters, coupons, purchases."""
        return self._kept(
            "confirm", request, pb.ConfirmReply,
            lambda tx, now: self._confirm(tx, now, request),
        )

    def _confirm(
        self, tx: Transaction, now: datetime, request: pb.ConfirmRequest
    ) -> pb.ConfirmReply:
        store, receipt_id = request.context.store, request.receipt_id
        if not receipt_id:
            raise Refusal("invalid", "receipt_id is required", field="receipt_id")
        tz = store_timezone(request.context.timezone)
        record = self._receipt(tx, store, receipt_id, now)
        if record is None:
            raise Refusal("not_found", f"receipt {receipt_id!r} is unknown", field="receipt_id")
        fiscal = fiscal_text(request.fiscal)
        if record.state == "confirmed":
            if record.fiscal == fiscal and record.confirmation is not None:
                return pb.ConfirmReply.FromString(record.confirmation)
            raise conflict(
                "confirmed", f"receipt {receipt_id!r} is confirmed with other fiscal data"
            )
        if record.state == "cancelled":
            raise conflict("cancelled", f"receipt {receipt_id!r} is cancelled")
        if request.due != record.due:
            raise conflict(
                "stale",
                f"due {request.due} differs from the last calculation's due {record.due}",
                field="due",
            )
        receipt, calculation = stored_receipt(record)
        customer = self._calculation_customer(tx, calculation, now)
        self._check_still_holds(tx, calculation, customer)
        effects = confirm_effects(calculation, customer)
        balance = self.apply_confirm(
            tx, store, receipt, calculation, effects, now=now, tz=tz
        )
        messages = confirm_messages(
            calculation, customer, now=now, tz=tz, balance_after=balance
        )
        reply = pb.ConfirmReply(
            receipt_id=receipt_id,
            mode="online",
            points=pb.PointsMovement(accrued=effects.accrued, redeemed=effects.redeemed),
            messages=messages_to_pb(messages),
        )
        if balance is not None:
            reply.points.balance = balance
        tx.put_receipt(
            replace(
                record,
                state="confirmed",
                mode="online",
                customer_id=effects.customer_id,
                fiscal=fiscal,
                confirmation=reply.SerializeToString(),
                confirmed_at=clock.to_text(now),
            )
        )
        log.info(
            "confirmed", store=store, receipt_id=receipt_id, accrued=effects.accrued,
            redeemed=effects.redeemed, customer=effects.customer_id,
        )
        return reply

    def _check_still_holds(
        self, tx: Transaction, calculation: CalculationValue, customer: Customer | None
    ) -> None:
        """Refuse as ``stale`` a calculation whose grounds another confirm took since
        (register protocol §2.3): its coupons, the points it redeems, the first-purchase and
        counter conditions of its promotions. Two lanes can price against the same state;
        only the first confirm may spend it."""
        spent = sorted(self.spent_coupons(tx, calculation.effects.coupons))
        if spent:
            raise conflict("stale", f"coupon {spent[0]} was spent after the calculation")
        redeem = calculation.points.redeem
        if redeem and calculation.customer is not None:
            available = spendable_balance(tx, calculation.customer.id)
            if redeem > available:
                raise conflict(
                    "stale",
                    f"the calculation redeems {redeem} points, {max(0, available)} available now",
                )
        index = self.promotion_index(tx)
        for applied in calculation.promotions:
            promotion = index.get(applied.id)
            if promotion is None:  # a personal offer, or deleted since: no condition to see
                continue
            conditions = promotion.conditions
            if conditions.first_purchase and (customer is None or customer.purchases > 0):
                raise conflict(
                    "stale", f"promotion {applied.id!r} needs a first purchase, "
                    "and the customer has one now",
                )
            counter = conditions.counter
            if counter is not None and (
                customer is None or customer.counters.get(counter.name, 0) + 1 < counter.at_least
            ):
                raise conflict(
                    "stale", f"promotion {applied.id!r}: counter {counter.name!r} is below "
                    f"{counter.at_least} now",
                )

    def _calculation_customer(
        self, tx: Transaction, calculation: CalculationValue, now: datetime
    ) -> Customer | None:
        if calculation.customer is None:
            return None
        return self.load_customer(tx, calculation.customer.id, now)

    def apply_confirm(
        self,
        tx: Transaction,
        store: str,
        receipt: Receipt,
        calculation: CalculationValue,
        effects: ConfirmEffects,
        *,
        now: datetime,
        tz: tzinfo,
    ) -> int | None:
        """Apply a confirm's effects in the open transaction; returns the balance after."""
        customer_id = effects.customer_id
        if customer_id is None:
            for code in effects.coupons:
                self._spend_coupon(tx, code, store, receipt.id, now)
            return None
        # The redemption pays with the balance before this receipt, never with its own
        # accrual: a refund then restores the points into the lots they really came from.
        record_movement(
            tx, customer_id, "redemption", -effects.redeemed, now=now, store=store,
            receipt_id=receipt.id,
        )
        lifetime = lifetime_for(tx, [promotion.id for promotion in calculation.promotions])
        record_movement(
            tx, customer_id, "accrual", effects.accrued, now=now, store=store,
            receipt_id=receipt.id, lifetime=lifetime,
        )
        counters = tx.counters(customer_id)
        for delta in effects.counters:
            tx.set_counter(customer_id, delta.name, counters.get(delta.name, 0) + delta.add)
            counters[delta.name] = counters.get(delta.name, 0) + delta.add
        tx.set_purchases(customer_id, tx.purchases(customer_id) + 1)
        for code in effects.coupons:
            self._spend_coupon(tx, code, store, receipt.id, now)
        opened = receipt.opened_at or now
        month = opened.astimezone(tz).strftime("%Y-%m")
        for line in receipt.lines:
            tx.add_purchased_item(customer_id, line.sku, month, line.quantity)
        tx.mark_seen(store, customer_id, clock.to_text(now))
        refresh_customer(tx, customer_id, now)
        return spendable_balance(tx, customer_id)

    @staticmethod
    def _spend_coupon(
        tx: Transaction, code: str, store: str, receipt_id: str, now: datetime
    ) -> None:
        body = {"code": code.upper()}
        at = clock.to_text(now)
        tx.put_document("coupon", code.upper(), body, canonical_json(body), at)
        log.info("coupon_spent", store=store, receipt_id=receipt_id, code=code.upper())

    # ------------------------------------------------------------------ cancel
    def cancel(self, request: pb.CancelRequest) -> pb.CancelReply:
        """Cancel an open receipt; an unknown or cancelled one is answered with no effect."""
        return self._kept(
            "cancel", request, pb.CancelReply,
            lambda tx, now: self._cancel(tx, now, request),
        )

    def _cancel(self, tx: Transaction, now: datetime, request: pb.CancelRequest) -> pb.CancelReply:
        store, receipt_id = request.context.store, request.receipt_id
        if not receipt_id:
            raise Refusal("invalid", "receipt_id is required", field="receipt_id")
        record = self._receipt(tx, store, receipt_id, now)
        if record is not None and record.state == "confirmed":
            raise conflict("confirmed", f"receipt {receipt_id!r} is confirmed: use refund")
        if record is not None and record.state == "open":
            tx.put_receipt(replace(record, state="cancelled"))
            log.info("cancelled", store=store, receipt_id=receipt_id)
        return pb.CancelReply(receipt_id=receipt_id)

    # ------------------------------------------------------------------ refund
    def refund(self, request: pb.RefundRequest) -> pb.RefundReply:
        """Refund part or all of a confirmed receipt; ``refund_id`` makes it idempotent."""
        return self._kept(
            "refund", request, pb.RefundReply,
            lambda tx, now: self._refund(tx, now, request),
        )

    def _refund(self, tx: Transaction, now: datetime, request: pb.RefundRequest) -> pb.RefundReply:
        store, receipt_id, refund_id = (
            request.context.store, request.receipt_id, request.refund_id,
        )
        if not refund_id:
            raise Refusal("invalid", "refund_id is required", field="refund_id")
        if not receipt_id:
            raise Refusal("invalid", "receipt_id is required", field="receipt_id")
        identity = refund_identity(request)
        kept = tx.refund(store, refund_id)
        if kept is not None:
            if kept.request == identity:
                return pb.RefundReply.FromString(kept.reply)
            raise conflict("id_reused", f"refund_id {refund_id!r} was used for another refund")
        record = self.sold_receipt(tx, store, receipt_id, now)
        if record is None:
            raise Refusal("not_found", f"receipt {receipt_id!r} is unknown", field="receipt_id")
        if record.state != "confirmed":
            raise conflict(record.state, f"receipt {receipt_id!r} is {record.state}, not confirmed")
        reply = self.apply_refund(tx, record, request, now=now, given=None, at_store=store)
        tx.put_refund(
            store, KeptRefund(refund_id, receipt_id, identity, reply.SerializeToString()),
            clock.to_text(now),
        )
        return reply

    def sold_receipt(
        self, tx: Transaction, store: str, receipt_id: str, now: datetime
    ) -> ReceiptRecord | None:
        """The receipt a refund at ``store`` names: the store's own, else the one receipt
        with that id at another store (receipt ids are unique in the chain, register
        protocol §2.2, and a return is taken at any store). Several stores holding the id
        is ``not_found``: which sale is meant cannot be told."""
        record = self._receipt(tx, store, receipt_id, now)
        if record is not None:
            return record
        elsewhere = tx.receipts_with_id(receipt_id)
        if len(elsewhere) > 1:
            raise Refusal(
                "not_found",
                f"receipt {receipt_id!r} is known at several stores "
                f"({', '.join(r.store for r in elsewhere)}): refund it where it was sold",
                field="receipt_id",
            )
        if not elsewhere:
            return None
        return self._receipt(tx, elsewhere[0].store, receipt_id, now)

    def apply_refund(
        self,
        tx: Transaction,
        record: ReceiptRecord,
        request: pb.RefundRequest,
        *,
        now: datetime,
        given: pb.RefundPoints | None,
        at_store: str = "",
    ) -> pb.RefundReply:
        """Check and apply a refund of a confirmed receipt (``given``: points the store
        already told the customer, kept as they are; ``at_store``: the store taking the
        return when not the one that sold it)."""
        receipt, calculation = stored_receipt(record)
        known = {line.n for line in receipt.lines}
        named: set[int] = set()
        for index, line in enumerate(request.lines):
            if line.n not in known:
                raise Refusal("invalid", f"line n {line.n} is not on the receipt",
                              field=f"lines[{index}].n")
            if line.n in named:
                raise Refusal("invalid", f"line {line.n} is named twice",
                              field=f"lines[{index}].n")
            named.add(line.n)
            if line.quantity_milli <= 0:
                raise Refusal("invalid", "quantity must be > 0", field=f"lines[{index}].quantity")
        before = tx.refunded_lines(record.store, record.receipt_id)
        lines = refund_lines_from_pb(request.lines) if request.lines else None
        try:
            effects = refund_effects(receipt, calculation, refunded_before=before, lines=lines)
        except OverRefund as exc:
            raise conflict(
                "over_refund", "the refund is over the quantity that remains",
                remaining=tuple(exc.remaining),
            ) from None
        except ValidationError as exc:
            raise Refusal("invalid", exc.message, field=exc.field) from None
        reversed_points = given.reversed if given is not None else effects.reversed
        restored_points = given.restored if given is not None else effects.restored
        tx.add_refunded_lines(
            record.store, record.receipt_id, {line.n: line.quantity for line in effects.lines}
        )
        tx.put_receipt(replace(record, refunded=record.refunded + effects.amount))
        balance: int | None = None
        customer_id = effects.customer_id or record.customer_id
        messages: list[Message] = []
        if customer_id is not None:
            # The rows stay under the sale's store: that is where its lots are.
            refund = f"refund {request.refund_id}" + (
                f" at {at_store}" if at_store and at_store != record.store else "")
            # Expire first: what the refund may take back must not depend on whether a
            # Balance call happened to settle the customer before. Restore before reversing:
            # points given back into this receipt's own accrual (paid back when an earlier
            # sale was refunded) are then taken back by the reversal, not left to expire.
            settle(tx, now, customer_id)
            restore_redemption(
                tx, customer_id, restored_points, now=now, store=record.store,
                receipt_id=record.receipt_id, reason=f"{refund}: redemption",
            )
            reversed_points = min(reversed_points, reversible_accrual(
                tx, customer_id, record.store, record.receipt_id))
            record_movement(
                tx, customer_id, "refund", -reversed_points, now=now, store=record.store,
                receipt_id=record.receipt_id, reason=f"{refund}: accrual",
            )
            refresh_customer(tx, customer_id, now)
            balance = spendable_balance(tx, customer_id)
            customer = self.load_customer(tx, customer_id, now)
            if customer is not None:
                messages.append(customer_line(customer, balance))
        points = pb.RefundPoints(reversed=reversed_points, restored=restored_points)
        if balance is not None:
            points.balance = balance
        log.info(
            "refunded", store=record.store, receipt_id=record.receipt_id,
            refund_id=request.refund_id, amount=effects.amount, reversed=reversed_points,
            restored=restored_points,
        )
        return pb.RefundReply(refund_id=request.refund_id, mode="online", points=points,
                              messages=messages_to_pb(messages))

    # ------------------------------------------------------------------ identify / balance
    def identify(self, request: pb.IdentifyRequest) -> pb.IdentifyReply:
        """The customer by card, phone or token, with offers valid now."""
        return self._kept(
            "identify", request, pb.IdentifyReply,
            lambda tx, now: self._identify(tx, now, request, with_offers=True),
        )

    def balance(self, request: pb.IdentifyRequest) -> pb.IdentifyReply:
        """The customer's summary and spendable balance."""
        return self._kept(
            "balance", request, pb.IdentifyReply,
            lambda tx, now: self._identify(tx, now, request, with_offers=False),
        )

    def _identify(
        self, tx: Transaction, now: datetime, request: pb.IdentifyRequest, *, with_offers: bool
    ) -> pb.IdentifyReply:
        tz = store_timezone(request.context.timezone)
        try:
            ref = customer_ref_from_pb(request.customer)
        except (ValueError, ValidationError):
            raise Refusal("invalid", "customer needs a card, phone or token",
                          field="customer") from None
        customer_id = self.find_customer(tx, ref)
        customer = self.load_customer(tx, customer_id, now) if customer_id else None
        if customer is None:
            raise Refusal("not_found", f"no customer with {ref.masked()}", field="customer")
        balance = spendable_balance(tx, customer.id)
        summary = customer_summary(customer, balance=balance)
        reply = pb.IdentifyReply(
            customer=customer_summary_to_pb(summary),
            messages=messages_to_pb([customer_line(customer, balance)]),
        )
        tx.mark_seen(request.context.store, customer.id, clock.to_text(now))
        if with_offers:
            ends = {offer.id: offer.valid.end for offer in customer.personal_offers}
            for offer in offers_of(customer, now, tz=tz):
                end = ends.get(offer.id)
                reply.offers.append(pb.Offer(
                    id=offer.id, name=offer.name, text=offer.text,
                    valid_to=end.isoformat() if end is not None else "",
                ))
        log.info("identified", store=request.context.store, customer=customer.id,
                 ref=ref.masked())
        return reply


def refund_identity(request: pb.RefundRequest) -> bytes:
    """What makes two refunds with one refund_id the same refund: the request, context aside."""
    copy = pb.RefundRequest()
    copy.CopyFrom(request)
    copy.ClearField("context")
    return fingerprint("refund", copy)


def stored_receipt(record: ReceiptRecord) -> tuple[Receipt, CalculationValue]:
    """The receipt and its last calculation as kept with an open or confirmed receipt."""
    if record.receipt is None or record.calculation is None:
        raise StorageError(
            f"receipt {record.store}/{record.receipt_id} ({record.state}) has no calculation"
        )
    return (
        receipt_from_pb(pb.Receipt.FromString(record.receipt)),
        calculation_from_pb(pb.Calculation.FromString(record.calculation)),
    )
