"""points_fixed: "spend 5 000, get 200 bonus points"."""

from __future__ import annotations

from .helpers import catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("tv", groups=["electronics"]), item("gift", flags=["no_accrual"]),
                item("bread", groups=["bakery"]))

SPEND_5000 = promo("spend-5000", {"type": "points_fixed", "points": 20000},
                   conditions={"min_total": 500000},
                   messages={"receipt": "+{accrue} баллов за покупку от 5 000 ₽"})


def test_spend_5000_get_200_points() -> None:
    calc = price(receipt(line(1, "tv", "1", 500000), card="1"), [SPEND_5000], ITEMS, customer())
    assert calc.points.accrue == 20000
    assert calc.lines[0].points == 0  # points_fixed is put on no line
    assert [m.text for m in calc.messages if m.target == "receipt"] == [
        "+200,00 баллов за покупку от 5 000 ₽"]
    calc = price(receipt(line(1, "tv", "1", 499999), card="1"), [SPEND_5000], ITEMS, customer())
    assert calc.points.accrue == 0
    assert calc.promotions == ()


def test_points_fixed_needs_a_line_that_can_accrue_and_a_customer() -> None:
    calc = price(receipt(line(1, "gift", "1", 500000), card="1"), [SPEND_5000], ITEMS, customer())
    assert calc.points.accrue == 0
    calc = price(receipt(line(1, "tv", "1", 500000)), [SPEND_5000], ITEMS)
    assert calc.points.accrue == 0
    assert calc.promotions == ()
