"""percent_off: "-15% on all oils in February", with flags and min_price floors."""

from __future__ import annotations

from datetime import datetime

from .helpers import MSK, by_n, catalog, customer, item, line, price, promo, receipt

OILS_FEB = promo(
    "oil-15", {"type": "percent_off", "percent": "15", "on": {"groups": ["oils"]}},
    active={"from": "2026-02-01T00:00:00+03:00", "to": "2026-03-01T00:00:00+03:00"},
    priority=100, messages={"receipt": "Масло -15% до {valid_to}"},
)
ITEMS = catalog(item("oil", groups=["oils", "grocery"]), item("olive", groups=["oils"]),
                item("milk", groups=["dairy"]))


def test_all_oils_in_february_without_a_card() -> None:
    calc = price(receipt(line(1, "oil", "2", 15990), line(2, "olive", "1", 59900),
                         line(3, "milk", "1", 8990)), [OILS_FEB], ITEMS)
    lines = by_n(calc)
    assert lines[1].discount == 4797  # 15% of 319.80
    assert lines[2].discount == 8985  # 15% of 599.00
    assert lines[3].discount == 0
    assert calc.discount == 4797 + 8985
    assert calc.customer is None
    assert [m.text for m in calc.messages] == ["Масло -15% до 28.02"]


def test_window_includes_from_and_excludes_to() -> None:
    first = datetime(2026, 2, 1, 0, 0, tzinfo=MSK)
    after = datetime(2026, 3, 1, 0, 0, tzinfo=MSK)
    just_before = datetime(2026, 2, 28, 23, 59, 59, tzinfo=MSK)
    for moment, expected in ((first, 4797), (just_before, 4797), (after, 0)):
        calc = price(receipt(line(1, "oil", "2", 15990), at=moment), [OILS_FEB], ITEMS)
        assert calc.discount == expected, moment


def test_half_kopeck_rounds_up() -> None:
    promotion = promo("p", {"type": "percent_off", "percent": "2.5"})
    calc = price(receipt(line(1, "milk", "1", 8990)), [promotion], ITEMS)
    assert calc.discount == 225  # 2.5% of 89.90 = 224.75 → 225


def test_no_discount_flag_and_min_price_floor() -> None:
    items = catalog(item("cig", flags=["no_discount"]),
                    item("vodka", min_price=34900), item("wine", min_price=50000))
    every = promo("all-20", {"type": "percent_off", "percent": "20"})
    calc = price(receipt(line(1, "cig", "1", 20000), line(2, "vodka", "2", 39900),
                         line(3, "wine", "1", 45000)), [every], items)
    lines = by_n(calc)
    assert lines[1].discount == 0
    # 20% of 798.00 = 159.60 would go below the floor 2 × 349.00 = 698.00: capped at 100.00.
    assert lines[2].discount == 10000
    assert lines[2].amount == 69800
    assert lines[3].discount == 0  # already below its floor
    assert calc.promotions[0].id == "all-20"


def test_weighed_line_floor_rounds_up() -> None:
    items = catalog(item("cheese", min_price=1001))
    every = promo("all-50", {"type": "percent_off", "percent": "50"})
    calc = price(receipt(line(1, "cheese", "0.333", 3000)), [every], items)
    # amount = 999 (3000 × 0.333); floor = ⌈1001 × 0.333⌉ = ⌈333.333⌉ = 334.
    assert calc.lines[0].amount == 999 - min(500, 999 - 334)
    assert calc.lines[0].amount == 499


def test_unknown_sku_has_no_groups() -> None:
    calc = price(receipt(line(1, "ghost", "1", 1000)), [OILS_FEB], ITEMS)
    assert calc.discount == 0
    everything = promo("all", {"type": "percent_off", "percent": "10"})
    calc = price(receipt(line(1, "ghost", "1", 1000)), [everything], ITEMS, customer())
    assert calc.discount == 100
