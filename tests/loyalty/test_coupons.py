"""Coupons by series: a code unlocks its series' promotions once."""

from __future__ import annotations

from loyalty import Message, confirm_effects, coupon_matches

from .helpers import catalog, customer, item, line, price, promo, receipt

SPRING = promo("spring", {"type": "amount_off", "amount": 10000},
               conditions={"coupon": "SPRING"})
SPRING_POINTS = promo("spring-pts", {"type": "points_fixed", "points": 500},
                      conditions={"coupon": "spring"})
ITEMS = catalog(item("coat"))


def test_code_matching() -> None:
    assert coupon_matches("SPRING-7F3K", "SPRING")
    assert coupon_matches("spring-x", "Spring")
    assert not coupon_matches("SPRING-", "SPRING")
    assert not coupon_matches("SPRINGS-1", "SPRING")
    assert not coupon_matches("SUMMER-1", "SPRING")


def test_a_coupon_used_once() -> None:
    the_receipt = receipt(line(1, "coat", "1", 500000), coupons=["SPRING-7F3K"], card="1")
    calc = price(the_receipt, [SPRING, SPRING_POINTS], ITEMS, customer())
    assert calc.discount == 10000
    assert calc.points.accrue == 500  # one code unlocks every promotion of its series
    assert calc.effects.coupons == ("SPRING-7F3K",)
    assert confirm_effects(calc, customer()).coupons == ("SPRING-7F3K",)
    again = price(the_receipt, [SPRING, SPRING_POINTS], ITEMS, customer(),
                  spent_coupons=frozenset({"SPRING-7F3K"}))
    assert again.discount == 0
    assert again.effects.coupons == ()
    assert Message("cashier", "Купон SPRING-7F3K уже использован") in again.messages


def test_no_code_no_promotion() -> None:
    calc = price(receipt(line(1, "coat", "1", 500000), coupons=["SUMMER-1"]), [SPRING], ITEMS)
    assert calc.discount == 0
    assert calc.effects.coupons == ()


def test_coupon_of_a_promotion_that_yields_nothing_is_not_spent() -> None:
    shoes = promo("spring-shoes", {"type": "percent_off", "percent": "10",
                                   "on": {"skus": ["shoes"]}}, conditions={"coupon": "SPRING"})
    calc = price(receipt(line(1, "coat", "1", 500000), coupons=["SPRING-1"]), [shoes], ITEMS)
    assert calc.effects.coupons == ()


def test_coupon_of_a_none_promotion_is_spent_when_eligible() -> None:
    marker = promo("spring-count", {"type": "none"}, conditions={"coupon": "SPRING"},
                   counters=[{"name": "spring", "add": 1}])
    calc = price(receipt(line(1, "coat", "1", 500000), coupons=["SPRING-1"], card="1"), [marker],
                 ITEMS, customer())
    assert calc.effects.coupons == ("SPRING-1",)


def test_a_series_with_a_dash_is_found_by_its_whole_name() -> None:
    # §5.10: a code matches series S when it is "S-" plus at least one character.
    friday = promo("bf", {"type": "percent_off", "percent": "10"},
                   conditions={"coupon": "BLACK-FRIDAY"})
    calc = price(receipt(line(1, "coat", "1", 10000), coupons=["black-friday-7F3K"]), [friday],
                 ITEMS)
    assert calc.discount == 1000
    assert calc.effects.coupons == ("black-friday-7F3K",)
    assert price(receipt(line(1, "coat", "1", 10000), coupons=["BLACK-7F3K"]), [friday],
                 ITEMS).discount == 0
