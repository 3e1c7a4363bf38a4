"""buy_x_get_y: "buy 2 lemonades, the 3rd free"."""

from __future__ import annotations

from .helpers import by_n, catalog, item, line, price, promo, receipt

TWO_PLUS_ONE = promo("lemon-2+1", {"type": "buy_x_get_y", "buy": 2, "get": 1,
                                    "on": {"groups": ["lemonade"]}})
ITEMS = catalog(item("lemon", groups=["lemonade"]), item("lime", groups=["lemonade"]),
                item("water"))


def test_third_free() -> None:
    calc = price(receipt(line(1, "lemon", "3", 8990)), [TWO_PLUS_ONE], ITEMS)
    assert calc.lines[0].discount == 8990
    assert calc.lines[0].amount == 17980


def test_free_units_per_full_set() -> None:
    for quantity, free in (("2", 0), ("5", 1), ("6", 2), ("9", 3)):
        calc = price(receipt(line(1, "lemon", quantity, 100)), [TWO_PLUS_ONE], ITEMS)
        assert calc.discount == free * 100, quantity


def test_the_cheapest_unit_is_free() -> None:
    calc = price(receipt(line(1, "lemon", "2", 10000), line(2, "lime", "1", 8000),
                         line(3, "water", "1", 5000)), [TWO_PLUS_ONE], ITEMS)
    lines = by_n(calc)
    assert (lines[1].discount, lines[2].discount, lines[3].discount) == (0, 8000, 0)


def test_unit_price_of_a_register_discounted_line() -> None:
    # 3 lemons for 200.00 (register discount): a unit stands at 66.666…; one free → 66.67.
    calc = price(receipt(line(1, "lemon", "3", 10000, amount=20000)), [TWO_PLUS_ONE], ITEMS)
    assert calc.lines[0].discount == 6667
