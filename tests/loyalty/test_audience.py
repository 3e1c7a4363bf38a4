"""Audiences (§5.8), control groups, stores and time windows (§5.13)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from loyalty import Customer, Promotion, control_bucket

from .helpers import MSK, catalog, customer, item, line, price, promo, receipt

ITEMS = catalog(item("bread"))
TEN = {"type": "percent_off", "percent": "10"}


def _discount(promotion: Promotion, who: Customer | None = None, *,
              at: datetime = datetime(2026, 2, 16, 10, 15, tzinfo=MSK), **options: Any) -> int:
    the_receipt = receipt(line(1, "bread", "1", 10000), at=at, card="1" if who else None)
    return price(the_receipt, [promotion], ITEMS, who, **options).discount


def test_statuses_attributes_segments() -> None:
    targeted = promo("t", TEN, audience={"statuses": {"tier": ["gold"]},
                                         "attributes": {"gender": ["f"]},
                                         "segments": ["churn-risk", "vip"]})
    match = customer(statuses={"tier": "gold"}, attributes={"gender": "f"}, segments=["vip"])
    assert _discount(targeted, match) == 1000
    assert _discount(targeted, customer(statuses={"tier": "silver"}, attributes={"gender": "f"},
                                        segments=["vip"])) == 0
    assert _discount(targeted, customer(statuses={"tier": "gold"}, attributes={"gender": "m"},
                                        segments=["vip"])) == 0
    assert _discount(targeted, customer(statuses={"tier": "gold"}, attributes={"gender": "f"},
                                        segments=["new"])) == 0
    assert _discount(targeted) == 0


def test_members_only() -> None:
    members = promo("m", TEN, audience={"members_only": True})
    assert _discount(members, customer()) == 1000
    assert _discount(members) == 0
    assert _discount(promo("everyone", TEN)) == 1000


def test_stores() -> None:
    local = promo("local", TEN, stores=["S002", "S003"])
    assert _discount(local, store="S002") == 1000
    assert _discount(local, store="S001") == 0


def test_control_group_hash_is_the_spec_formula() -> None:
    digest = hashlib.sha256(b"oil-15:C1").digest()
    assert control_bucket("oil-15", "C1") == int.from_bytes(digest[:8], "big") % 10000


def test_control_group_holds_out_a_stable_share() -> None:
    held = promo("held", TEN, audience={"control": "10"},
                 counters=[{"name": "n", "add": 1}], messages={"receipt": "x"})
    ids = [f"C{number}" for number in range(400)]
    inside = [cid for cid in ids if control_bucket("held", cid) < 1000]
    outside = [cid for cid in ids if control_bucket("held", cid) >= 1000]
    assert inside
    assert outside
    calc = price(receipt(line(1, "bread", "1", 10000), card="1"), [held], ITEMS,
                 customer(id=inside[0]))
    assert calc.discount == 0
    assert calc.control == ("held",)
    assert calc.effects.counters == ()
    assert calc.promotions == ()
    assert all(m.target == "cashier" for m in calc.messages)
    calc = price(receipt(line(1, "bread", "1", 10000), card="1"), [held], ITEMS,
                 customer(id=outside[0]))
    assert (calc.discount, calc.control) == (1000, ())
    # Without a customer nobody is held out.
    assert price(receipt(line(1, "bread", "1", 10000)), [held], ITEMS).control == ()


def test_control_lists_only_otherwise_matching_customers() -> None:
    full = promo("all-out", TEN, audience={"control": "100", "segments": ["vip"]})
    assert price(receipt(line(1, "bread", "1", 10000), card="1"), [full], ITEMS,
                 customer(segments=["vip"])).control == ("all-out",)
    assert price(receipt(line(1, "bread", "1", 10000), card="1"), [full], ITEMS,
                 customer(segments=["new"])).control == ()


def test_weekdays_and_hours_in_store_time() -> None:
    weekend_mornings = promo("wm", TEN, active={"weekdays": [6, 7], "hours": ["08:00", "12:00"]})
    saturday = datetime(2026, 2, 21, 9, 0, tzinfo=MSK)
    assert _discount(weekend_mornings, at=saturday) == 1000
    assert _discount(weekend_mornings, at=saturday.replace(hour=12)) == 0  # `to` excluded
    assert _discount(weekend_mornings, at=saturday.replace(hour=8)) == 1000
    assert _discount(weekend_mornings, at=datetime(2026, 2, 20, 9, 0, tzinfo=MSK)) == 0
    # The same instant read in another store's zone is Friday 23:00 there.
    assert _discount(weekend_mornings, at=datetime(2026, 2, 21, 2, 0, tzinfo=MSK),
                     tz=timezone(timedelta(hours=-4))) == 0
    # Saturday 09:00 in UTC−4 arrives as 13:00 UTC.
    assert _discount(weekend_mornings, at=datetime(2026, 2, 21, 13, 0, tzinfo=UTC),
                     tz=timezone(timedelta(hours=-4))) == 1000


def test_hours_wrap_over_midnight() -> None:
    night = promo("night", TEN, active={"hours": ["22:00", "06:00"]})
    day = datetime(2026, 2, 16, tzinfo=MSK)
    assert _discount(night, at=day.replace(hour=23)) == 1000
    assert _discount(night, at=day.replace(hour=3)) == 1000
    assert _discount(night, at=day.replace(hour=6)) == 0
    assert _discount(night, at=day.replace(hour=12)) == 0


def test_window_bounds_compare_as_instants() -> None:
    starts = promo("s", TEN, active={"from": "2026-02-16T07:00:00Z"})
    assert _discount(starts, at=datetime(2026, 2, 16, 10, 0, tzinfo=MSK)) == 1000
    assert _discount(starts, at=datetime(2026, 2, 16, 9, 59, tzinfo=MSK)) == 0


def test_held_out_is_listed_even_when_the_reward_would_select_nothing() -> None:
    elsewhere = promo("elsewhere", {"type": "percent_off", "percent": "10",
                                    "on": {"skus": ["caviar"]}}, audience={"control": "100"})
    calc = price(receipt(line(1, "bread", "1", 10000), card="1"), [elsewhere], ITEMS, customer())
    assert calc.control == ("elsewhere",)


def test_empty_lists_of_values_restrict_nobody() -> None:
    # §1: an empty list means no restriction, for a receipt without a customer too.
    everyone = promo("p", TEN, audience={"statuses": {"tier": []}, "attributes": {"gender": []},
                                         "segments": []})
    assert _discount(everyone) == 1000
    assert _discount(everyone, customer()) == 1000
