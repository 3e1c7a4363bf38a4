"""The promotion index: filed under necessary conditions and weeks, never missing one."""

from __future__ import annotations

from datetime import datetime

from loyalty import Customer, PromotionIndex
from loyalty.index import trigger_keys

from .helpers import FEB_MONDAY, MSK, catalog, customer, item, line, price, promo, receipt

OIL = item("oil", groups=["oils", "grocery"], brand="A")
BREAD = item("bread", groups=["bakery"], brand="B")
CAKE = item("cake", groups=["bakery", "sweets"], brand="C")

BY_SKU = promo("by-sku", {"type": "percent_off", "percent": "10", "on": {"skus": ["oil"]}})
BY_GROUP = promo("by-group", {"type": "percent_off", "percent": "10",
                              "on": {"groups": ["bakery"], "brands": ["B"]}})
BY_BRAND = promo("by-brand", {"type": "points_percent", "percent": "1", "on": {"brands": ["Z"]}})
BY_ITEMS = promo("by-items", {"type": "percent_off", "percent": "30"},
                 conditions={"items": [{"on": {"groups": ["beds"]}}]})
BY_COUPON = promo("by-coupon", {"type": "amount_off", "amount": 100},
                  conditions={"coupon": "Spring"})
COUNTING = promo("counting", {"type": "percent_off", "percent": "10", "on": {"skus": ["tv"]}},
                 counters=[{"name": "visits", "add": 1}])
VIP = promo("vip", {"type": "points_percent", "percent": "2"}, audience={"segments": ["vip"]})
GOLD = promo("gold", {"type": "points_percent", "percent": "2"},
             audience={"statuses": {"tier": ["gold"]}})
MARCH = promo("march", {"type": "percent_off", "percent": "10"},
              active={"from": "2026-03-01T00:00:00+03:00", "to": "2026-03-08T00:00:00+03:00"})
FEB = promo("feb", {"type": "percent_off", "percent": "10"},
            active={"from": "2026-02-01T00:00:00+03:00", "to": "2026-03-01T00:00:00+03:00"})
LONG = promo("long", {"type": "percent_off", "percent": "10"},
             active={"from": "2020-01-01T00:00:00+03:00", "to": "2030-01-01T00:00:00+03:00"})
ALL = [BY_SKU, BY_GROUP, BY_BRAND, BY_ITEMS, BY_COUPON, COUNTING, VIP, GOLD, MARCH, FEB, LONG]


def _ids(index: PromotionIndex, *, now: datetime = FEB_MONDAY, skus: tuple[str, ...] = (),
         who: Customer | None = None, coupons: tuple[str, ...] = ()) -> set[str]:
    items = [entry for entry in (OIL, BREAD, CAKE) if entry.sku in skus]
    found = index.lookup(now=now, skus=skus, items=items, customer=who, coupon_series=coupons)
    return {filed.promotion.id for filed in found}


def test_trigger_keys() -> None:
    assert trigger_keys(BY_SKU) == [("sku", "oil")]
    assert trigger_keys(BY_GROUP) == [("group", "bakery")]
    assert trigger_keys(BY_BRAND) == [("brand", "Z")]
    assert trigger_keys(BY_ITEMS) == [("group", "beds")]
    assert trigger_keys(BY_COUPON) == [("coupon", "SPRING")]
    assert trigger_keys(COUNTING) == [("all", "")]  # its counters count without the tv
    assert trigger_keys(VIP) == [("segment", "vip")]
    assert trigger_keys(GOLD) == [("status", "tier\x00gold")]


def test_candidates_follow_the_receipt() -> None:
    index = PromotionIndex(ALL)
    assert len(index) == len(ALL)
    receipt_wide = {"counting", "feb", "long"}
    assert _ids(index, skus=("oil",)) == receipt_wide | {"by-sku"}
    assert _ids(index, skus=("bread",)) == receipt_wide | {"by-group"}
    assert _ids(index, skus=("oil",), coupons=("SPRING",)) == receipt_wide | {"by-sku",
                                                                              "by-coupon"}
    vip_gold = customer(segments=["vip"], statuses={"tier": "gold"})
    assert _ids(index, who=vip_gold) == receipt_wide | {"vip", "gold"}
    assert _ids(index, who=customer(statuses={"tier": "silver"})) == receipt_wide


def test_a_promotion_needing_a_group_and_a_brand_is_no_candidate_without_the_brand() -> None:
    # Filed by its group, BY_GROUP also needs brand B; most receipts with bakery lack it.
    index = PromotionIndex(ALL)
    receipt_wide = {"counting", "feb", "long"}
    assert _ids(index, skus=("cake",)) == receipt_wide
    assert _ids(index, skus=("cake", "bread")) == receipt_wide | {"by-group"}
    # a necessary condition only: the group on one line and the brand on another still
    # make a candidate, which the engine then finds matching no line
    brand_b_oil = item("oil", groups=["oils"], brand="B")
    found = index.lookup(now=FEB_MONDAY, skus=("cake", "oil"), items=[CAKE, brand_b_oil],
                         customer=None, coupon_series=())
    assert "by-group" in {filed.promotion.id for filed in found}


def test_a_promotion_needing_a_sku_and_a_group_is_no_candidate_without_the_group() -> None:
    narrow = promo("narrow", {"type": "percent_off", "percent": "10",
                              "on": {"skus": ["oil", "cake"], "groups": ["sweets"]}})
    buy_bed = promo("bed", {"type": "percent_off", "percent": "30", "on": {"skus": ["oil"]}},
                    conditions={"items": [{"on": {"skus": ["cake"], "brands": ["Z"]}}]})
    index = PromotionIndex([narrow, buy_bed])
    assert _ids(index, skus=("oil",)) == set()
    assert _ids(index, skus=("cake",)) == {"narrow"}
    held = promo("held", {"type": "percent_off", "percent": "10",
                          "on": {"groups": ["bakery"], "brands": ["Z"]}}, audience={"control": "5"})
    assert _ids(PromotionIndex([held]), skus=("cake",)) == {"held"}  # it lists control


def test_weeks_outside_the_window_are_not_candidates() -> None:
    index = PromotionIndex([MARCH, FEB, LONG])
    assert _ids(index, now=FEB_MONDAY) == {"feb", "long"}
    assert _ids(index, now=datetime(2026, 3, 4, 12, 0, tzinfo=MSK)) == {"march", "long"}
    assert _ids(index, now=datetime(2026, 6, 1, 12, 0, tzinfo=MSK)) == {"long"}


def test_a_later_document_with_the_same_id_wins() -> None:
    newer = promo("by-sku", {"type": "percent_off", "percent": "20", "on": {"skus": ["bread"]}})
    index = PromotionIndex([BY_SKU, newer])
    assert len(index) == 1
    assert index.get("by-sku") == newer
    assert _ids(index, skus=("oil",)) == set()


def test_a_control_group_promotion_is_not_filed_by_its_reward() -> None:
    held = promo("held", {"type": "percent_off", "percent": "10", "on": {"skus": ["oil"]}},
                 audience={"control": "10"})
    assert trigger_keys(held) == [("all", "")]


def test_short_campaigns_are_found_on_their_days_only() -> None:
    # Filed by day: a weekend of double points touches two UTC days (and a third at its
    # Moscow midnight end), a receipt meets it exactly while it runs.
    weekend = promo("weekend", {"type": "points_percent", "percent": "5"},
                    active={"from": "2026-02-14T00:00:00+03:00",
                            "to": "2026-02-16T00:00:00+03:00"})
    index = PromotionIndex([weekend, FEB])
    assert _ids(index, now=datetime(2026, 2, 13, 23, 59, tzinfo=MSK)) == {"feb"}
    assert _ids(index, now=datetime(2026, 2, 14, 0, 0, tzinfo=MSK)) == {"feb", "weekend"}
    assert _ids(index, now=datetime(2026, 2, 15, 23, 59, tzinfo=MSK)) == {"feb", "weekend"}
    assert _ids(index, now=datetime(2026, 2, 16, 0, 0, tzinfo=MSK)) == {"feb"}


def test_promotions_priced_alongside_take_their_place_in_the_step_order() -> None:
    # Steps run by priority descending, then id (§3.2); a personal offer (priority 0) is
    # placed among the index's promotions by the same key, after one with an equal key.
    reward = {"type": "percent_off", "percent": "10"}
    first, third = promo("a", reward), promo("c", reward)
    urgent = promo("z", reward, priority=5)
    index = PromotionIndex([third, urgent, first])
    offer = promo("b", reward)
    positions = {p.id: index.prepared(p).position for p in (first, third, urgent)}
    assert positions["z"] < positions["a"] < index.place(offer).position < positions["c"]
    same_key = promo("a", reward)
    assert positions["a"] < index.place(same_key).position < positions["c"]
    assert index.place(promo("y", reward, priority=9)).position < positions["z"]
    assert index.place(promo("zz", reward)).position > positions["c"]


def test_a_group_found_by_a_member_that_is_not_eligible_still_steps_at_its_first_eligible() -> None:
    # ga is found (sku x) but shut out by its audience; gb is eligible and yields nothing, so
    # the index files it under a sku the receipt lacks; the group's step is gb's place (§3.3),
    # before mid: G takes 20% of 10,00 first, then mid its 1,00.
    promotions = [
        promo("ga", {"type": "percent_off", "percent": "10", "on": {"skus": ["x"]}},
              priority=30, group="G", audience={"segments": ["vip"]}),
        promo("gb", {"type": "percent_off", "percent": "20", "on": {"skus": ["absent"]}},
              priority=20, group="G"),
        promo("mid", {"type": "amount_off", "amount": 100}, priority=10),
        promo("gc", {"type": "percent_off", "percent": "20"}, priority=5, group="G"),
    ]  # fmt: skip
    calculation = price(receipt(line(1, "x", "1", 1000)), promotions, catalog(item("x")))
    assert calculation.discount == 200 + 100
    assert calculation.lines[0].promotions == ("gc", "mid")


def test_a_group_member_needing_an_absent_brand_still_places_the_group_step() -> None:
    # As above, with gb filed by a group the receipt holds and a brand it lacks: the lookup
    # drops gb as a candidate, the group heads bring it back to place G's step.
    promotions = [
        promo("gb", {"type": "percent_off", "percent": "20",
                     "on": {"groups": ["g"], "brands": ["absent"]}}, priority=20, group="G"),
        promo("mid", {"type": "amount_off", "amount": 100}, priority=10),
        promo("gc", {"type": "percent_off", "percent": "20"}, priority=5, group="G"),
    ]  # fmt: skip
    calculation = price(receipt(line(1, "x", "1", 1000)), promotions,
                        catalog(item("x", groups=["g"], brand="A")))
    assert calculation.discount == 200 + 100
    assert calculation.lines[0].promotions == ("gc", "mid")


def test_a_week_filed_promotion_is_found_from_its_first_instant_to_its_last() -> None:
    # Filed by ISO week; a day's view keeps those running at some instant of that UTC day,
    # so the first and the last day of the window, cut at 12:00 Moscow, still find it.
    fortnight = promo("fortnight", {"type": "percent_off", "percent": "10"},
                      active={"from": "2026-02-04T12:00:00+03:00",
                              "to": "2026-02-18T12:00:00+03:00"})
    index = PromotionIndex([fortnight])
    found_at = {(day, hour): _ids(index, now=datetime(2026, 2, day, hour, 0, tzinfo=MSK))
                for day in (3, 4, 11, 18, 19) for hour in (2, 11, 12, 23)}
    assert {when for when, ids in found_at.items() if ids} == {
        (4, 12), (4, 23), (11, 2), (11, 11), (11, 12), (11, 23), (18, 2), (18, 11)}
