"""Item conditions: "buy a brand-A bed, -30% on brand-A mattresses"."""

from __future__ import annotations

from .helpers import by_n, catalog, item, line, price, promo, receipt

BED_MATTRESS = promo(
    "bed-a", {"type": "percent_off", "percent": "30",
              "on": {"groups": ["mattresses"], "brands": ["A"]}},
    conditions={"items": [{"on": {"groups": ["beds"], "brands": ["A"]}, "min_quantity": "1"}]},
)
ITEMS = catalog(item("bed-a", groups=["beds", "furniture"], brand="A"),
                item("bed-b", groups=["beds", "furniture"], brand="B"),
                item("mat-a", groups=["mattresses"], brand="A"),
                item("mat-b", groups=["mattresses"], brand="B"))


def test_bed_unlocks_brand_a_mattresses_only() -> None:
    calc = price(receipt(line(1, "bed-a", "1", 4999000), line(2, "mat-a", "1", 1999000),
                         line(3, "mat-b", "1", 1500000)), [BED_MATTRESS], ITEMS)
    lines = by_n(calc)
    assert (lines[1].discount, lines[2].discount, lines[3].discount) == (0, 599700, 0)


def test_without_the_bed_nothing() -> None:
    calc = price(receipt(line(1, "bed-b", "1", 4999000), line(2, "mat-a", "1", 1999000)),
                 [BED_MATTRESS], ITEMS)
    assert calc.discount == 0


def test_min_quantity_sums_matching_lines() -> None:
    two_beds = promo("two", {"type": "percent_off", "percent": "10",
                             "on": {"groups": ["mattresses"]}},
                     conditions={"items": [{"on": {"groups": ["beds"]}, "min_quantity": "2"}]})
    one_each = receipt(line(1, "bed-a", "1", 1000), line(2, "bed-b", "1", 1000),
                       line(3, "mat-a", "1", 1000))
    assert price(one_each, [two_beds], ITEMS).discount == 100
    only_one = receipt(line(1, "bed-a", "1", 1000), line(3, "mat-a", "1", 1000))
    assert price(only_one, [two_beds], ITEMS).discount == 0


def test_every_item_condition_must_hold() -> None:
    both = promo("both", {"type": "amount_off", "amount": 500},
                 conditions={"items": [{"on": {"skus": ["bed-a"]}}, {"on": {"skus": ["mat-b"]}}]})
    assert price(receipt(line(1, "bed-a", "1", 1000), line(2, "mat-b", "1", 1000)), [both],
                 ITEMS).discount == 500
    assert price(receipt(line(1, "bed-a", "1", 1000), line(2, "mat-a", "1", 1000)), [both],
                 ITEMS).discount == 0


def test_min_total_uses_total_before_discounts_flagged_lines_included() -> None:
    items = catalog(item("cig", flags=["no_discount"]), item("bread"))
    spend = promo("spend", {"type": "percent_off", "percent": "10", "on": {"skus": ["bread"]}},
                  conditions={"min_total": 100000})
    calc = price(receipt(line(1, "cig", "1", 90000), line(2, "bread", "1", 10000)), [spend], items)
    assert calc.discount == 1000
    calc = price(receipt(line(1, "cig", "1", 89999), line(2, "bread", "1", 10000)), [spend], items)
    assert calc.discount == 0
