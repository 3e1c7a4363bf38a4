"""Document parsers: catalog items, customers, promotions, CSV attribute rows."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import (
    CatalogItem,
    CounterDelta,
    Customer,
    Message,
    apply_customer_attribute,
    check_offer_keys,
    check_promotion_keys,
    document_id,
    document_kind,
    is_deleted,
    normalize_phone,
    parse_catalog_item,
    parse_customer,
    parse_promotion,
)
from tillgate.errors import DocumentError

SPEC_CUSTOMER: dict[str, Any] = {
    "id": "C1", "cards": ["7700001234567"], "phone": "+79161234567", "name": "Анна К.",
    "statuses": {"tier": "gold"}, "attributes": {"gender": "f", "birthday": "03-08"},
    "segments": ["churn-risk"], "balance": 340000, "counters": {"purchases-2026-02": 2},
    "favorites": {"fav-nov": ["4600123", "4600456"]},
    "personal_offers": [{"id": "po-77", "on": {"skus": ["4600789"]},
                         "reward": {"type": "percent_off", "percent": "20"},
                         "valid": {"from": "2026-11-01T00:00:00+03:00",
                                   "to": "2026-12-01T00:00:00+03:00"},
                         "messages": {"receipt": "Ваш кофе со скидкой 20% до 30.11"}}],
}

SPEC_PROMOTION: dict[str, Any] = {
    "id": "oil-15", "name": "-15% на все масла",
    "active": {"from": "2026-02-01T00:00:00+03:00", "to": "2026-03-01T00:00:00+03:00",
               "weekdays": [1, 2, 3, 4, 5, 6, 7], "hours": ["00:00", "24:00"]},
    "stores": [], "priority": 100, "group": "", "exclusive": False,
    "audience": {"members_only": False, "statuses": {"tier": ["gold"]},
                 "attributes": {"gender": ["f"]}, "segments": ["churn-risk"], "control": "10"},
    "conditions": {"min_total": 0, "items": [{"on": {"groups": ["beds-a"]},
                                              "min_quantity": "1"}],
                   "coupon": "SPRING", "counter": {"name": "purchases-2026-02", "at_least": 2},
                   "first_purchase": False},
    "reward": {"type": "percent_off", "percent": "15", "on": {"groups": ["oils"]}},
    "counters": [{"name": "purchases-2026-02", "add": 1}],
    "messages": {"receipt": "r", "cashier": "c", "display": "d"},
}


def test_catalog_item_of_the_spec() -> None:
    item = parse_catalog_item({"sku": "4600001", "name": "Масло подсолнечное 1 л",
                               "groups": ["oils", "grocery"], "brand": "A",
                               "flags": ["no_discount", "no_accrual", "no_redeem"],
                               "min_price": 0})
    assert item == CatalogItem("4600001", "Масло подсолнечное 1 л",
                               frozenset({"oils", "grocery"}), "A",
                               frozenset({"no_discount", "no_accrual", "no_redeem"}), 0)


def test_catalog_item_errors_name_sku_and_key() -> None:
    with pytest.raises(DocumentError) as caught:
        parse_catalog_item({"sku": "42", "flags": ["no_discont"]})
    assert str(caught.value).startswith('catalog item "42": flags[0]: unknown flag')
    with pytest.raises(DocumentError, match=r'"42": min_price: must be >= 0'):
        parse_catalog_item({"sku": "42", "min_price": -1})
    with pytest.raises(DocumentError, match="sku: is required"):
        parse_catalog_item({"name": "x"})


def test_customer_of_the_spec() -> None:
    customer = parse_customer(SPEC_CUSTOMER)
    assert isinstance(customer, Customer)
    assert customer.cards == ("7700001234567",)
    assert customer.statuses["tier"] == "gold"
    assert customer.tier == "gold"
    assert customer.favorites["fav-nov"] == frozenset({"4600123", "4600456"})
    assert customer.counters["purchases-2026-02"] == 2
    assert customer.purchases == 0
    offer = customer.personal_offers[0]
    assert offer.reward.on.skus == frozenset({"4600789"})
    assert offer.reward.percent == 20
    assert offer.accepted is True
    assert offer.messages == (Message("receipt", "Ваш кофе со скидкой 20% до 30.11"),)
    hash(customer)  # truly immutable values hash


def test_customer_mappings_are_read_only() -> None:
    customer = parse_customer(SPEC_CUSTOMER)
    with pytest.raises(TypeError):
        customer.statuses["tier"] = "silver"  # type: ignore[index]  # proving immutability


def test_customer_errors() -> None:
    bad = dict(SPEC_CUSTOMER, balance="lots")
    with pytest.raises(DocumentError, match='customer "C1": balance: must be an integer'):
        parse_customer(bad)
    bad_offer = json.loads(json.dumps(SPEC_CUSTOMER))
    bad_offer["personal_offers"][0]["reward"]["percent"] = "120"
    with pytest.raises(DocumentError) as caught:
        parse_customer(bad_offer)
    assert caught.value.key == "personal_offers[0].reward.percent"


def test_promotion_of_the_spec() -> None:
    promo = parse_promotion(SPEC_PROMOTION)
    assert promo.id == "oil-15"
    assert promo.priority == 100
    assert promo.reward.type == "percent_off"
    assert promo.reward.percent == Fraction(15)
    assert promo.reward.on.groups == frozenset({"oils"})
    assert promo.active.hours is None  # 00:00–24:00 is the whole day
    assert promo.active.start == datetime(2026, 2, 1, tzinfo=timezone(timedelta(hours=3)))
    assert promo.audience.control == 10
    assert promo.audience.statuses["tier"] == frozenset({"gold"})
    assert promo.conditions.items[0].min_quantity == 1000
    assert promo.conditions.coupon == "SPRING"
    assert promo.conditions.counter is not None
    assert promo.conditions.counter.at_least == 2
    assert promo.counters == (CounterDelta("purchases-2026-02", 1),)
    assert [m.target for m in promo.messages] == ["receipt", "cashier", "display"]


def test_minimal_promotion() -> None:
    promo = parse_promotion({"id": "p", "name": "P", "reward": {"type": "none"}})
    assert promo.reward.type == "none"
    assert promo.audience.unrestricted
    assert promo.stores == frozenset()


@pytest.mark.parametrize(
    ("patch", "key", "text"),
    [
        ({"reward": {"type": "percent_off", "percent": "0"}}, "reward.percent",
         "must be 0 < p <= 100"),
        ({"reward": {"type": "percent_off", "percent": "101"}}, "reward.percent",
         "must be 0 < p <= 100"),
        ({"reward": {"type": "percent_off", "percent": 15.5}}, "reward.percent", "decimal"),
        ({"reward": {"type": "teleport"}}, "reward.type", "must be one of"),
        ({"reward": {"type": "amount_off"}}, "reward.amount", "is required"),
        ({"reward": {"type": "buy_x_get_y", "buy": 2, "get": 0}}, "reward.get", ">= 1"),
        ({"reward": {"type": "nth_percent_off", "every": 3}}, "reward.percent", "is required"),
        ({"reward": {"type": "points_multiplier", "factor": "0"}}, "reward.factor",
         "0 < f <= 1000"),
        ({"reward": {"type": "points_multiplier", "factor": "1001"}}, "reward.factor",
         "0 < f <= 1000"),
        ({"reward": {"type": []}}, "reward.type", "must be one of"),
        ({"reward": {"type": "percent_off", "percent": "1e1"}}, "reward.percent", "decimal"),
        ({"reward": {"type": "percent_off", "percent": "1e100000000"}}, "reward.percent",
         "decimal"),
        ({"reward": {"type": "points_fixed", "points": 10**30}}, "reward.points",
         "between -1000000000000 and 1000000000000"),
        ({"reward": {"type": "amount_off", "amount": "9" * 5000}}, "reward.amount",
         "between"),
        ({"counters": [{"name": "visits", "add": 10**30}]}, "counters[0].add", "between"),
        ({"conditions": {"min_total": 10**13}}, "conditions.min_total", "between"),
        # message texts and names are printed: no printer commands hidden in them
        ({"messages": {"receipt": "Сыр\x1bi\x1dV\x00"}}, "messages.receipt",
         "must not contain control characters"),
        ({"messages": {"receipt": "x" * 1001}}, "messages.receipt", "at most 1000 characters"),
        ({"name": "Акция\x10\x14"}, "name", "must not contain control characters"),
        ({"messages": {"receipt": {"text": "Купон", "barcode": {
            "format": "ean13", "data": "4006381333932"}}}}, "messages.receipt.barcode.data",
         "check digit"),
        ({"messages": {"receipt": {"text": "Купон", "barcode": {
            "format": "code128", "data": "СОК-1"}}}}, "messages.receipt.barcode.data",
         "printable ASCII"),
        ({"active": {"hours": ["10:00", "25:00"]}}, "active.hours[1]", "24:00"),
        ({"active": {"weekdays": [0]}}, "active.weekdays[0]", "1..7"),
        ({"active": {"from": "2026-02-01T00:00:00"}}, "active.from", "offset"),
        ({"active": {"from": "2026-03-01T00:00:00+03:00", "to": "2026-02-01T00:00:00+03:00"}},
         "active.to", "later"),
        ({"audience": {"control": "150"}}, "audience.control", "0 <= c <= 100"),
        ({"conditions": {"items": [{"min_quantity": "0.0001"}]}},
         "conditions.items[0].min_quantity", "3 decimals"),
        ({"messages": {"printer": "x"}}, "messages.printer", "target"),
        ({"priority": "high"}, "priority", "integer"),
        ({"exclusive": "yes"}, "exclusive", "true or false"),
        ({"reward": {"type": "percent_off", "percent": "5", "on": {"favorites": ""}}},
         "reward.on.favorites", "set name"),
        ({"reward": {"type": "percent_off", "percent": "5", "on": {"favorites": 7}}},
         "reward.on.favorites", "list of strings"),
    ],
)
def test_promotion_errors_name_id_and_key(patch: dict[str, Any], key: str, text: str) -> None:
    doc = {"id": "oil-15", "name": "x", "reward": {"type": "none"}, **patch}
    with pytest.raises(DocumentError) as caught:
        parse_promotion(doc)
    assert caught.value.kind == "promotion"
    assert caught.value.doc_id == "oil-15"
    assert caught.value.key == key
    assert text in caught.value.message
    assert str(caught.value).startswith(f'promotion "oil-15": {key}: ')


def test_document_kind_and_deletion() -> None:
    assert document_kind({"sku": "1"}) == "catalog"
    assert document_kind(SPEC_CUSTOMER) == "customer"
    assert document_kind({"id": "C2", "phone": "+7"}) == "customer"
    assert document_kind(SPEC_PROMOTION) == "promotion"
    assert document_kind({"sku": "1", "deleted": True}) == "catalog"
    with pytest.raises(DocumentError):
        document_kind({"id": "x", "deleted": True})
    assert is_deleted({"id": "x", "deleted": True})
    assert not is_deleted({"id": "x", "deleted": False})
    assert document_id({"sku": "46"}) == "46"
    assert document_id(SPEC_PROMOTION) == "oil-15"


def test_normalize_phone() -> None:
    assert normalize_phone("+7 (916) 123-45-67") == "79161234567"


@given(st.text())
@settings(max_examples=100)
def test_normalize_phone_keeps_only_digits_in_order(text: str) -> None:
    digits = normalize_phone(text)
    assert all(ch in "0123456789" for ch in digits)
    assert digits == "".join(ch for ch in text if ch in "0123456789")


def test_csv_attribute_rows() -> None:
    doc: dict[str, Any] = {"id": "C9"}
    doc = apply_customer_attribute(doc, "status.tier", "silver")
    doc = apply_customer_attribute(doc, "segment", "vip")
    doc = apply_customer_attribute(doc, "segment", "vip")
    doc = apply_customer_attribute(doc, "favorite.fav-nov", "4600123")
    doc = apply_customer_attribute(doc, "balance", "1500")
    doc = apply_customer_attribute(doc, "phone", "+79160000000")
    doc = apply_customer_attribute(doc, "name", "Иван")
    doc = apply_customer_attribute(doc, "gender", "m")
    doc = apply_customer_attribute(
        doc, "offer", json.dumps({"id": "po-1", "on": {"groups": ["coffee"]},
                                  "reward": {"type": "percent_off", "percent": "10"}}))
    customer = parse_customer(doc)
    assert customer.statuses == {"tier": "silver"}
    assert customer.segments == frozenset({"vip"})
    assert customer.favorites == {"fav-nov": frozenset({"4600123"})}
    assert customer.balance == 1500
    assert customer.phone == "+79160000000"
    assert customer.name == "Иван"
    assert customer.attributes == {"gender": "m"}
    assert customer.personal_offers[0].reward.on.groups == frozenset({"coffee"})


def test_csv_attribute_does_not_modify_its_input() -> None:
    original: dict[str, Any] = {"id": "C9", "segments": ["a"]}
    updated = apply_customer_attribute(original, "segment", "b")
    assert original == {"id": "C9", "segments": ["a"]}
    assert updated["segments"] == ["a", "b"]


@pytest.mark.parametrize(("attribute", "value"),
                         [("balance", "12.5"), ("offer", "{not json"),
                          ("offer", '{"id": "x", "reward": {"type": "percent_off"}}')])
def test_csv_attribute_errors_name_the_attribute(attribute: str, value: str) -> None:
    with pytest.raises(DocumentError) as caught:
        apply_customer_attribute({"id": "C9"}, attribute, value)
    assert caught.value.key == attribute
    assert caught.value.doc_id == "C9"


def _json_nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function, not a lambda: hypothesis describes the strategy whenever a draw
    # exceeds max_leaves, and describing a lambda parses its source with ast, which on
    # CPython 3.11 can fail spuriously while another thread formats a traceback
    # (python/cpython#106905; see tests/conftest.py).
    keys = st.sampled_from(["id", "name", "reward", "type", "percent", "on", "active", "hours",
                            "audience", "conditions", "items", "messages", "counters", "skus"])
    return st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    _json_nested, max_leaves=12))
@settings(max_examples=150)
def test_parsers_raise_only_document_errors(doc: object) -> None:
    for parse in (parse_promotion, parse_customer, parse_catalog_item):
        with contextlib.suppress(DocumentError):
            parse(doc)


NAMES = st.text(alphabet="abcxyz-0123", min_size=1, max_size=6)


@given(st.lists(st.tuples(st.sampled_from(["status.tier", "status.club", "segment",
                                           "favorite.fav", "gender", "name", "phone",
                                           "balance"]), NAMES), max_size=12))
@settings(max_examples=100)
def test_csv_rows_build_a_valid_customer(rows: list[tuple[str, str]]) -> None:
    doc: dict[str, Any] = {"id": "C1"}
    expected_segments: set[str] = set()
    expected_favorites: set[str] = set()
    statuses: dict[str, str] = {}
    for attribute, text in rows:
        value = str(len(text)) if attribute == "balance" else text
        doc = apply_customer_attribute(doc, attribute, value)
        if attribute == "segment":
            expected_segments.add(value)
        elif attribute == "favorite.fav":
            expected_favorites.add(value)
        elif attribute.startswith("status."):
            statuses[attribute[len("status."):]] = value
    customer = parse_customer(doc)
    assert customer.segments == expected_segments
    assert customer.favorites.get("fav", frozenset()) == expected_favorites
    assert customer.statuses == statuses


PERCENT_TEXT = st.decimals(min_value="0.001", max_value="100", places=3).map(str)


@given(st.sampled_from(["percent_off", "points_percent"]), PERCENT_TEXT,
       st.integers(-5, 500), st.lists(NAMES, max_size=3), st.booleans())
@settings(max_examples=100)
def test_valid_promotions_parse_to_what_they_say(kind: str, percent: str, priority: int,
                                                 groups: list[str], exclusive: bool) -> None:
    promotion = parse_promotion({"id": "p", "name": "P", "priority": priority,
                                 "exclusive": exclusive,
                                 "reward": {"type": kind, "percent": percent,
                                            "on": {"groups": groups}}})
    assert promotion.reward.type == kind
    assert promotion.reward.percent == Fraction(percent)
    assert promotion.reward.on.groups == frozenset(groups)
    assert (promotion.priority, promotion.exclusive) == (priority, exclusive)


def test_offer_selector_errors_name_the_offer() -> None:
    bad = json.loads(json.dumps(SPEC_CUSTOMER))
    bad["personal_offers"][0]["on"] = {"skus": "4600789"}
    with pytest.raises(DocumentError) as caught:
        parse_customer(bad)
    assert caught.value.key == "personal_offers[0].on.skus"
    reward_level = json.loads(json.dumps(SPEC_CUSTOMER))
    del reward_level["personal_offers"][0]["on"]
    reward_level["personal_offers"][0]["reward"]["on"] = {"groups": ["coffee"]}
    offer = parse_customer(reward_level).personal_offers[0]
    assert offer.reward.on.groups == frozenset({"coffee"})


def test_the_spec_promotion_has_only_known_keys() -> None:
    check_promotion_keys(SPEC_PROMOTION)
    check_promotion_keys({**SPEC_PROMOTION, "deleted": False, "kind": "promotion",
                          "points_lifetime": {"activation_days": 14}})


@pytest.mark.parametrize(
    ("path", "typo", "key"),
    [
        # Each typo would otherwise read as a missing restriction: the promotion would reach
        # every line, customer, receipt or day.
        (("reward", "on"), "grups", "reward.on.grups"),
        (("conditions", "items", 0, "on"), "skuss", "conditions.items[0].on.skuss"),
        (("conditions", "items", 0), "min_quantty", "conditions.items[0].min_quantty"),
        (("audience",), "segmnets", "audience.segmnets"),
        (("conditions",), "min_totl", "conditions.min_totl"),
        (("conditions", "counter"), "atleast", "conditions.counter.atleast"),
        (("active",), "form", "active.form"),
        (("reward",), "procent", "reward.procent"),
        (("counters", 0), "ad", "counters[0].ad"),
        ((), "audiance", "audiance"),
    ],
)
def test_a_misspelt_promotion_key_is_refused_by_name(path: tuple[str | int, ...], typo: str,
                                                     key: str) -> None:
    doc = json.loads(json.dumps(SPEC_PROMOTION))
    target = doc
    for step in path:
        target = target[step]
    target[typo] = ["oils"]
    parse_promotion(doc)  # the edge's reading: unknown keys are a newer central's, not errors
    with pytest.raises(DocumentError) as caught:
        check_promotion_keys(doc)
    assert caught.value.key == key
    assert caught.value.doc_id == "oil-15"
    assert "unknown key: must be one of" in caught.value.message


def test_a_misspelt_personal_offer_key_is_refused_by_name() -> None:
    offer = {**SPEC_CUSTOMER["personal_offers"][0], "accepted": True}
    check_offer_keys(offer, "personal_offers[0]", customer_id="C1")
    with pytest.raises(DocumentError) as caught:
        check_offer_keys({**offer, "on": {"sku": ["4600789"]}}, "personal_offers[0]",
                         customer_id="C1")
    assert str(caught.value).startswith('customer "C1": personal_offers[0].on.sku: unknown key')


def test_an_empty_list_in_a_window_is_no_restriction() -> None:
    # §1: "an empty list or missing key means no restriction", for hours as for weekdays;
    # an offer's `valid` works like `active` (§5.12).
    promo = parse_promotion({"id": "p", "name": "n", "reward": {"type": "percent_off",
                                                                "percent": "10"},
                             "active": {"weekdays": [], "hours": []}})
    assert promo.active.hours is None
    assert promo.active.weekdays == frozenset()
    customer = parse_customer({"id": "C1", "personal_offers": [
        {"id": "po", "reward": {"type": "percent_off", "percent": "10"},
         "valid": {"hours": []}}]})
    assert customer.personal_offers[0].valid.hours is None


def test_a_leap_second_is_an_rfc_3339_time() -> None:
    promo = parse_promotion({"id": "p", "name": "n", "reward": {"type": "percent_off",
                                                                "percent": "10"},
                             "active": {"to": "2026-12-31T23:59:60Z"}})
    last_instant = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(0)))
    assert promo.active.end == last_instant
    with pytest.raises(DocumentError, match=r"active\.to: must be an RFC 3339 time"):
        parse_promotion({"id": "p", "name": "n", "reward": {"type": "percent_off",
                                                            "percent": "10"},
                         "active": {"to": "2026-12-31T23:59:61Z"}})
