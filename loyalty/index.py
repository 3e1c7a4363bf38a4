"""An index of promotions so that pricing cost follows the receipt, not the promotion count.

Theory of operation
-------------------
Every promotion is filed under one *trigger*: a set of keys of which at least one must be
present for the promotion to matter on a receipt. Triggers come from necessary conditions,
most selective first:

1. a coupon series (``conditions.coupon``): only receipts carrying a code of that series;
2. a selector that must match some line: ``conditions.items[0].on``, or the reward's ``on``
   when the promotion has effects only by applying (no ``counters``, reward not ``none``,
   no control group: a reward that selects no line yields nothing and is not applied).
   A selector files the promotion by its skus, else its groups, else its brands, else its
   favorite sets;
3. the audience: any of its segments, or the allowed values of its first status system;
4. otherwise the promotion is receipt-wide.

Tables are split by ISO week (UTC) of the ``active`` window so that a receipt only meets
promotions whose window touches its week, and only probes the small tables of that week;
windows longer than :data:`MAX_BUCKETED_WEEKS` or open-ended go to an "any week" table.
Looking up a receipt intersects its keys with the tables of its week and returns each
candidate once, dropping those whose ``from``/``to`` do not hold ``now`` (a week holds
about twice the promotions running at any instant of it). The engine still checks every
candidate fully, so the index may over-approximate but never misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timezone

from loyalty.documents import CatalogItem, Customer, Promotion, Selector
from loyalty.eligibility import Prepared, instant, prepare

__all__ = ["MAX_BUCKETED_WEEKS", "PromotionIndex"]

#: Windows spanning more weeks than this are filed as "any time".
MAX_BUCKETED_WEEKS = 60
_ANY_WEEK = -(10**9)
_WEEK_SECONDS = 7 * 24 * 3600
_EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday: weeks run Monday..Sunday in UTC

Key = tuple[str, str]


def _week(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds() // _WEEK_SECONDS)


def _selector_keys(selector: Selector) -> list[Key] | None:
    if selector.skus:
        return [("sku", sku) for sku in sorted(selector.skus)]
    if selector.groups:
        return [("group", group) for group in sorted(selector.groups)]
    if selector.brands:
        return [("brand", brand) for brand in sorted(selector.brands)]
    if selector.favorites:
        return [("favorite", name) for name in sorted(selector.favorites)]
    return None


def trigger_keys(promotion: Promotion) -> list[Key]:
    """The keys a promotion is filed under (at least one must be present on a receipt)."""
    conditions = promotion.conditions
    if conditions.coupon:
        return [("coupon", conditions.coupon.upper())]
    if conditions.items:
        keys = _selector_keys(conditions.items[0].on)
        if keys is not None:
            return keys
    # A promotion with counters, a `none` reward or a control group has effects (counting,
    # a `control` listing) even when its reward selects no line.
    only_by_applying = (not promotion.counters and promotion.reward.type != "none"
                        and promotion.audience.control == 0)
    if only_by_applying:
        keys = _selector_keys(promotion.reward.on)
        if keys is not None:
            return keys
    audience = promotion.audience
    if audience.segments:
        return [("segment", segment) for segment in sorted(audience.segments)]
    for system, allowed in audience.statuses.items():
        if allowed:
            return [("status", f"{system}\x00{value}") for value in sorted(allowed)]
    if audience.members_only:
        return [("member", "")]
    return [("all", "")]


def _weeks(promotion: Promotion) -> list[int]:
    start, end = promotion.active.start, promotion.active.end
    if start is None or end is None:
        return [_ANY_WEEK]
    first, last = _week(start), _week(end)
    if last - first + 1 > MAX_BUCKETED_WEEKS:
        return [_ANY_WEEK]
    return list(range(first, last + 1))


class PromotionIndex:
    """Promotions filed by trigger key and week; build once, reuse for many receipts."""

    def __init__(self, promotions: Iterable[Promotion]) -> None:
        self._by_id: dict[str, Promotion] = {}
        for promotion in promotions:
            self._by_id[promotion.id] = promotion  # a later document with the same id wins
        # One Prepared per promotion, the same object in every table it is filed in: hashed
        # by identity, it lets a lookup drop duplicates and promotions not running now
        # without reading the (cache-cold) promotion itself.
        self._prepared = {promotion_id: prepare(promotion)
                          for promotion_id, promotion in self._by_id.items()}
        # (kind, week) → value → promotions: a receipt only touches the tables of its own week
        # (and "any week"), which hold the promotions live around then — small, cache-warm
        # dicts however many promotions are defined.
        self._tables: dict[tuple[str, int], dict[str, list[Prepared]]] = {}
        for filed in self._prepared.values():
            promotion = filed.promotion
            weeks = _weeks(promotion)
            for kind, value in trigger_keys(promotion):
                for week in weeks:
                    self._tables.setdefault((kind, week), {}).setdefault(value, []).append(
                        filed)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Promotion]:
        return iter(self._by_id.values())

    def get(self, promotion_id: str) -> Promotion | None:
        """The promotion with this id, if defined."""
        return self._by_id.get(promotion_id)

    def prepared(self, promotion: Promotion) -> Prepared:
        """:func:`~loyalty.eligibility.prepare` of ``promotion``, done at build for the
        promotions of this index."""
        filed = self._prepared.get(promotion.id)
        if filed is not None and filed.promotion is promotion:
            return filed
        return prepare(promotion)

    def candidates(
        self,
        *,
        now: datetime,
        skus: Iterable[str],
        items: Sequence[CatalogItem],
        customer: Customer | None,
        coupon_series: Iterable[str],
    ) -> list[Promotion]:
        """Every promotion that might apply to such a receipt (a superset), each once."""
        groups: set[str] = set()
        brands: set[str] = set()
        for item in items:
            groups.update(item.groups)
            if item.brand:
                brands.add(item.brand)
        probes: list[tuple[str, Iterable[str]]] = [
            ("all", ("",)), ("sku", skus), ("group", groups), ("brand", brands),
            ("coupon", {series.upper() for series in coupon_series}),
        ]
        if customer is not None:
            probes += [
                ("member", ("",)), ("favorite", customer.favorites.keys()),
                ("segment", customer.segments),
                ("status", [f"{system}\x00{value}" for system, value in customer.statuses.items()]),
            ]
        week = _week(now)
        found: dict[Prepared, None] = {}
        tables = self._tables
        for kind, values in probes:
            for bucket_week in (week, _ANY_WEEK):
                table = tables.get((kind, bucket_week))
                if not table:
                    continue
                # The intersection runs in C over the smaller side: a receipt's ~200 keys
                # against a table of thousands, without a Python-level probe per key.
                for value in table.keys() & values:
                    found.update(dict.fromkeys(table[value]))
        if not isinstance(now.tzinfo, timezone):
            # Two datetimes of one non-fixed zone compare by wall clock (a DST fold): leave
            # the window test to the engine.
            return [filed.promotion for filed in found]
        # A week holds about twice the promotions running at any instant of it: drop those
        # whose window does not hold ``now`` here, on integers.
        moment = instant(now)
        return [filed.promotion for filed in found if filed.start <= moment < filed.end]
