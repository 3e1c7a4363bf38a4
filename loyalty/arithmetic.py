"""Exact integer arithmetic for money and points: rounding and proportional allocation.

Every share is computed as an exact rational (numerator / denominator of integers) and
rounded once, with the rule the spec names: half up for discounts (§3.4), down for accrual
(§3.6). A receipt-level amount is spread with :func:`allocate` (register spec §2.2), which
guarantees that the shares add up exactly to the amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

__all__ = [
    "allocate",
    "allocate_in_order",
    "ceil_div",
    "percent_of_down",
    "percent_of_half_up",
    "round_half_up",
]


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (for non-negative values), exactly."""
    if denominator <= 0:
        raise ValueError("denominator must be > 0")
    return (2 * numerator + denominator) // (2 * denominator)


def ceil_div(numerator: int, denominator: int) -> int:
    """⌈numerator / denominator⌉ for a positive denominator."""
    return -((-numerator) // denominator)


def percent_of_half_up(amount: int, percent: Fraction) -> int:
    """``percent`` % of ``amount``, rounded half up to a kopeck."""
    return round_half_up(amount * percent.numerator, percent.denominator * 100)


def percent_of_down(amount: int, percent: Fraction) -> int:
    """``percent`` % of ``amount``, rounded down (accrual)."""
    return (amount * percent.numerator) // (percent.denominator * 100)


def allocate(total: int, weights: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Spread ``total`` over lines in proportion to their weights (amounts).

    ``weights`` holds ``(n, weight)`` pairs with weights ≥ 0. Each line first gets the floor
    of its exact share; the remainder kopecks go one each to the lines with the largest
    fractional parts, ties to the lower ``n`` (register spec §2.2). The shares always add up
    to ``total`` unless every weight is zero, in which case nothing can be spread and every
    share is 0. ``total`` must be ≥ 0.
    """
    for n, weight in weights:
        if weight < 0:
            raise ValueError(f"weight of line {n} must be >= 0")
    ordered = sorted(weights)
    shares = allocate_in_order(total, [weight for _, weight in ordered])
    return {n: share for (n, _), share in zip(ordered, shares, strict=True)}


def allocate_in_order(total: int, weights: Sequence[int]) -> list[int]:
    """:func:`allocate` over weights already in ``n`` order: the shares, in that order."""
    if total < 0:
        raise ValueError("total must be >= 0")
    weight_sum = sum(weights)
    if weight_sum <= 0 or total == 0:
        return [0] * len(weights)
    if min(weights) < 0:
        raise ValueError("weights must be >= 0")
    products = [total * weight for weight in weights]
    shares = [product // weight_sum for product in products]
    left = total - sum(shares)
    if left:
        rests = [product % weight_sum for product in products]
        # A stable sort, largest fractional part first: equal parts keep the lower n first.
        for position in sorted(range(len(rests)), key=rests.__getitem__, reverse=True)[:left]:
            shares[position] += 1
    return shares
