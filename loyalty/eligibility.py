"""Who and when a promotion applies to: windows, stores, audiences, control groups, selectors.

Theory of operation
-------------------
These are the yes/no questions of promotions spec §3.1, each a pure function of the
promotion (or its parts), the customer, the receipt's instant and the store's time zone.
Windows compare instants for ``from``/``to`` and read weekdays and hours on the store's
local clock. The control group is a stable hash (sha256 of ``"{promotion}:{customer}"``)
so central and the edge hold out exactly the same customers.

:func:`prepare` works out once per promotion what these questions need first (its window as
integer instants, whether it has any rule besides its dates), so that pricing a receipt
that meets many promotions reads little more than that for most of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from fractions import Fraction

from loyalty.documents import (
    ActiveWindow,
    Audience,
    CatalogItem,
    Conditions,
    Customer,
    Promotion,
    Selector,
)
from loyalty.values import AppliedPromotion

__all__ = [
    "Prepared",
    "audience_matches",
    "control_bucket",
    "held_out",
    "in_window",
    "in_window_local",
    "instant",
    "last_valid_day",
    "on_the_clock",
    "prepare",
    "selects",
    "step_key",
    "window_span",
]

_DAY_MINUTES = 24 * 60
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_OPEN_START, _OPEN_END = -(2**62), 2**62


def in_window(window: ActiveWindow, now: datetime, tz: tzinfo) -> bool:
    """True when ``now`` is within the window: ``from`` included, ``to`` excluded (§5.13).

    Weekdays and hours are read independently on the store's local clock; an ``hours``
    range whose ``from`` is later than its ``to`` wraps over midnight, equal bounds select
    no minute at all.
    """
    local = now.astimezone(tz)
    return in_window_local(window, now, local.isoweekday(), local.hour * 60 + local.minute)


def in_window_local(window: ActiveWindow, now: datetime, weekday: int, minute: int) -> bool:
    """:func:`in_window` with the store-local ISO weekday and minute of the day of ``now``
    already computed (the engine reads the clock once per receipt)."""
    if window.start is not None and now < window.start:
        return False
    if window.end is not None and now >= window.end:
        return False
    return on_the_clock(window, weekday, minute)


def at_fixed_offset(moment: datetime) -> datetime:
    """``moment`` at the fixed UTC offset its zone has at that instant.

    Two datetimes of one zone of changing offset (a ``ZoneInfo``) compare by wall clock, so
    in the autumn fold 02:10 CET would come before 02:20 CEST; windows compare as instants
    (§5.13), and a fixed offset also lets them be tested on :func:`instant` integers."""
    if isinstance(moment.tzinfo, timezone):
        return moment
    return moment.astimezone(timezone(moment.utcoffset() or timedelta(0)))


def instant(moment: datetime) -> int:
    """An aware datetime as integer microseconds since 1970-01-01 UTC (exact)."""
    return (moment - _UNIX_EPOCH) // _MICROSECOND


def window_span(window: ActiveWindow) -> tuple[int, int]:
    """``(from, to)`` of the window as :func:`instant` values; an open end is ±2^62 µs,
    beyond any datetime. For a ``now`` with a fixed UTC offset, ``from <= now < to`` on
    these integers is exactly the instant test of :func:`in_window_local`, ~20 times
    cheaper than comparing aware datetimes of different zones."""
    return (instant(window.start) if window.start is not None else _OPEN_START,
            instant(window.end) if window.end is not None else _OPEN_END)


_NO_CONDITIONS = Conditions()


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: hashed by identity, cheaply
class Prepared:
    """What eligibility reads first about a promotion, worked out once (when it is filed).

    Most promotions have no rule but their dates; telling them apart up front spares the
    engine reading a promotion's audience, stores and conditions on every receipt.
    """

    promotion: Promotion
    start: int  #: ``active`` as :func:`window_span`
    end: int
    #: no weekdays, hours, stores, audience, control group or conditions: the promotion is
    #: eligible exactly when ``start <= now < end``
    dates_only: bool
    accrues: bool  #: a points reward: it does nothing without a customer (§5.7)
    controlled: bool  #: has a control group (most have none: no hashing for them)
    discounts: bool  #: a reward that discounts lines
    wide: bool  #: the reward's selector is empty: it selects every line of the receipt
    listed: AppliedPromotion  #: how the promotion is listed when it applies
    #: the promotion's place in the step order of §3.2 (priority descending, then id) among
    #: the promotions it is priced with, as an integer (see PromotionIndex); 0 when alone
    position: int = 0
    #: (groups, brands) of which the receipt's lines must hold one each (an empty set: no
    #: such need) for the promotion to matter, beyond the key it is filed by; see
    #: :meth:`~loyalty.index.PromotionIndex.lookup`. None: nothing beyond that key.
    requires: tuple[frozenset[str], frozenset[str]] | None = None


def step_key(promotion: Promotion) -> tuple[int, str]:
    """The step order of §3.2: priority descending, then id."""
    return -promotion.priority, promotion.id


def prepare(promotion: Promotion, position: int = 0,
            requires: tuple[frozenset[str], frozenset[str]] | None = None) -> Prepared:
    """:class:`Prepared` for ``promotion``, at ``position`` in the step order."""
    window, audience = promotion.active, promotion.audience
    start, end = window_span(window)
    dates_only = (not window.weekdays and window.hours is None and not promotion.stores
                  and audience.unrestricted and not audience.control
                  and promotion.conditions == _NO_CONDITIONS)
    return Prepared(promotion, start, end, dates_only, promotion.reward.is_points,
                    bool(audience.control), promotion.reward.is_discount,
                    promotion.reward.on.is_all, AppliedPromotion(promotion.id, promotion.name),
                    position, requires)


def on_the_clock(window: ActiveWindow, weekday: int, minute: int) -> bool:
    """The store-local part of the window test: ISO weekday and minute of the day."""
    if window.weekdays and weekday not in window.weekdays:
        return False
    if window.hours is not None:
        start, end = window.hours
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end
    return True


def last_valid_day(window: ActiveWindow, tz: tzinfo) -> str:
    """``DD.MM`` of the last local day the window is valid (``{valid_to}``), or ``""``."""
    if window.end is None:
        return ""
    # ``to`` is excluded: the last valid instant is one microsecond before it.
    last = (window.end - timedelta(microseconds=1)).astimezone(tz)
    return f"{last.day:02d}.{last.month:02d}"


def audience_matches(audience: Audience, customer: Customer | None) -> bool:
    """The audience test of §3.1/§5.8, without the control group.

    Without an identified customer only audiences with no restriction match.
    """
    if customer is None:
        return audience.unrestricted
    for system, allowed in audience.statuses.items():
        if allowed and customer.statuses.get(system) not in allowed:
            return False
    for name, allowed in audience.attributes.items():
        if allowed and customer.attributes.get(name) not in allowed:
            return False
    return not (audience.segments and audience.segments.isdisjoint(customer.segments))


def control_bucket(promotion_id: str, customer_id: str) -> int:
    """int(first 8 bytes of sha256("{promotion}:{customer}"), big-endian) mod 10000."""
    digest = hashlib.sha256(f"{promotion_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000


def held_out(promotion_id: str, control: Fraction, customer: Customer | None) -> bool:
    """True when the customer is in the promotion's control group (never without one)."""
    if customer is None or control <= 0:
        return False
    return control_bucket(promotion_id, customer.id) < control * 100


def selects(selector: Selector, sku: str, item: CatalogItem | None,
            customer: Customer | None) -> bool:
    """True when the ``on`` selector picks a line: AND over keys, OR within a key (§5.1)."""
    if selector.skus and sku not in selector.skus:
        return False
    if selector.groups and (item is None or selector.groups.isdisjoint(item.groups)):
        return False
    if selector.brands and (item is None or item.brand not in selector.brands):
        return False
    if selector.favorites:
        if customer is None:
            return False
        return any(sku in customer.favorites.get(name, frozenset())
                   for name in selector.favorites)
    return True
