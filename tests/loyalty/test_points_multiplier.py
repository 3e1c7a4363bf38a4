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


def test_a_groups_percent_and_multiplier_compete_per_line_for_points() -> None:
    # §5.6: in a group accruals compete with accruals; a line wins one. The multiplier offers
    # what it adds to the base from outside the group: nothing on its own, so the 1% wins.
    one = promo("one", {"type": "points_percent", "percent": "1"}, priority=20, group="g")
    triple = promo("triple", {"type": "points_multiplier", "factor": "3"}, priority=10,
                   group="g")
    calc = price(receipt(line(1, "bread", "1", 10000), card="1"), [one, triple], ITEMS,
                 customer())
    assert (by_n(calc)[1].points, by_n(calc)[1].promotions) == (100, ("one",))
    assert [p.id for p in calc.promotions] == ["one"]

    # With 5% from outside the group (500 points), ×3 offers 1 000 against the 1%'s 100 and
    # wins: 500 × 3 = 1 500, and the 1% is not applied.
    base = promo("base", {"type": "points_percent", "percent": "5"}, priority=30)
    calc = price(receipt(line(1, "bread", "1", 10000), line(2, "tv", "1", 20000), card="1"),
                 [base, one, triple], ITEMS, customer())
    lines = by_n(calc)
    assert (lines[1].points, lines[2].points) == (1500, 3000)
    assert lines[1].promotions == ("base", "triple")
    assert [p.id for p in calc.promotions] == ["base", "triple"]
    assert calc.points.accrue == 4500


def test_in_a_mixed_group_each_line_takes_its_own_best_offer_ties_to_the_earlier() -> None:
    base = promo("base", {"type": "points_percent", "percent": "2",
                          "on": {"groups": ["electronics"]}}, priority=30)
    # Each line its own contest: the tv (base 2% of 100,00 = 200) only meets ×2, which adds
    # 200; the bread (no base) only the 20%, which gives 2 000.
    twenty = promo("twenty", {"type": "points_percent", "percent": "20",
                              "on": {"groups": ["bakery"]}}, priority=20, group="g")
    double = promo("double", {"type": "points_multiplier", "factor": "2"}, priority=10,
                   group="g")
    calc = price(receipt(line(1, "tv", "1", 10000), line(2, "bread", "1", 10000), card="1"),
                 [base, twenty, double], ITEMS, customer())
    lines = by_n(calc)
    assert (lines[1].points, lines[1].promotions) == (400, ("base", "double"))
    assert (lines[2].points, lines[2].promotions) == (2000, ("twenty",))
    assert calc.points.accrue == 2400

    # A tie (×2 adds 200, 2% gives 200): the earlier member takes the line.
    two = promo("two", {"type": "points_percent", "percent": "2"}, priority=20, group="g")
    calc = price(receipt(line(1, "tv", "1", 10000), card="1"), [base, two, double], ITEMS,
                 customer())
    assert (by_n(calc)[1].points, by_n(calc)[1].promotions) == (400, ("base", "two"))
    calc = price(receipt(line(1, "tv", "1", 10000), card="1"),
                 [base, promo("two", {"type": "points_percent", "percent": "2"}, priority=5,
                              group="g"), double], ITEMS, customer())
    assert (by_n(calc)[1].points, by_n(calc)[1].promotions) == (400, ("base", "double"))
