"""Redemption (§3.5, §5.14): capped by 99% of payable lines and the balance, then accrual."""

from __future__ import annotations

from .helpers import by_n, catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("a", min_price=9000), item("b"), item("gift", flags=["no_redeem"]))
BASE = promo("base", {"type": "points_percent", "percent": "10"})


def test_redeem_cut_to_max_and_spread() -> None:
    rich = customer(balance=1000000)
    calc = price(receipt(line(1, "a", "1", 10000), line(2, "b", "1", 30000),
                         line(3, "gift", "1", 50000), card="1", redeem=10**6), [BASE], ITEMS, rich)
    # payable 400.00 → redeem_max ⌊396.00⌋ = 39600, spread 1:3 → 9900 / 29700; gift pays money.
    assert calc.points.redeem_max == 39600
    assert calc.points.redeem == 39600
    lines = by_n(calc)
    assert (lines[1].redeemed, lines[2].redeemed, lines[3].redeemed) == (9900, 29700, 0)
    # Redemption is no discount: min_price does not limit it, the due stays.
    assert calc.discount == 0
    assert calc.due == 90000
    # Accrual base is the amount after discounts minus redemption.
    assert (lines[1].points, lines[2].points, lines[3].points) == (10, 30, 5000)


def test_balance_caps_and_request_below_max() -> None:
    calc = price(receipt(line(1, "b", "1", 30000), card="1", redeem=500), [], ITEMS,
                 customer(balance=700))
    assert (calc.points.redeem_max, calc.points.redeem) == (700, 500)
    calc = price(receipt(line(1, "b", "1", 30000), card="1", redeem=5000), [], ITEMS,
                 customer(balance=700))
    assert calc.points.redeem == 700


def test_negative_balance_and_offline_limit() -> None:
    calc = price(receipt(line(1, "b", "1", 30000), card="1", redeem=100), [], ITEMS,
                 customer(balance=-500))
    assert (calc.points.redeem_max, calc.points.redeem, calc.points.balance) == (0, 0, -500)
    calc = price(receipt(line(1, "b", "1", 30000), card="1", redeem=5000), [], ITEMS,
                 customer(balance=100000), redeem_limit=2000)
    assert (calc.points.redeem_max, calc.points.redeem) == (2000, 2000)


def test_redemption_uses_amounts_after_discounts() -> None:
    half = promo("half", {"type": "percent_off", "percent": "50"})
    calc = price(receipt(line(1, "b", "1", 30000), card="1", redeem=10**6), [half], ITEMS,
                 customer(balance=10**6))
    assert calc.points.redeem_max == 14850  # ⌊99% × 150.00⌋


def test_no_customer_redeems_nothing() -> None:
    calc = price(receipt(line(1, "b", "1", 30000), redeem=100), [], ITEMS)
    assert (calc.points.redeem, calc.points.redeem_max) == (0, 0)
