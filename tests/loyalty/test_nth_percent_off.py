"""nth_percent_off: "every 3rd XXL item at half price"."""

from __future__ import annotations

from .helpers import by_n, catalog, item, line, price, promo, receipt

XXL = promo("xxl", {"type": "nth_percent_off", "every": 3, "percent": "50",
                    "on": {"groups": ["xxl"]}})
ITEMS = catalog(item("shirt", groups=["xxl"]), item("pants", groups=["xxl"]),
                item("socks", groups=["xxl"]), item("hat"), item("cloth", groups=["xxl"]))


def test_third_cheapest_unit_at_half_price() -> None:
    calc = price(receipt(line(1, "shirt", "2", 1500), line(2, "pants", "1", 2000)), [XXL], ITEMS)
    lines = by_n(calc)
    # 3 units → 1 discounted: the cheapest is a shirt at 15.00 → 7.50 off line 1.
    assert (lines[1].discount, lines[2].discount) == (750, 0)


def test_units_counted_across_skus_cheapest_first() -> None:
    calc = price(receipt(line(1, "shirt", "2", 1500), line(2, "socks", "1", 900),
                         line(3, "pants", "3", 1200), line(4, "hat", "5", 100)), [XXL], ITEMS)
    lines = by_n(calc)
    # 6 XXL units → 2 at half price: socks 9.00 (→ 4.50) then one pants unit 12.00 (→ 6.00).
    assert (lines[1].discount, lines[2].discount, lines[3].discount, lines[4].discount) == (
        0, 450, 600, 0)


def test_equal_unit_prices_go_to_lower_n() -> None:
    calc = price(receipt(line(2, "pants", "1", 1000), line(1, "shirt", "2", 1000)), [XXL], ITEMS)
    lines = by_n(calc)
    assert (lines[1].discount, lines[2].discount) == (500, 0)


def test_fewer_units_than_every_is_not_applied() -> None:
    calc = price(receipt(line(1, "shirt", "2", 1500)), [XXL], ITEMS)
    assert calc.discount == 0
    assert calc.promotions == ()


def test_fractional_quantities_are_not_units() -> None:
    calc = price(receipt(line(1, "cloth", "2.5", 1000), line(2, "shirt", "2", 1500)), [XXL],
                 ITEMS)
    assert calc.discount == 0
