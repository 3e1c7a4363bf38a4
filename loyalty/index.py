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

Tables are split by time so that a receipt only meets promotions whose window touches its
day or week, and only probes the small tables of those: a window of at most
:data:`MAX_DAY_BUCKETED_DAYS` UTC days (a weekend of double points) is filed under each day it
touches, a longer one under each ISO week (UTC) it touches, and one longer than
:data:`MAX_BUCKETED_WEEKS` or open-ended in an "any time" table. Looking up a receipt
intersects its keys with the tables of its day, its week and "any time" (merged into one
view per day on the day's first lookup) and returns each candidate once, dropping those
whose ``from``/``to`` do not hold ``now``, and those filed by a selector's skus or groups
that also names groups or brands none of the receipt's lines has (a group *and* a brand: most
receipts with the group lack the brand). The engine still
checks every candidate's other rules, so the index may over-approximate but never misses.

A promotion filed by its reward's selector is left out of a receipt without those lines: it
would yield nothing there, but as a member of a group it may still be the one that places the
group's step (§3.3), so the lookup adds the members of each group met that come before the
last one found (:func:`_with_group_heads`), from the members merged into the day's view.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter
from typing import NamedTuple

from loyalty.documents import CatalogItem, Customer, Promotion, Selector
from loyalty.eligibility import Prepared, instant, prepare, step_key

__all__ = ["MAX_BUCKETED_WEEKS", "MAX_DAY_BUCKETED_DAYS", "PromotionIndex"]

#: Windows touching at most this many UTC days are filed by day.
MAX_DAY_BUCKETED_DAYS = 7
#: Windows touching more weeks than this are filed as "any time".
MAX_BUCKETED_WEEKS = 60

_DAY = 24 * 3600 * 10**6  # in instant() units
_WEEK = 7 * _DAY
_MONDAY = instant(datetime(1970, 1, 5, tzinfo=UTC))  # weeks run Monday..Sunday in UTC
_ANY_TIME: tuple[str, int] = ("any", 0)
_position = attrgetter("position")
_KEPT_VIEWS = 4  #: merged day views kept (see PromotionIndex._view)

Key = tuple[str, str]
#: ("day", day number) | ("week", week number) | ("any", 0)
Bucket = tuple[str, int]


def _buckets_at(moment: datetime) -> tuple[Bucket, Bucket, Bucket]:
    at = instant(moment) - _MONDAY
    return ("day", at // _DAY), ("week", at // _WEEK), _ANY_TIME


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


def _required_selector(promotion: Promotion) -> Selector | None:
    """A selector that must pick some line of a receipt for the promotion to matter there:
    its first item condition's, else its reward's when it has effects only by applying (no
    ``counters``, reward not ``none``, no control group: a promotion with those has effects,
    counting or a ``control`` listing, even when its reward selects no line)."""
    if promotion.conditions.items and not promotion.conditions.items[0].on.is_all:
        return promotion.conditions.items[0].on
    only_by_applying = (not promotion.counters and promotion.reward.type != "none"
                        and promotion.audience.control == 0)
    if only_by_applying and not promotion.reward.on.is_all:
        return promotion.reward.on
    return None


def _requires(promotion: Promotion) -> tuple[frozenset[str], frozenset[str]] | None:
    """The groups and brands a receipt must hold one each of besides the key the promotion is
    filed by (for :attr:`~loyalty.eligibility.Prepared.requires`): a selector aimed at a
    group *and* a brand is filed by the group, and most receipts with that group lack the
    brand."""
    selector = _required_selector(promotion)
    if selector is None or promotion.conditions.coupon or not (selector.skus or selector.groups):
        return None
    groups = selector.groups if selector.skus else frozenset()
    if not (groups or selector.brands):
        return None
    return groups, selector.brands


def trigger_keys(promotion: Promotion) -> list[Key]:
    """The keys a promotion is filed under (at least one must be present on a receipt)."""
    conditions = promotion.conditions
    if conditions.coupon:
        return [("coupon", conditions.coupon.upper())]
    selector = _required_selector(promotion)
    if selector is not None:
        keys = _selector_keys(selector)
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


def _buckets(promotion: Promotion) -> list[Bucket]:
    start, end = promotion.active.start, promotion.active.end
    if start is None or end is None:
        return [_ANY_TIME]
    first, last = instant(start) - _MONDAY, instant(end) - _MONDAY
    if last // _DAY - first // _DAY + 1 <= MAX_DAY_BUCKETED_DAYS:
        return [("day", day) for day in range(first // _DAY, last // _DAY + 1)]
    if last // _WEEK - first // _WEEK + 1 <= MAX_BUCKETED_WEEKS:
        return [("week", week) for week in range(first // _WEEK, last // _WEEK + 1)]
    return [_ANY_TIME]


def _holds(requires: tuple[frozenset[str], frozenset[str]], groups: set[str],
           brands: set[str]) -> bool:
    needed_groups, needed_brands = requires
    return not ((needed_groups and needed_groups.isdisjoint(groups))
                or (needed_brands and needed_brands.isdisjoint(brands)))


class PromotionIndex:
    """Promotions filed by trigger key and week; build once, reuse for many receipts."""

    def __init__(self, promotions: Iterable[Promotion]) -> None:
        self._by_id: dict[str, Promotion] = {}
        for promotion in promotions:
            self._by_id[promotion.id] = promotion  # a later document with the same id wins
        # The step order of all promotions, once: a receipt sorts its eligible promotions by
        # integer positions (even numbers; odd ones place promotions priced alongside, see
        # place()) instead of comparing (priority, id) tuples.
        ordered = sorted(self._by_id.values(), key=step_key)
        self._step_keys = [step_key(promotion) for promotion in ordered]
        # One Prepared per promotion, the same object in every table it is filed in: hashed
        # by identity, it lets a lookup drop duplicates and promotions not running now
        # without reading the (cache-cold) promotion itself.
        self._prepared = {promotion.id: prepare(promotion, 2 * place, _requires(promotion))
                          for place, promotion in enumerate(ordered)}
        # (kind, bucket) → value → promotions: a receipt only touches the tables of its own
        # day and week (and "any time"), which hold the promotions live around then — small,
        # cache-warm dicts however many promotions are defined.
        self._tables: dict[tuple[str, Bucket], dict[str, list[Prepared]]] = {}
        #: (group, bucket) → the group's members filed there, in step order (see lookup)
        self._members: dict[tuple[str, Bucket], list[Prepared]] = {}
        for filed in self._prepared.values():
            promotion = filed.promotion
            buckets = _buckets(promotion)
            for kind, value in trigger_keys(promotion):
                for bucket in buckets:
                    self._tables.setdefault((kind, bucket), {}).setdefault(value, []).append(
                        filed)
            if promotion.group:
                for bucket in buckets:
                    self._members.setdefault((promotion.group, bucket), []).append(filed)
        for members in self._members.values():
            members.sort(key=_position)
        self._views: dict[int, _DayView] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Promotion]:
        return iter(self._by_id.values())

    def get(self, promotion_id: str) -> Promotion | None:
        """The promotion with this id, if defined."""
        return self._by_id.get(promotion_id)

    def prepared(self, promotion: Promotion) -> Prepared:
        """:func:`~loyalty.eligibility.prepare` of ``promotion``, done at build for the
        promotions of this index, else by :meth:`place`."""
        filed = self._prepared.get(promotion.id)
        if filed is not None and filed.promotion is promotion:
            return filed
        return self.place(promotion)

    def place(self, promotion: Promotion) -> Prepared:
        """``promotion`` (not of this index: a personal offer) prepared with an odd position
        among this index's, after those of equal step key."""
        return prepare(promotion, 2 * bisect_right(self._step_keys, step_key(promotion)) - 1)

    def lookup(
        self,
        *,
        now: datetime,
        skus: Iterable[str],
        items: Sequence[CatalogItem],
        customer: Customer | None,
        coupon_series: Iterable[str],
        offers: Sequence[Prepared] = (),
    ) -> list[Prepared]:
        """Every promotion that might apply to such a receipt (a superset), each once, as
        its :class:`~loyalty.eligibility.Prepared`, in a new list the caller may change.
        Only those whose window holds the instant ``now``.

        ``offers``: the customer's personal offers valid now, placed by :meth:`place`; they
        are in the list too, and their group (``personal``) is met like any other, so a
        promotion of this index in that group still places the group's step (§3.3)."""
        groups: set[str] = set().union(*[item.groups for item in items])
        brands = {item.brand for item in items}
        brands.discard("")
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
        view = self._view(_buckets_at(now))
        hits: list[list[Prepared]] = []
        for kind, values in probes:
            table = view.tables.get(kind)
            if table:
                # The intersection runs in C over the smaller side: a receipt's ~200 keys
                # against a table of thousands, without a Python-level probe per key.
                hits.extend([table[value] for value in table.keys() & values])
        found = dict.fromkeys(chain.from_iterable(hits))
        # The view holds the promotions of the whole day: drop those whose window does not
        # hold ``now`` here, on integers; and those that need a group or brand besides their
        # key which the receipt lacks.
        moment = instant(now)
        running = [filed for filed in found if filed.start <= moment < filed.end
                   and (filed.requires is None or _holds(filed.requires, groups, brands))]
        return _with_group_heads([*running, *offers], view.members, moment)

    def _view(self, buckets: tuple[Bucket, Bucket, Bucket]) -> _DayView:
        """The tables of a day, its week and "any time" merged, by kind: one probe per kind
        instead of three, holding only the promotions that run at some instant of that UTC
        day (a week's table also holds those that end before it or start after it); and so
        the groups' members. Built on the first lookup of a day and kept for the next ones."""
        day = buckets[0][1]
        view = self._views.get(day)
        if view is not None:
            return view
        opens = _MONDAY + day * _DAY
        closes = opens + _DAY

        def today(filed: list[Prepared]) -> list[Prepared]:
            return [entry for entry in filed if entry.start < closes and entry.end > opens]

        view = _DayView({}, {})
        for (kind, bucket), table in self._tables.items():
            if bucket in buckets:
                merged = view.tables.setdefault(kind, {})
                for value, filed in table.items():
                    if running := today(filed):
                        merged[value] = merged.get(value, []) + running
        for (group, bucket), members in self._members.items():
            if bucket in buckets and (running := today(members)):
                view.members[group] = sorted([*view.members.get(group, ()), *running],
                                             key=_position)
        if len(self._views) >= _KEPT_VIEWS:  # a long-running process meets new days
            self._views.clear()
        self._views[day] = view
        return view


class _DayView(NamedTuple):
    """What :meth:`PromotionIndex.lookup` reads for receipts of one UTC day."""

    #: kind → value → the promotions filed under that key running at some instant of the day
    tables: dict[str, dict[str, list[Prepared]]]
    #: group → its members running at some instant of the day, in step order
    members: dict[str, list[Prepared]]


def _with_group_heads(candidates: list[Prepared], members: dict[str, list[Prepared]],
                      moment: int) -> list[Prepared]:
    """``candidates`` plus the members of their groups placed before them that may be
    eligible.

    A member filed by its reward's selector is left out when the receipt has none of its
    lines, which is right for what it yields (nothing) but not for where its group's
    step goes (§3.3: at the place of its first eligible member). So for each group met,
    the running members ahead of the last one found are added, up to the first that is
    surely eligible (dates only and running now), after which none could move the step.
    """
    # Up to the last member found: the first ones found may turn out not eligible (an
    # audience, a condition), and then the step is at the first eligible member, found
    # or not. (If no member found is eligible, the eligible ones yield nothing and the
    # step changes nothing wherever it is.)
    bounds: dict[str, int] = {}
    for filed in candidates:
        group = filed.promotion.group
        if group and filed.position > bounds.get(group, -1):
            bounds[group] = filed.position
    if not bounds:
        return candidates
    known = set(candidates)
    for group, bound in bounds.items():
        for member in members.get(group, ()):
            if member.position >= bound:
                break
            if not member.start <= moment < member.end:
                continue
            if member not in known:
                known.add(member)
                candidates.append(member)
            if member.dates_only:
                break  # surely eligible: no later member can place the step
    return candidates
