"""Order, groups, exclusivity and "not applied" (§3.2–3.3, §5.4–5.6)."""

from __future__ import annotations

from .helpers import by_n, catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("a", groups=["g"]), item("b"))


def test_discounts_stack_in_priority_order() -> None:
    ten = promo("ten", {"type": "percent_off", "percent": "10"}, priority=100)
    twenty = promo("twenty", {"type": "percent_off", "percent": "20"}, priority=50)
    calc = price(receipt(line(1, "a", "1", 10000)), [twenty, ten], ITEMS)
    # 10% of 100.00 = 10.00, then 20% of 90.00 = 18.00.
    assert calc.lines[0].discount == 2800
    assert [p.id for p in calc.promotions] == ["ten", "twenty"]


def test_equal_priority_orders_by_id() -> None:
    first = promo("a-off", {"type": "amount_off", "amount": 1000})
    second = promo("b-pct", {"type": "percent_off", "percent": "50"})
    calc = price(receipt(line(1, "a", "1", 10000)), [second, first], ITEMS)
    assert calc.lines[0].discount == 1000 + 4500


def test_group_members_compete_per_line() -> None:
    ten = promo("ten", {"type": "percent_off", "percent": "10"}, group="weekly", priority=9)
    twenty = promo("twenty", {"type": "percent_off", "percent": "20", "on": {"groups": ["g"]}},
                   group="weekly", priority=1)
    calc = price(receipt(line(1, "a", "1", 10000), line(2, "b", "1", 10000)), [ten, twenty],
                 ITEMS)
    lines = by_n(calc)
    assert (lines[1].discount, lines[2].discount) == (2000, 1000)
    assert (lines[1].promotions, lines[2].promotions) == (("twenty",), ("ten",))
    assert [p.id for p in calc.promotions] == ["ten", "twenty"]


def test_group_tie_goes_to_the_earlier_member() -> None:
    first = promo("first", {"type": "percent_off", "percent": "10"}, group="g", priority=5)
    second = promo("second", {"type": "amount_off", "amount": 1000}, group="g", priority=1)
    calc = price(receipt(line(1, "a", "1", 10000)), [second, first], ITEMS)
    assert calc.lines[0].promotions == ("first",)
    assert [p.id for p in calc.promotions] == ["first"]  # `second` won no line: not applied


def test_group_is_one_step_at_its_first_member() -> None:
    top = promo("top", {"type": "percent_off", "percent": "10"}, group="g", priority=100)
    middle = promo("middle", {"type": "amount_off", "amount": 1000}, priority=50)
    low = promo("low", {"type": "percent_off", "percent": "50", "on": {"skus": ["b"]}},
                group="g", priority=1)
    calc = price(receipt(line(1, "a", "1", 10000), line(2, "b", "1", 10000)), [low, middle, top],
                 ITEMS)
    lines = by_n(calc)
    # Step 1 (group): a −10.00, b −50.00. Step 2: 10.00 over 90.00 / 50.00 → 6.43 / 3.57.
    assert (lines[1].discount, lines[2].discount) == (1000 + 643, 5000 + 357)
    assert [p.id for p in calc.promotions] == ["top", "low", "middle"]


def test_exclusive_takes_the_lines_it_discounted() -> None:
    exclusive = promo("excl", {"type": "percent_off", "percent": "10", "on": {"skus": ["a"]}},
                      priority=100, exclusive=True)
    later = promo("later", {"type": "percent_off", "percent": "20"}, priority=50)
    points = promo("pts", {"type": "points_percent", "percent": "1"}, priority=10)
    earlier = promo("earlier", {"type": "amount_off", "amount": 100}, priority=200)
    calc = price(receipt(line(1, "a", "1", 10000), line(2, "b", "1", 10000), card="1"),
                 [exclusive, later, points, earlier], ITEMS, customer())
    lines = by_n(calc)
    # earlier: 1.00 over two equal lines → 0.50 each; excl: 10% of 99.50 = 9.95 on a;
    # later: only b, 20% of 99.50 = 19.90; points still on both lines.
    assert lines[1].discount == 50 + 995
    assert lines[2].discount == 50 + 1990
    assert lines[1].promotions == ("earlier", "excl", "pts")
    assert lines[1].points == (10000 - 1045) // 100


def test_exclusive_that_yields_nothing_takes_nothing() -> None:
    exclusive = promo("excl", {"type": "percent_off", "percent": "10", "on": {"skus": ["zzz"]}},
                      priority=100, exclusive=True)
    later = promo("later", {"type": "percent_off", "percent": "20"}, priority=50)
    calc = price(receipt(line(1, "a", "1", 10000)), [exclusive, later], ITEMS)
    assert calc.discount == 2000
    assert [p.id for p in calc.promotions] == ["later"]


def test_group_line_wins_one_discount_and_one_accrual() -> None:
    off = promo("off", {"type": "percent_off", "percent": "10"}, group="g")
    pts = promo("pts", {"type": "points_percent", "percent": "5"}, group="g")
    calc = price(receipt(line(1, "a", "1", 10000), card="1"), [off, pts], ITEMS, customer())
    assert (calc.lines[0].discount, calc.lines[0].points) == (1000, 450)
    assert calc.lines[0].promotions == ("off", "pts")


def test_group_amount_off_share_lost_where_another_member_wins() -> None:
    spread = promo("spread", {"type": "amount_off", "amount": 2000}, group="g", priority=2)
    half_a = promo("half-a", {"type": "percent_off", "percent": "50", "on": {"skus": ["a"]}},
                   group="g", priority=1)
    calc = price(receipt(line(1, "a", "1", 10000), line(2, "b", "1", 10000)), [spread, half_a],
                 ITEMS)
    lines = by_n(calc)
    # spread offers 10.00 / 10.00; half-a offers 50.00 on a and wins it; b keeps 10.00.
    assert (lines[1].discount, lines[2].discount) == (5000, 1000)
    assert calc.discount == 6000


def test_group_points_fixed_most_points_wins() -> None:
    small = promo("small", {"type": "points_fixed", "points": 100}, group="bonus", priority=5)
    big = promo("big", {"type": "points_fixed", "points": 300}, group="bonus", priority=1)
    calc = price(receipt(line(1, "a", "1", 10000), card="1"), [small, big], ITEMS, customer())
    assert calc.points.accrue == 300
    assert [p.id for p in calc.promotions] == ["big"]


def test_flagged_lines_are_not_units() -> None:
    items = catalog(item("x", groups=["g"]), item("cig", groups=["g"], flags=["no_discount"]))
    third = promo("third", {"type": "nth_percent_off", "every": 3, "percent": "100",
                            "on": {"groups": ["g"]}})
    calc = price(receipt(line(1, "x", "2", 1000), line(2, "cig", "1", 500)), [third], items)
    assert calc.discount == 0  # only 2 countable units
    calc = price(receipt(line(1, "x", "3", 1000), line(2, "cig", "1", 500)), [third], items)
    assert by_n(calc)[1].discount == 1000


def test_group_step_stays_at_a_first_member_that_selects_nothing() -> None:
    # §3.3: the group is one step at the place of its first member. "g-first" is eligible but
    # its sku is not on the receipt (so the index does not return it for its reward): the
    # group still goes before "m", whose id sorts between the members'.
    members_and_m = [
        promo("g-first", {"type": "percent_off", "percent": "10", "on": {"skus": ["zzz"]}},
              group="G"),
        promo("m", {"type": "amount_off", "amount": 1000}),
        promo("x", {"type": "percent_off", "percent": "20"}, group="G"),
    ]
    calc = price(receipt(line(1, "b", "1", 10000)), members_and_m, ITEMS)
    # G first: 20% of 100,00 → 80,00; then m: −10,00
    assert by_n(calc)[1].amount == 7000
    assert [p.id for p in calc.promotions] == ["x", "m"]


def test_points_member_places_its_group_on_an_anonymous_receipt_too() -> None:
    # Without a customer the points member accrues nothing, but it is eligible and places
    # the group's step, so the anonymous receipt gets the discount an identified one gets.
    members_and_m = [
        promo("g-first", {"type": "points_percent", "percent": "5"}, group="G"),
        promo("m", {"type": "amount_off", "amount": 1000}),
        promo("x", {"type": "percent_off", "percent": "20"}, group="G"),
    ]
    anonymous = price(receipt(line(1, "b", "1", 10000)), members_and_m, ITEMS)
    identified = price(receipt(line(1, "b", "1", 10000), card="1"), members_and_m, ITEMS,
                       customer())
    assert by_n(anonymous)[1].amount == by_n(identified)[1].amount == 7000
