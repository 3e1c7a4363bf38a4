"""points_percent: per-line accrual rounded down; tier-based accrual in a group."""

from __future__ import annotations

from .helpers import by_n, catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("tv", groups=["electronics"]), item("gift", flags=["no_accrual"]),
                item("bread", groups=["bakery"]))


def test_no_accrual_lines_and_per_line_rounding_down() -> None:
    base = promo("base", {"type": "points_percent", "percent": "3"})
    calc = price(receipt(line(1, "bread", "1", 4599), line(2, "bread", "1", 4599),
                         line(3, "gift", "1", 100000), card="1"), [base], ITEMS, customer())
    lines = by_n(calc)
    # 3% of 45.99 = 137.97 → 137 per line (not 275.94 → 275 over the two).
    assert (lines[1].points, lines[2].points, lines[3].points) == (137, 137, 0)
    assert calc.points.accrue == 274
    assert lines[3].promotions == ()


def test_several_percent_promotions_add_up() -> None:
    base = promo("base", {"type": "points_percent", "percent": "1"}, priority=1)
    tv = promo("tv-x", {"type": "points_percent", "percent": "2",
                        "on": {"groups": ["electronics"]}}, priority=5)
    calc = price(receipt(line(1, "tv", "1", 10050), card="1"), [base, tv], ITEMS, customer())
    assert calc.lines[0].points == 201 + 100  # ⌊201.0⌋ + ⌊100.5⌋
    assert calc.lines[0].promotions == ("tv-x", "base")


def test_tier_based_accrual_best_rate_in_group() -> None:
    tiers = [
        promo("tier-base", {"type": "points_percent", "percent": "1"}, group="tier"),
        promo("tier-silver", {"type": "points_percent", "percent": "3"}, group="tier",
              audience={"statuses": {"tier": ["silver"]}}),
        promo("tier-gold", {"type": "points_percent", "percent": "5"}, group="tier",
              audience={"statuses": {"tier": ["gold", "platinum"]}}),
    ]
    rates = {}
    for tier in ("bronze", "silver", "gold", "platinum"):
        calc = price(receipt(line(1, "tv", "1", 100000), card="1"), tiers, ITEMS,
                     customer(statuses={"tier": tier}))
        rates[tier] = (calc.points.accrue, calc.lines[0].promotions)
    assert rates == {"bronze": (1000, ("tier-base",)), "silver": (3000, ("tier-silver",)),
                     "gold": (5000, ("tier-gold",)), "platinum": (5000, ("tier-gold",))}


def test_no_customer_no_points() -> None:
    base = promo("base", {"type": "points_percent", "percent": "5"})
    calc = price(receipt(line(1, "tv", "1", 10000)), [base], ITEMS)
    assert calc.points.accrue == 0
    assert calc.promotions == ()
    assert calc.points.balance is None
