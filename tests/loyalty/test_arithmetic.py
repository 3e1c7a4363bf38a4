"""Rounding and proportional allocation (register spec §2.2, promotions spec §3.4)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import allocate
from loyalty.arithmetic import (
    allocate_in_order,
    percent_of_down,
    percent_of_half_up,
    round_half_up,
)


def test_round_half_up() -> None:
    assert round_half_up(5, 2) == 3  # 2.5 → 3
    assert round_half_up(7, 3) == 2  # 2.33 → 2
    assert round_half_up(479700, 100) == 4797


def test_percents() -> None:
    assert percent_of_half_up(31980, Fraction(15)) == 4797
    assert percent_of_half_up(1, Fraction(50)) == 1  # 0.5 → 1
    assert percent_of_down(27183, Fraction(5)) == 1359  # 1359.15
    assert percent_of_down(4500, Fraction(5, 2)) == 112  # 2.5% of 45.00 = 112.5


def test_allocate_remainder_to_largest_fraction_then_lower_n() -> None:
    # 100 over 1:1:1 → 33.33 each; the extra kopeck goes to the lowest n.
    assert allocate(100, [(3, 1), (1, 1), (2, 1)]) == {1: 34, 2: 33, 3: 33}
    # 10 over 3000/1000/1 (of 4001) → 7.4981, 2.4994, 0.0025: floors 7, 2, 0; the one
    # kopeck left goes to the largest fractional part, line 2 (.4994).
    assert allocate(10, [(1, 3000), (2, 1000), (3, 1)]) == {1: 7, 2: 3, 3: 0}
    # Equal fractional parts: the lower n wins.
    assert allocate(1, [(2, 1), (1, 1)]) == {1: 1, 2: 0}


def test_allocate_nothing_to_spread() -> None:
    assert allocate(0, [(1, 5)]) == {1: 0}
    assert allocate(50, [(1, 0), (2, 0)]) == {1: 0, 2: 0}
    with pytest.raises(ValueError, match="total"):
        allocate(-1, [(1, 1)])


@given(st.integers(0, 10**9),
       st.lists(st.integers(0, 10**7), min_size=1, max_size=30))
@settings(max_examples=200)
def test_allocate_sums_exactly_and_stays_proportional(total: int, weights: list[int]) -> None:
    pairs = [(n + 1, weight) for n, weight in enumerate(weights)]
    shares = allocate(total, pairs)
    weight_sum = sum(weights)
    if weight_sum == 0:
        assert set(shares.values()) == {0}
        return
    assert sum(shares.values()) == total
    for n, weight in pairs:
        exact = Fraction(total * weight, weight_sum)
        assert exact - 1 < shares[n] < exact + 1
        if weight == 0:
            assert shares[n] == 0


@given(st.integers(0, 10**9),
       st.lists(st.integers(0, 10**7), min_size=1, max_size=30))
@settings(max_examples=200)
def test_allocate_in_order_is_allocate_by_position(total: int, weights: list[int]) -> None:
    by_n = allocate(total, [(n + 1, weight) for n, weight in enumerate(weights)])
    assert allocate_in_order(total, weights) == [by_n[n + 1] for n in range(len(weights))]
