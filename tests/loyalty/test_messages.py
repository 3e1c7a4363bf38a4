"""Messages and templates (§3.7, §5.15) and the identify summaries."""

from __future__ import annotations

from datetime import datetime

from loyalty import (
    CUSTOMER_NOT_FOUND,
    AppliedPromotion,
    Message,
    confirm_messages,
    customer_summary,
    offers_of,
    render,
)

from .helpers import MSK, NOV_MONDAY, catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("oil", groups=["oils"]))


def _offer(number: int, **extra: object) -> dict[str, object]:
    return {"id": f"po-{number}", "name": f"Offer {number}", "on": {"skus": [f"s{number}"]},
            "reward": {"type": "percent_off", "percent": "10"},
            "valid": {"from": "2026-11-01T00:00:00+03:00", "to": "2026-12-01T00:00:00+03:00"},
            **extra}


def test_render_known_placeholders_only() -> None:
    assert render("{name}: {balance} {unknown} {{x}}", {"name": "Анна", "balance": "1 234,56"}) \
        == "Анна: 1 234,56 {unknown} {{x}}"


def test_messages_follow_step_order_after_the_cashier_line() -> None:
    first = promo("first", {"type": "percent_off", "percent": "15"}, priority=100,
                  active={"to": "2026-03-01T00:00:00+03:00"},
                  messages={"display": "−{discount} ₽", "receipt": "Масло -15% до {valid_to}",
                            "cashier": "Скидка {discount} для {name}"})
    second = promo("second", {"type": "points_percent", "percent": "5"}, priority=10,
                   messages={"receipt": "+{accrue} баллов, у вас {balance}"})
    gold = customer(statuses={"tier": "gold"}, balance=340000)
    calc = price(receipt(line(1, "oil", "2", 15990), card="1"), [second, first], ITEMS, gold)
    assert calc.messages == (
        Message("cashier", "Анна К., gold, 3 400,00 баллов"),
        Message("display", "−47,97 ₽"),
        Message("receipt", "Масло -15% до 28.02"),
        Message("cashier", "Скидка 47,97 для Анна К."),
        Message("receipt", "+13,59 баллов, у вас 3 400,00"),
    )


def test_offline_the_balance_is_left_out_of_the_customer_line_and_templates() -> None:
    # The synced balance misses what central moved since: offline it is not known.
    points = promo("points", {"type": "points_percent", "percent": "5"},
                   messages={"receipt": "+{accrue} баллов, у вас {balance}"})
    gold = customer(statuses={"tier": "gold"}, balance=340000,
                    personal_offers=[_offer(1, messages={"receipt": "{name}: {balance}"})])
    calc = price(receipt(line(1, "oil", "2", 15990), card="1", at=NOV_MONDAY), [points], ITEMS,
                 gold, mode="offline")
    assert calc.messages == (
        Message("cashier", "Анна К., gold"),
        Message("receipt", "+15,99 баллов, у вас "),
    )
    assert [o.text for o in offers_of(gold, NOV_MONDAY, balance_known=False)] == ["Анна К.: "]
    assert [o.text for o in offers_of(gold, NOV_MONDAY)] == ["Анна К.: 3 400,00"]


def test_customer_line_without_tier() -> None:
    calc = price(receipt(line(1, "oil", "1", 100), card="1"), [], ITEMS, customer(balance=5))
    assert calc.messages == (Message("cashier", "Анна К., 0,05 баллов"),)


def test_customer_not_found() -> None:
    calc = price(receipt(line(1, "oil", "1", 100), card="404"), [], ITEMS, None)
    assert calc.customer is None
    assert calc.messages == (Message("cashier", CUSTOMER_NOT_FOUND),)
    assert CUSTOMER_NOT_FOUND == "Покупатель не найден: расчёт без карты"


def test_no_card_no_customer_message() -> None:
    assert price(receipt(line(1, "oil", "1", 100)), [], ITEMS).messages == ()


def test_confirm_messages_advertise_five_unused_offers() -> None:
    offers = [_offer(number) for number in range(1, 9)]
    offers[1]["accepted"] = False  # advertised too: the receipt is where it is offered
    offers[2]["valid"] = {"to": "2026-11-01T00:00:00+03:00"}  # expired
    offers[3]["messages"] = {"receipt": "Сыр −10% до {valid_to}"}
    anna = customer(personal_offers=offers, balance=1000, statuses={"tier": "gold"})
    calc = price(receipt(line(1, "s1", "1", 10000), at=NOV_MONDAY, card="1"), [], ITEMS, anna)
    assert calc.promotions == (AppliedPromotion("po-1", "Offer 1"),)
    messages = confirm_messages(calc, anna, now=NOV_MONDAY, tz=MSK, balance_after=1000)
    assert messages[0] == Message("cashier", "Анна К., gold, 10,00 баллов")
    assert all(m.target == "receipt" for m in messages[1:])
    assert [m.text for m in messages[1:]] == [
        "Персональное предложение: Offer 2 до 30.11",
        "Сыр −10% до 30.11",
        "Персональное предложение: Offer 5 до 30.11",
        "Персональное предложение: Offer 6 до 30.11",
        "Персональное предложение: Offer 7 до 30.11",
    ]
    assert confirm_messages(calc, None, now=NOV_MONDAY, tz=MSK, balance_after=None) == ()
    offline = confirm_messages(calc, anna, now=NOV_MONDAY, tz=MSK, balance_after=None)
    assert offline[0] == Message("cashier", "Анна К., gold")


def test_customer_summary_and_offers_of() -> None:
    anna = customer(statuses={"club": "wine", "tier": "silver"}, balance=2500,
                    personal_offers=[_offer(1), _offer(2, accepted=False)])
    summary = customer_summary(anna, balance=2500)
    assert (summary.status, summary.balance, summary.redeem_max) == ("silver", 2500, 2500)
    assert customer_summary(customer(statuses={"club": "wine"}), balance=None).status == "wine"
    assert customer_summary(customer(), balance=None).redeem_max is None
    assert customer_summary(customer(), balance=-5).redeem_max == 0
    offers = offers_of(anna, NOV_MONDAY)
    assert [(o.id, o.valid_to) for o in offers] == [("po-1", "30.11")]
    assert offers_of(anna, datetime(2026, 12, 1, tzinfo=MSK)) == ()
