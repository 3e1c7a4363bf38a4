"""Personal offers, favorite categories and favorite products."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .helpers import MSK, NOV_MONDAY, by_n, catalog, customer, item, line, price, promo, receipt

PO_77: dict[str, Any] = {
    "id": "po-77", "name": "Кофе -20%", "on": {"skus": ["coffee"]},
    "reward": {"type": "percent_off", "percent": "20"},
    "valid": {"from": "2026-11-01T00:00:00+03:00", "to": "2026-12-01T00:00:00+03:00"},
    "messages": {"receipt": "Ваш кофе со скидкой 20% до {valid_to}"},
}
FAV_CATEGORY: dict[str, Any] = {
    "id": "fav-cat", "on": {"groups": ["cheese"]},
    "reward": {"type": "points_percent", "percent": "10"},
}
ITEMS = catalog(item("coffee", groups=["hot"]), item("brie", groups=["cheese"]),
                item("tea", groups=["hot"]), item("milk"))


def test_personal_offer_applies_within_validity() -> None:
    anna = customer(personal_offers=[PO_77])
    calc = price(receipt(line(1, "coffee", "1", 50000), line(2, "tea", "1", 10000),
                         at=NOV_MONDAY, card="1"), [], ITEMS, anna)
    lines = by_n(calc)
    assert (lines[1].discount, lines[2].discount) == (10000, 0)
    assert lines[1].promotions == ("po-77",)
    assert [p.name for p in calc.promotions] == ["Кофе -20%"]
    assert calc.messages[1].text == "Ваш кофе со скидкой 20% до 30.11"
    december = datetime(2026, 12, 1, 0, 0, tzinfo=MSK)
    assert price(receipt(line(1, "coffee", "1", 50000), at=december, card="1"), [], ITEMS,
                 anna).discount == 0


def test_offer_waiting_for_acceptance_does_not_apply() -> None:
    anna = customer(personal_offers=[dict(PO_77, accepted=False)])
    calc = price(receipt(line(1, "coffee", "1", 50000), at=NOV_MONDAY, card="1"), [], ITEMS, anna)
    assert calc.discount == 0


def test_offers_come_after_promotions_and_compete_in_group_personal() -> None:
    chain = promo("hot-10", {"type": "percent_off", "percent": "10", "on": {"groups": ["hot"]}},
                  priority=1)
    second = dict(PO_77, id="po-78", reward={"type": "percent_off", "percent": "25"})
    anna = customer(personal_offers=[PO_77, second])
    calc = price(receipt(line(1, "coffee", "1", 50000), at=NOV_MONDAY, card="1"), [chain], ITEMS,
                 anna)
    # chain first: 500.00 → 450.00; then the group's best: 25% of 450.00 = 112.50.
    assert calc.lines[0].discount == 5000 + 11250
    assert calc.lines[0].promotions == ("hot-10", "po-78")


def test_favorite_category_offer() -> None:
    anna = customer(personal_offers=[FAV_CATEGORY])
    calc = price(receipt(line(1, "brie", "1", 30000), line(2, "milk", "1", 10000),
                         at=NOV_MONDAY, card="1"), [], ITEMS, anna)
    assert [r.points for r in calc.lines] == [3000, 0]


def test_favorite_products() -> None:
    favorites = promo("fav-nov", {"type": "percent_off", "percent": "15",
                                  "on": {"favorites": ["fav-nov"]}},
                      audience={"members_only": True})
    anna = customer(favorites={"fav-nov": ["tea", "brie"]})
    the_receipt = receipt(line(1, "tea", "1", 10000), line(2, "coffee", "1", 10000),
                          line(3, "brie", "1", 20000), at=NOV_MONDAY, card="1")
    calc = price(the_receipt, [favorites], ITEMS, anna)
    assert [r.discount for r in calc.lines] == [1500, 0, 3000]
    other = customer(id="C2", favorites={"fav-nov": ["coffee"]})
    assert [r.discount for r in price(the_receipt, [favorites], ITEMS, other).lines] == [
        0, 1500, 0]
    assert price(the_receipt, [favorites], ITEMS).discount == 0
    # The spec's form, "a set name" on its own, selects the same lines as the list.
    named = promo("fav-nov", {"type": "percent_off", "percent": "15",
                              "on": {"favorites": "fav-nov"}}, audience={"members_only": True})
    assert price(the_receipt, [named], ITEMS, anna) == calc


def test_offers_of_equal_value_tie_to_the_lower_id_whatever_their_order_in_the_document() -> None:
    # §3.2: id ascending among equal priorities; both offers are priority 0 in `personal`.
    later = dict(PO_77, id="po-b", messages={})
    earlier = dict(PO_77, id="po-a", messages={})
    for offers in ([later, earlier], [earlier, later]):
        calc = price(receipt(line(1, "coffee", "1", 50000), at=NOV_MONDAY, card="1"), [],
                     ITEMS, customer(personal_offers=offers))
        assert calc.lines[0].discount == 10000
        assert calc.lines[0].promotions == ("po-a",)
        assert [p.id for p in calc.promotions] == ["po-a"]


def test_a_chain_promotion_in_group_personal_places_the_offers_step_selecting_nothing() -> None:
    # §3.2 + §3.3: offers join group `personal`; the group is one step at its first member's
    # place. Here that member (priority 10) is aimed at tea, absent from the receipt: the
    # step still comes before "half" (priority 5, exclusive), so the offer gives its 20% first.
    tea_only = promo("tea-10", {"type": "percent_off", "percent": "10", "on": {"skus": ["tea"]}},
                     priority=10, group="personal")
    half = promo("half", {"type": "percent_off", "percent": "50"}, priority=5, exclusive=True)
    anna = customer(personal_offers=[PO_77])
    calc = price(receipt(line(1, "coffee", "1", 50000), at=NOV_MONDAY, card="1"),
                 [tea_only, half], ITEMS, anna)
    # 500.00 - 20% = 400.00; then half: - 200.00
    assert calc.lines[0].discount == 10000 + 20000
    assert calc.lines[0].promotions == ("po-77", "half")
    # without the chain member the offers' step is at priority 0, after the exclusive "half"
    alone = price(receipt(line(1, "coffee", "1", 50000), at=NOV_MONDAY, card="1"), [half],
                  ITEMS, anna)
    assert (alone.lines[0].discount, alone.lines[0].promotions) == (25000, ("half",))
