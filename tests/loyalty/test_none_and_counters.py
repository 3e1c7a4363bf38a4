"""Counters: "3 purchases in February" and the first-purchase welcome bonus."""

from __future__ import annotations

from loyalty import CounterDelta, confirm_effects

from .helpers import catalog, customer, item, line, price, promo, receipt

FEB = {"from": "2026-02-01T00:00:00+03:00", "to": "2026-03-01T00:00:00+03:00"}
COUNT = promo("count-feb", {"type": "none"}, active=FEB,
              counters=[{"name": "purchases-2026-02", "add": 1}])
THIRD = promo("third-feb", {"type": "points_fixed", "points": 50000}, active=FEB,
              conditions={"counter": {"name": "purchases-2026-02", "at_least": 3}},
              messages={"receipt": "3-я покупка в феврале: +{accrue} баллов"})
ITEMS = catalog(item("bread"))


def test_third_purchase_in_february() -> None:
    the_receipt = receipt(line(1, "bread", "1", 4500), card="1")
    first = price(the_receipt, [COUNT, THIRD], ITEMS, customer())
    assert first.points.accrue == 0
    assert first.effects.counters == (CounterDelta("purchases-2026-02", 1),)
    second = price(the_receipt, [COUNT, THIRD], ITEMS,
                   customer(counters={"purchases-2026-02": 1}))
    assert second.points.accrue == 0
    third = price(the_receipt, [COUNT, THIRD], ITEMS,
                  customer(counters={"purchases-2026-02": 2}))
    assert third.points.accrue == 50000
    assert [p.id for p in third.promotions] == ["third-feb"]  # `none` is never "applied"
    assert third.effects.counters == (CounterDelta("purchases-2026-02", 1),)
    assert confirm_effects(third, customer()).counters == third.effects.counters


def test_counters_count_when_the_reward_yields_nothing() -> None:
    yields_nothing = promo("milk-10", {"type": "percent_off", "percent": "10",
                                       "on": {"skus": ["milk"]}},
                           counters=[{"name": "visits", "add": 2}])
    calc = price(receipt(line(1, "bread", "1", 4500), card="1"), [yields_nothing], ITEMS,
                 customer())
    assert calc.promotions == ()
    assert calc.effects.counters == (CounterDelta("visits", 2),)


def test_counter_condition_never_holds_without_a_customer() -> None:
    calc = price(receipt(line(1, "bread", "1", 4500)), [COUNT, THIRD], ITEMS)
    assert calc.points.accrue == 0
    assert calc.effects.counters == ()


def test_welcome_bonus_on_first_purchase() -> None:
    welcome = promo("welcome", {"type": "points_fixed", "points": 30000},
                    conditions={"first_purchase": True})
    new = customer(purchases=0)
    calc = price(receipt(line(1, "bread", "1", 4500), card="1"), [welcome], ITEMS, new)
    assert calc.points.accrue == 30000
    assert confirm_effects(calc, new).first_purchase is True
    regular = customer(purchases=4)
    calc = price(receipt(line(1, "bread", "1", 4500), card="1"), [welcome], ITEMS, regular)
    assert calc.points.accrue == 0
    assert confirm_effects(calc, regular).first_purchase is False
    assert price(receipt(line(1, "bread", "1", 4500)), [welcome], ITEMS).points.accrue == 0
