"""points_multiplier: multipliers compound on the base accrual of their lines."""

from __future__ import annotations

from .helpers import by_n, catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("tv", groups=["electronics"]), item("gift", flags=["no_accrual"]),
                item("bread", groups=["bakery"]))


def test_multipliers_compound_on_base_accrual() -> None:
    base = promo("base", {"type": "points_percent", "percent": "5"})
    double = promo("x2", {"type": "points_multiplier", "factor": "2",
                          "on": {"groups": ["electronics"]}}, priority=50)
    half_more = promo("x1.5", {"type": "points_multiplier", "factor": "1.5"}, priority=40)
    calc = price(receipt(line(1, "tv", "1", 10010), line(2, "bread", "1", 1000), card="1"),
                 [base, double, half_more], ITEMS, customer())
    lines = by_n(calc)
    # tv: base ⌊500.5⌋ = 500 → × 2 × 1.5 = 1500; bread: 50 × 1.5 = 75.
    assert (lines[1].points, lines[2].points) == (1500, 75)
    assert lines[1].promotions == ("x2", "x1.5", "base")
    assert calc.points.accrue == 1575


def test_multiplier_without_base_is_not_applied() -> None:
    double = promo("x2", {"type": "points_multiplier", "factor": "2"})
    calc = price(receipt(line(1, "tv", "1", 10000), card="1"), [double], ITEMS, customer())
    assert calc.points.accrue == 0
    assert calc.promotions == ()


def test_multiplier_below_one_is_applied_where_it_lowered_points() -> None:
    base = promo("base", {"type": "points_percent", "percent": "10"}, priority=10)
    half = promo("half", {"type": "points_multiplier", "factor": "0.5"}, priority=5,
                 messages={"cashier": "Баллы: {accrue}"})
    calc = price(receipt(line(1, "bread", "1", 10000), card="1"), [base, half], ITEMS,
                 customer())
    # 10% of 100,00 = 1000 points, halved: 500; the multiplier took 500 away.
    assert by_n(calc)[1].points == 500
    assert by_n(calc)[1].promotions == ("base", "half")
    assert [p.id for p in calc.promotions] == ["base", "half"]
    assert calc.messages[-1].text == "Баллы: -5,00"


def test_a_factor_of_one_in_a_group_keeps_a_smaller_factor_off_the_line() -> None:
    # §3.3: a group's members compete per line, the largest wins, for accrual too; ×1 is the
    # largest here, so the line keeps its 1000 points and no member is listed on it.
    base = promo("base", {"type": "points_percent", "percent": "10"}, priority=30)
    keep = promo("keep", {"type": "points_multiplier", "factor": "1"}, priority=20, group="g")
    half = promo("half", {"type": "points_multiplier", "factor": "0.5"}, priority=10, group="g")
    calc = price(receipt(line(1, "bread", "1", 10000), card="1"), [base, keep, half], ITEMS,
                 customer())
    assert (by_n(calc)[1].points, by_n(calc)[1].promotions) == (1000, ("base",))
    assert calc.points.accrue == 1000
