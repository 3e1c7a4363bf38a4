"""Confirm and refund effects (§3.8, §5.16)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import ConfirmEffects, OverRefund, RefundLine, confirm_effects, refund_effects
from tillgate.errors import ValidationError

from .helpers import catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("a"), item("b"), item("c"), item("cig", flags=["no_accrual"]))
BASE = promo("base", {"type": "points_percent", "percent": "10"})
FIXED = promo("fixed", {"type": "points_fixed", "points": 100})
RECEIPT = receipt(line(1, "a", "3", 1000), line(2, "b", "1", 2000), line(3, "c", "2.5", 1000),
                  card="1", redeem=1500)
WHO = customer(balance=10000)
CALC = price(RECEIPT, [BASE, FIXED], ITEMS, WHO)


def test_the_receipt_under_test() -> None:
    # 30.00 / 20.00 / 25.00; redeem 15.00 spread 600 / 400 / 500; 10% of what is left.
    assert [(r.amount, r.redeemed, r.points) for r in CALC.lines] == [
        (3000, 600, 240), (2000, 400, 160), (2500, 500, 200)]
    assert CALC.points.accrue == 700


def test_confirm_effects() -> None:
    assert confirm_effects(CALC, WHO) == ConfirmEffects("C1", 700, 1500, (), (), True)
    assert confirm_effects(CALC, WHO).balance_delta == -800
    anonymous = price(receipt(line(1, "a", "1", 1000)), [BASE], ITEMS)
    assert confirm_effects(anonymous, None) == ConfirmEffects(None, 0, 0)


def test_full_refund_reverses_everything() -> None:
    effects = refund_effects(RECEIPT, CALC, refunded_before={}, lines=None)
    assert (effects.reversed, effects.restored, effects.amount) == (700, 1500, 7500)
    assert effects.lines == (RefundLine(1, 3000), RefundLine(2, 1000), RefundLine(3, 2500))
    assert effects.balance_delta == 800


def test_partial_refunds_add_up_to_the_whole() -> None:
    first = refund_effects(RECEIPT, CALC, refunded_before={}, lines=[RefundLine(1, 1000)])
    # 10.00 of 75.00 refunded: 700 × 10/75 = 93.33 → 93 points, 1500 × 10/75 = 200.
    assert (first.reversed, first.restored, first.amount) == (93, 200, 1000)
    second = refund_effects(RECEIPT, CALC, refunded_before={1: 1000},
                            lines=[RefundLine(1, 1000), RefundLine(3, 1000)])
    rest = refund_effects(RECEIPT, CALC, refunded_before={1: 2000, 3: 1000}, lines=None)
    assert rest.lines == (RefundLine(1, 1000), RefundLine(2, 1000), RefundLine(3, 1500))
    assert first.reversed + second.reversed + rest.reversed == 700
    assert first.restored + second.restored + rest.restored == 1500
    assert first.amount + second.amount + rest.amount == 7500


def test_over_refund_and_unknown_lines() -> None:
    with pytest.raises(OverRefund) as caught:
        refund_effects(RECEIPT, CALC, refunded_before={1: 2500}, lines=[RefundLine(1, 1000)])
    assert caught.value.remaining == (RefundLine(1, 500), RefundLine(2, 1000),
                                      RefundLine(3, 2500))
    assert caught.value.field == "lines[0].quantity"
    with pytest.raises(OverRefund):
        refund_effects(RECEIPT, CALC, refunded_before={1: 3000, 2: 1000, 3: 2500}, lines=None)
    with pytest.raises(ValidationError, match=r"lines\[0\]\.n"):
        refund_effects(RECEIPT, CALC, refunded_before={}, lines=[RefundLine(9, 1000)])


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3000)), min_size=1, max_size=8))
@settings(max_examples=60)
def test_any_refund_sequence_sums_to_the_whole(requests: list[tuple[int, int]]) -> None:
    sold = {1: 3000, 2: 1000, 3: 2500}
    before: dict[int, int] = {}
    reversed_points = restored = amount = 0
    for n, quantity in requests:
        left = sold[n] - before.get(n, 0)
        if left <= 0:
            continue
        take = min(quantity, left)
        effects = refund_effects(RECEIPT, CALC, refunded_before=before,
                                 lines=[RefundLine(n, take)])
        assert effects.reversed >= 0
        assert effects.restored >= 0
        reversed_points += effects.reversed
        restored += effects.restored
        amount += effects.amount
        before[n] = before.get(n, 0) + take
    if any(sold[n] - before.get(n, 0) > 0 for n in sold):
        rest = refund_effects(RECEIPT, CALC, refunded_before=before, lines=None)
        reversed_points += rest.reversed
        restored += rest.restored
        amount += rest.amount
    assert (reversed_points, restored, amount) == (700, 1500, 7500)


def test_accrual_is_reversed_in_proportion_to_refunded_amounts() -> None:
    # Spec §3.8/§5.16: the proportion is of the receipt's amounts after discounts, whatever
    # line earned the points.
    the_receipt = receipt(line(1, "a", "1", 6000), line(2, "cig", "1", 4000), card="1")
    calc = price(the_receipt, [BASE], ITEMS, WHO)
    assert [r.points for r in calc.lines] == [600, 0]
    effects = refund_effects(the_receipt, calc, refunded_before={}, lines=[RefundLine(2, 1000)])
    assert (effects.reversed, effects.amount) == (240, 4000)


def test_free_receipt_refund() -> None:
    the_receipt = receipt(line(1, "a", "1", 0), line(2, "b", "1", 0), card="1")
    calc = price(the_receipt, [FIXED], ITEMS, WHO)
    assert calc.points.accrue == 100
    first = refund_effects(the_receipt, calc, refunded_before={}, lines=[RefundLine(1, 1000)])
    rest = refund_effects(the_receipt, calc, refunded_before={1: 1000}, lines=None)
    assert (first.reversed, rest.reversed) == (50, 50)
