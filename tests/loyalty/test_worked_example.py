"""Promotions spec §4 and register spec §2.2, computed by hand."""

from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo

import pytest

from loyalty import AppliedPromotion, Message, PointsSummary

from .helpers import by_n, catalog, customer, item, line, price, promo, receipt

OIL_15 = promo("oil-15", {"type": "percent_off", "percent": "15", "on": {"groups": ["oils"]}},
               name="-15% на все масла", priority=100)
BASE = promo("base-points", {"type": "points_percent", "percent": "5"}, name="5% баллами",
             priority=10)
ITEMS = catalog(item("4600001", groups=["oils"]), item("4600100", groups=["bakery"]))


def test_spec_worked_example() -> None:
    calc = price(receipt(line(1, "4600001", "2", 15990), line(2, "4600100", "1", 4500),
                         card="7700001234567"),
                 [BASE, OIL_15], ITEMS, customer(balance=0))
    lines = by_n(calc)
    assert (lines[1].discount, lines[1].amount, lines[1].points) == (4797, 27183, 1359)
    assert (lines[2].discount, lines[2].amount, lines[2].points) == (0, 4500, 225)
    assert lines[1].promotions == ("oil-15", "base-points")
    assert lines[2].promotions == ("base-points",)
    assert (calc.total, calc.discount, calc.due) == (36480, 4797, 31683)
    assert calc.points == PointsSummary(accrue=1584, redeem=0, redeem_max=0, balance=0)
    assert calc.promotions == (AppliedPromotion("oil-15", "-15% на все масла"),
                               AppliedPromotion("base-points", "5% баллами"))


def test_register_spec_example_gold_customer() -> None:
    gold = customer(statuses={"tier": "gold"}, balance=340000)
    calc = price(receipt(line(1, "4600001", "2", 15990), card="7700001234567"),
                 [OIL_15, BASE], ITEMS, gold)
    assert calc.customer is not None
    assert (calc.customer.id, calc.customer.name, calc.customer.status) == ("C1", "Анна К.",
                                                                              "gold")
    assert calc.lines[0].amount == 27183
    assert calc.points.redeem_max == 26911  # ⌊99% × 27183⌋ = ⌊26911.17⌋
    assert calc.points.balance == 340000
    assert calc.messages[0] == Message("cashier", "Анна К., gold, 3 400,00 баллов")


def test_a_receipt_without_opened_at_is_refused() -> None:
    unopened = dataclasses.replace(receipt(line(1, "4600001", "1", 100)), opened_at=None)
    with pytest.raises(ValueError, match="opened_at"):
        price(unopened, [OIL_15], ITEMS)


def test_same_answer_in_a_named_time_zone() -> None:
    the_receipt = receipt(line(1, "4600001", "2", 15990), line(2, "4600100", "1", 4500),
                          card="7700001234567")
    fixed = price(the_receipt, [OIL_15, BASE], ITEMS, customer())
    named = price(the_receipt, [OIL_15, BASE], ITEMS, customer(), tz=ZoneInfo("Europe/Moscow"))
    assert named == fixed
