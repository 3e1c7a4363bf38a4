"""amount_off: an amount spread over the selected lines, capped by what they can take."""

from __future__ import annotations

from .helpers import by_n, catalog, item, line, price, promo, receipt

ITEMS = catalog(item("a", groups=["g"]), item("b", groups=["g"]), item("c"),
                item("floor", groups=["g"], min_price=2900))


def test_spread_in_proportion_to_amounts() -> None:
    calc = price(receipt(line(1, "a", "1", 3000), line(2, "b", "1", 1000), line(3, "c", "1", 500)),
                 [promo("off", {"type": "amount_off", "amount": 1000, "on": {"groups": ["g"]}})],
                 ITEMS)
    lines = by_n(calc)
    assert (lines[1].discount, lines[2].discount, lines[3].discount) == (750, 250, 0)


def test_remainder_kopecks_follow_largest_fraction() -> None:
    calc = price(receipt(line(1, "a", "1", 1000), line(2, "b", "1", 1000), line(3, "c", "1", 1000)),
                 [promo("off", {"type": "amount_off", "amount": 100})], ITEMS)
    assert [r.discount for r in calc.lines] == [34, 33, 33]
    assert calc.discount == 100


def test_capped_by_the_lines_amount() -> None:
    calc = price(receipt(line(1, "a", "1", 3000), line(2, "b", "1", 1000)),
                 [promo("off", {"type": "amount_off", "amount": 100000})], ITEMS)
    assert calc.discount == 4000
    assert calc.due == 0


def test_share_a_floor_cannot_take_is_not_given_elsewhere() -> None:
    # 1000 over 3000 / 1000 → 750 / 250; "floor" may only lose 100 (3000 − 2900).
    calc = price(receipt(line(1, "floor", "1", 3000), line(2, "b", "1", 1000)),
                 [promo("off", {"type": "amount_off", "amount": 1000})], ITEMS)
    lines = by_n(calc)
    assert (lines[1].discount, lines[2].discount) == (100, 250)
