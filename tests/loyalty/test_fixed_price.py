"""fixed_price: each selected unit costs the price, never more than it did."""

from __future__ import annotations

from .helpers import by_n, catalog, item, line, price, promo, receipt

ITEMS = catalog(item("coffee"), item("cheap"), item("apples"))


def test_units_at_fixed_price_never_raised() -> None:
    fixed = promo("fix", {"type": "fixed_price", "price": 9900,
                          "on": {"skus": ["coffee", "cheap"]}})
    calc = price(receipt(line(1, "coffee", "2", 12990), line(2, "cheap", "1", 9000)), [fixed],
                 ITEMS)
    lines = by_n(calc)
    assert lines[1].amount == 19800
    assert lines[1].discount == 6180
    assert lines[2].discount == 0
    assert [p.id for p in calc.promotions] == ["fix"]


def test_weighed_goods_rounded_half_up() -> None:
    fixed = promo("fix", {"type": "fixed_price", "price": 333, "on": {"skus": ["apples"]}})
    calc = price(receipt(line(1, "apples", "1.5", 500)), [fixed], ITEMS)
    # 1.5 × 3.33 = 4.995 → 5.00; the line was 7.50.
    assert calc.lines[0].amount == 500
    assert calc.lines[0].discount == 250


def test_line_already_discounted_by_the_register() -> None:
    fixed = promo("fix", {"type": "fixed_price", "price": 9900, "on": {"skus": ["coffee"]}})
    calc = price(receipt(line(1, "coffee", "1", 12990, amount=9500)), [fixed], ITEMS)
    assert calc.discount == 0
    assert calc.promotions == ()
