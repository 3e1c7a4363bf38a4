"""Customer accounts: the points ledger, bonus lifetime and the customer document as synced.

Theory of operation: a balance is never stored; it is the sum of the customer's ledger
rows (accrual, redemption, refund, adjustment, expiry). Positive rows are *lots*: each keeps
``remaining`` points that negative rows consume, soonest-expiring first (then oldest). An
accrual lot may wait for an activation delay (not spendable, not consumed) and may expire
after a validity period; :func:`settle` turns due activations into spendable points and
expired remainders into ``expiry`` rows. Both delays are off unless configured, per
promotion (``points_lifetime`` in the promotion document) or globally (settings
``points.activation_days`` / ``points.validity_days``).

The customer document as synced is the stored document plus the derived state: the
spendable ``balance``, ``counters`` and ``purchases``. :func:`refresh_customer` rebuilds it
and takes a new sync version only when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from central.clock import to_text
from central.storage import LedgerKind, LedgerRow, LotUse, Transaction
from loyalty.documents import POINTS_REWARDS
from protos.sync import canonical_json
from tillgate.errors import DocumentError

#: Derived keys of a customer document: central owns them once the document is loaded.
DERIVED_KEYS = ("balance", "counters", "purchases")

ACTIVATION_SETTING = "points.activation_days"
VALIDITY_SETTING = "points.validity_days"


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long accrued points wait before they can be spent, and how long they live."""

    activation: timedelta | None = None
    validity: timedelta | None = None


#: The longest lifetime, horizon or period in days: a century (far beyond it, dates overflow).
MAX_DAYS = 36_500


def parse_days(value: object, where: str) -> int:
    """A whole number of days 0..MAX_DAYS (an int or its digits); raises DocumentError."""
    text = str(value).strip() if isinstance(value, int | str) else ""
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()):
        raise DocumentError(f"must be a whole number of days, got {value!r}", key=where)
    if len(text) > 6 or int(text) > MAX_DAYS:
        raise DocumentError(f"must be at most {MAX_DAYS} days, got {text}", key=where)
    return int(text)


def _days(value: object, where: str) -> timedelta | None:
    if value is None or value == "":
        return None
    days = parse_days(value, where)
    return timedelta(days=days) if days else None


def global_lifetime(tx: Transaction) -> Lifetime:
    """The lifetime configured in the settings table (off when unset)."""
    return Lifetime(
        activation=_days(tx.setting(ACTIVATION_SETTING), ACTIVATION_SETTING),
        validity=_days(tx.setting(VALIDITY_SETTING), VALIDITY_SETTING),
    )


def promotion_lifetime(promotion: Mapping[str, Any]) -> Lifetime | None:
    """``{"points_lifetime": {"activation_days": 14, "validity_days": 365}}`` of a promotion."""
    block = promotion.get("points_lifetime")
    if not isinstance(block, Mapping):
        return None
    return Lifetime(
        activation=_days(block.get("activation_days"), "points_lifetime.activation_days"),
        validity=_days(block.get("validity_days"), "points_lifetime.validity_days"),
    )


def lifetime_for(tx: Transaction, promotion_ids: list[str]) -> Lifetime:
    """The lifetime of a receipt's accrual, per key (activation, validity): the first applied
    promotion that gives points and sets that key in its ``points_lifetime`` (0: off), else
    the global setting. A discount promotion's block says nothing about points it did not
    give, and a block setting one key leaves the other to the global setting."""
    found: dict[str, timedelta | None] = {}
    for promotion_id in promotion_ids:
        stored = tx.document("promotion", promotion_id)
        if stored is None or stored.raw is None:
            continue
        reward = stored.raw.get("reward")
        block = stored.raw.get("points_lifetime")
        if not (isinstance(reward, Mapping) and reward.get("type") in POINTS_REWARDS
                and isinstance(block, Mapping)):
            continue
        for key in ("activation_days", "validity_days"):
            value = block.get(key)
            if key not in found and value is not None and value != "":
                found[key] = _days(value, f"points_lifetime.{key}")
    default = global_lifetime(tx)
    return Lifetime(
        activation=found.get("activation_days", default.activation),
        validity=found.get("validity_days", default.validity),
    )


def record_movement(
    tx: Transaction,
    customer_id: str,
    kind: LedgerKind,
    points: int,
    *,
    now: datetime,
    store: str = "",
    receipt_id: str = "",
    reason: str = "",
    lifetime: Lifetime = Lifetime(),
) -> None:
    """Write one ledger row; a negative one consumes lots, a positive one becomes a lot.

    A negative ``refund`` row (accrual taken back) consumes the same receipt's accrual lot
    first, whether or not it is active yet.
    """
    if points == 0:
        return
    at = to_text(now)
    if points > 0:
        before = spendable_balance(tx, customer_id)
        available_at = now + lifetime.activation if lifetime.activation else None
        expires_from = available_at or now
        expires_at = expires_from + lifetime.validity if lifetime.validity else None
        tx.add_ledger(
            LedgerRow(
                customer_id=customer_id,
                kind=kind,
                points=points,
                at=at,
                store=store,
                receipt_id=receipt_id,
                reason=reason,
                available_at=to_text(available_at) if available_at else None,
                expires_at=to_text(expires_at) if expires_at else None,
                remaining=points,
                activated=available_at is None,
            )
        )
        if available_at is None:
            repay_debt(tx, customer_id, before, points)
        return
    row_id = tx.add_ledger(
        LedgerRow(
            customer_id=customer_id,
            kind=kind,
            points=points,
            at=at,
            store=store,
            receipt_id=receipt_id,
            reason=reason,
        )
    )
    owed = -points
    if kind == "refund":
        for lot in tx.receipt_lots(customer_id, store, receipt_id):
            owed = _consume(tx, lot, owed, row_id)
    _consume_in_order(tx, customer_id, owed, row_id)


def _consume_in_order(
    tx: Transaction, customer_id: str, owed: int, row_id: int | None = None
) -> None:
    while owed > 0:
        lots = tx.consumable_lots(customer_id, 32)
        if not lots:
            return  # the balance goes negative (allowed: spec promotions §5.16)
        for lot in lots:
            owed = _consume(tx, lot, owed, row_id)
            if owed == 0:
                return


def repay_debt(tx: Transaction, customer_id: str, balance_before: int, added: int) -> None:
    """A negative spendable balance is a debt no lot backs (lots always hold exactly
    max(0, balance)); ``added`` new spendable points pay it first, so that they cannot
    expire a second time."""
    if balance_before < 0:
        _consume_in_order(tx, customer_id, min(added, -balance_before))


def _consume(tx: Transaction, lot: LedgerRow, owed: int, row_id: int | None) -> int:
    """Take up to ``owed`` from ``lot`` for ledger row ``row_id`` (None: a debt repaid, which
    no refund gives back); returns what is still owed."""
    take = min(owed, lot.remaining)
    if take:
        tx.set_lot_remaining(lot.id, lot.remaining - take)
        if row_id is not None:
            tx.add_lot_use(row_id, lot.id, take)
    return owed - take


def reversible_accrual(tx: Transaction, customer_id: str, store: str, receipt_id: str) -> int:
    """How much of a receipt's accrual a refund may still take back: what it accrued less
    what expired (gone already: taking it again would take other points), from its lots or
    from restored lots carrying its points, and less what earlier refunds took back."""
    accrued, expired, reversed_before = tx.accrual_standing(customer_id, store, receipt_id)
    return max(0, accrued - expired - reversed_before)


def restore_redemption(
    tx: Transaction,
    customer_id: str,
    points: int,
    *,
    now: datetime,
    store: str,
    receipt_id: str,
    reason: str,
) -> None:
    """Give back ``points`` a receipt redeemed, as ``refund`` lots with the expiry of the lots
    the redemption took them from (latest-expiring first: the reverse of consumption), each
    naming the accrual lot whose points it carries (``origin``). Points whose lot expired
    meanwhile come back expired: a lot and its ``expiry`` row at once. Points from no
    recorded lot (redeemed before lots were tracked, or into a debt) come back without an
    expiry.

    Points from an accrual whose receipt was refunded since were taken back by that refund
    from the customer's other lots; they come back as those lots' points, with their expiry:
    otherwise the customer would pay for them twice (once to the refund, once to the expiry
    of the refunded accrual)."""
    if points <= 0:
        return
    left = points
    amounts: dict[tuple[str | None, int | None], int] = {}
    for use in tx.redemption_uses(customer_id, store, receipt_id):
        take = min(left, use.points - use.restored)
        if take > 0:
            tx.restore_use(use.row_id, use.lot_id, take)
            for key, amount in _restored_sources(tx, use, take):
                amounts[key] = amounts.get(key, 0) + amount
            left -= take
        if left == 0:
            break
    if left:
        amounts[None, None] = amounts.get((None, None), 0) + left
    at = to_text(now)
    for (expires_at, origin), amount in amounts.items():
        lot = LedgerRow(customer_id=customer_id, kind="refund", points=amount, at=at,
                        store=store, receipt_id=receipt_id, reason=reason,
                        expires_at=expires_at, remaining=amount, origin=origin)
        if expires_at is not None and expires_at <= at:
            lot_id = tx.add_ledger(replace(lot, remaining=0))
            expiry_id = tx.add_ledger(LedgerRow(
                customer_id=customer_id, kind="expiry", points=-amount, at=at, store=store,
                receipt_id=receipt_id, reason=f"lot {lot_id} expired"))
            tx.add_lot_use(expiry_id, lot_id, amount)
            continue
        before = spendable_balance(tx, customer_id)
        tx.add_ledger(lot)
        repay_debt(tx, customer_id, before, amount)


def _restored_sources(
    tx: Transaction, use: LotUse, points: int
) -> list[tuple[tuple[str | None, int | None], int]]:
    """Where ``points`` of a redemption's ``use`` come back from, as ((expiry, origin),
    points): first what a refund of the used lot's receipt paid back from other lots,
    then the used lot itself."""
    found: list[tuple[tuple[str | None, int | None], int]] = []
    for paid in tx.reversal_uses(use.origin):
        take = min(points, paid.points - paid.restored)
        if take > 0:
            tx.restore_use(paid.row_id, paid.lot_id, take)
            found.append(((paid.expires_at, paid.origin), take))
            points -= take
        if points == 0:
            return found
    found.append(((use.expires_at, use.origin), points))
    return found


def spendable_balance(tx: Transaction, customer_id: str) -> int:
    """The ledger sum less points still waiting for activation."""
    return tx.ledger_sum(customer_id) - tx.waiting_points(customer_id)


def settle(tx: Transaction, now: datetime, customer_id: str | None = None) -> set[str]:
    """Activate due lots and expire old ones (for one customer or all); returns the
    customers whose spendable balance changed. Their documents are refreshed."""
    changed: set[str] = set()
    at = to_text(now)
    for lot in tx.lots_due(at, customer_id):
        if not lot.activated and lot.available_at is not None and lot.available_at <= at:
            before = spendable_balance(tx, lot.customer_id)
            tx.activate_lot(lot.id)
            repay_debt(tx, lot.customer_id, before, lot.remaining)
            changed.add(lot.customer_id)
    # Read again: activation may have used lots to repay a debt.
    for lot in tx.lots_due(at, customer_id):
        if lot.activated and lot.remaining > 0 and lot.expires_at is not None:
            expiry_id = tx.add_ledger(
                LedgerRow(
                    customer_id=lot.customer_id,
                    kind="expiry",
                    points=-lot.remaining,
                    at=lot.expires_at,
                    store=lot.store,
                    receipt_id=lot.receipt_id,
                    reason=f"lot {lot.id} expired",
                )
            )
            tx.add_lot_use(expiry_id, lot.id, lot.remaining)
            tx.set_lot_remaining(lot.id, 0)
            changed.add(lot.customer_id)
    for changed_id in sorted(changed):
        refresh_customer(tx, changed_id, now)
    return changed


def customer_body(tx: Transaction, customer_id: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The customer document as synced: stored document + balance, counters, purchases."""
    body = {key: value for key, value in raw.items() if key not in DERIVED_KEYS}
    body["balance"] = spendable_balance(tx, customer_id)
    body["counters"] = tx.counters(customer_id)
    body["purchases"] = tx.purchases(customer_id)
    return body


def refresh_customer(tx: Transaction, customer_id: str, now: datetime) -> bool:
    """Rebuild the synced customer document; bump its version only when it changed."""
    stored = tx.document("customer", customer_id)
    if stored is None or stored.raw is None:
        return False
    body = canonical_json(customer_body(tx, customer_id, stored.raw))
    if body == stored.body:
        return False
    tx.put_document("customer", customer_id, stored.raw, body, to_text(now))
    return True
