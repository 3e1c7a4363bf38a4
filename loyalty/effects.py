"""What confirm and refund change (promotions spec §3.8, §5.16), as pure functions.

Theory of operation
-------------------
A :class:`~loyalty.values.Calculation` already carries everything its confirm needs
(points, counters, coupons), so central and the edge can finalize a receipt without the
promotions that priced it. :func:`confirm_effects` reads them off;
:func:`refund_effects` computes what a (partial) refund reverses.

Refunds use *cumulative shares*: the money of each line covered by everything refunded
so far (earlier refunds plus this one) is its amount after discounts × refunded ÷ sold
quantity, rounded half up; accrued points are reversed and redeemed points restored in
proportion to that refunded money over the receipt's amount after discounts (spec §3.8,
§5.16), rounded half up, and what earlier refunds already took is subtracted. Any
sequence of partial refunds that ends with the whole receipt therefore adds up exactly to
the whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loyalty.arithmetic import round_half_up
from loyalty.documents import Customer
from loyalty.values import Calculation, ConfirmEffects, Receipt, RefundEffects, RefundLine
from tillgate.errors import ValidationError

__all__ = ["OverRefund", "confirm_effects", "refund_effects"]


class OverRefund(ValidationError):  # noqa: N818 - the name is the API other rooms code against
    """A refund asks for more than remains of a line (register protocol: ``over_refund``)."""

    def __init__(self, field: str, message: str, remaining: tuple[RefundLine, ...]) -> None:
        super().__init__(field, message)
        self.remaining = remaining


def confirm_effects(calculation: Calculation, customer: Customer | None) -> ConfirmEffects:
    """The effects of confirming ``calculation`` for ``customer`` (the current document).

    ``first_purchase`` is True when the customer had no confirmed purchase yet.
    """
    customer_id = customer.id if customer is not None else (
        calculation.customer.id if calculation.customer is not None else None)
    if customer_id is None:
        return ConfirmEffects(None, 0, 0, (), calculation.effects.coupons, False)
    return ConfirmEffects(
        customer_id=customer_id,
        accrued=calculation.points.accrue,
        redeemed=calculation.points.redeem,
        counters=calculation.effects.counters,
        coupons=calculation.effects.coupons,
        first_purchase=customer is not None and customer.purchases == 0,
    )


_SCALE = 10**6  # shares of a line's quantity, for receipts whose lines were all free


def _share(whole: int, part: int, of: int) -> int:
    return round_half_up(whole * part, of) if of else 0


def refund_effects(
    receipt: Receipt,
    calculation: Calculation,
    *,
    refunded_before: Mapping[int, int],
    lines: Sequence[RefundLine] | None,
) -> RefundEffects:
    """What refunding ``lines`` (None = everything remaining) of a confirmed receipt reverses.

    ``refunded_before`` maps line n to the thousandths refunded by earlier refunds. Raises
    :class:`ValidationError` for an unknown line n or a quantity ≤ 0, and
    :class:`OverRefund` (with ``remaining``) when a quantity exceeds what remains.
    """
    sold = {line.n: line.quantity for line in receipt.lines}
    results = {result.n: result for result in calculation.lines}
    remaining = tuple(
        RefundLine(n, sold[n] - refunded_before.get(n, 0))
        for n in sorted(sold) if sold[n] - refunded_before.get(n, 0) > 0
    )
    requested: dict[int, int] = {}
    if lines is None:
        requested = {line.n: line.quantity for line in remaining}
        if not requested:
            raise OverRefund("lines", "nothing remains to refund", remaining)
    else:
        for index, line in enumerate(lines):
            if line.n not in sold:
                raise ValidationError(f"lines[{index}].n", f"no line {line.n} on the receipt")
            if line.quantity <= 0:
                raise ValidationError(f"lines[{index}].quantity", "must be > 0")
            requested[line.n] = requested.get(line.n, 0) + line.quantity
        for index, line in enumerate(lines):
            left = sold[line.n] - refunded_before.get(line.n, 0)
            if requested[line.n] > left:
                raise OverRefund(f"lines[{index}].quantity",
                                 f"line {line.n}: {requested[line.n]} thousandths asked, "
                                 f"{max(0, left)} remain", remaining)

    # Money refunded, per line, cumulatively: what all refunds so far cover minus what the
    # earlier ones covered, so a sequence of refunds ends exactly at the line's amount.
    amount_before = amount_after = 0
    for n in sorted(sold):
        result = results.get(n)
        if result is None:
            continue
        before = refunded_before.get(n, 0)
        after = before + requested.get(n, 0)
        amount_before += _share(result.amount, before, sold[n])
        amount_after += _share(result.amount, after, sold[n])

    # Accrual and redemption go back in proportion to the refunded amount after discounts
    # (spec §3.8, §5.16), again cumulatively.
    total_amount = sum(result.amount for result in calculation.lines)
    if total_amount > 0:
        done_before, done_after, whole = amount_before, amount_after, total_amount
    else:  # every line was free: count refunded quantity shares instead
        whole = len(sold) * _SCALE
        done_before = sum(_share(_SCALE, refunded_before.get(n, 0), sold[n]) for n in sold)
        done_after = sum(_share(_SCALE, refunded_before.get(n, 0) + requested.get(n, 0),
                                sold[n]) for n in sold)
    points = calculation.points
    reversed_points = (_share(points.accrue, done_after, whole)
                       - _share(points.accrue, done_before, whole))
    restored = _share(points.redeem, done_after, whole) - _share(points.redeem, done_before,
                                                                 whole)
    amount = amount_after - amount_before

    return RefundEffects(
        customer_id=calculation.customer.id if calculation.customer is not None else None,
        reversed=reversed_points,
        restored=restored,
        lines=tuple(RefundLine(n, quantity) for n, quantity in sorted(requested.items())),
        amount=amount,
    )
