"""Pricing one receipt: promotions spec §3, exactly, as a pure function.

Theory of operation
-------------------
:func:`price_receipt` takes a receipt, the catalog items of its skus, a
:class:`~loyalty.index.PromotionIndex`, the customer (or None) and the store's identity and
time zone, and returns a :class:`~loyalty.values.Calculation`. It reads no clock: ``now``
is ``receipt.opened_at``. The passes are:

1. **Candidates** from the index (a superset), plus the customer's personal offers valid
   now (priority 0, group ``personal``).
2. **Eligibility** (§3.1, §5.8–5.10): window, store, audience, conditions, then the
   control group; held-out promotions are listed under ``control`` and do nothing else.
   The index's :class:`~loyalty.eligibility.Prepared` of each candidate settles the
   window on integers and spares reading the rules of promotions that have none.
3. **Steps** (§3.2): eligible promotions by priority descending, id ascending (sorted on
   the integer positions the index gives); the members of a non-empty group form one step
   at the place of their first member.
4. **Discounts** (§3.3–3.4, §5.2–5.6) step by step on the amounts left by earlier steps;
   within a group every member is computed on the same amounts and each line keeps the
   largest discount (ties: earlier member). Every share is exact and rounded half up,
   capped by the line's flags, ``min_price`` floor and exclusivity.
5. **Redemption** (§3.5, §5.14) spread over lines without ``no_redeem``.
6. **Accrual** (§3.6, §5.7): ``points_percent`` per line on amount after discounts and
   redemption, rounded down; multipliers compound on that base; ``points_fixed`` once.
7. **Listing, messages and effects** (§3.7–3.8, §5.15) in step order.

Receipt-wide rewards touch every line of every receipt, so they are done in bulk: percent
accrual as list arithmetic over the lines' bases, and their listing recorded once per
receipt with the lines they missed (``_Lines.everywhere`` / ``missed``) instead of per line.

All arithmetic is on integers (shares as exact ratios); no float is ever made.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from fractions import Fraction
from itertools import chain, compress
from math import lcm
from operator import attrgetter
from typing import Literal

from loyalty.arithmetic import (
    allocate_in_order,
    ceil_div,
    percent_of_down,
    round_half_up,
)
from loyalty.documents import CatalogItem, Customer, Promotion, Reward, Selector
from loyalty.eligibility import (
    Prepared,
    at_fixed_offset,
    audience_matches,
    held_out,
    in_window,
    instant,
    last_valid_day,
    on_the_clock,
    selects,
)
from loyalty.index import PromotionIndex
from loyalty.messages import CUSTOMER_NOT_FOUND, customer_line, render, spent_coupon_text
from loyalty.values import (
    QUANTITY_SCALE,
    AppliedPromotion,
    Calculation,
    CounterDelta,
    CustomerSummary,
    Effects,
    LineResult,
    Message,
    PointsSummary,
    Receipt,
    format_money,
)

__all__ = ["coupon_matches", "price_receipt"]

_position = attrgetter("position")
_offer_id = attrgetter("id")
_n = attrgetter("n")


@dataclass(slots=True)
class _Line:
    """The working state of one receipt line while it is priced."""

    n: int
    sku: str
    quantity: int
    units: int | None  #: whole units, None for a fractional quantity
    original: int
    item: CatalogItem | None
    floor: int  #: ⌈min_price × quantity⌉: no discount may take the amount below it
    no_discount: bool
    no_accrual: bool
    no_redeem: bool
    amount: int = 0
    taken: bool = False  #: an exclusive promotion discounted this line
    redeemed: int = 0
    percent_points: int = 0
    points: int = 0
    #: the product of the multipliers applied to the percent points, as an exact ratio
    factor_numerator: int = 1
    factor_denominator: int = 1
    #: the listing order (see _Outcome.order) of every promotion that changed this line
    credits: list[int] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return max(0, self.amount - self.floor)

    @property
    def multiplied(self) -> int:
        """The percent points times every multiplier applied, rounded down (§3.6)."""
        return self.percent_points * self.factor_numerator // self.factor_denominator


class _Lines:
    """The receipt's lines in ``n`` order, with lookups by sku, group and brand."""

    __slots__ = ("all", "by_brand", "by_group", "by_kind", "by_n", "by_sku", "everywhere",
                 "floored", "missed")

    def __init__(self, lines: list[_Line]) -> None:
        self.all = lines
        #: the listing orders of receipt-wide promotions that changed lines, kept once here
        #: instead of in each line's ``credits``; ``missed`` maps a line's ``n`` to those of
        #: them that did not change it
        self.everywhere: list[int] = []
        self.missed: dict[int, list[int]] = {}
        self.by_n = {line.n: line for line in lines}
        self.by_sku: dict[str, list[_Line]] = {}
        self.by_group: dict[str, list[_Line]] = {}
        self.by_brand: dict[str, list[_Line]] = {}
        self.by_kind = {"sku": self.by_sku, "group": self.by_group, "brand": self.by_brand}
        self.floored = False  #: some line has a min_price floor
        for line in lines:
            self.by_sku.setdefault(line.sku, []).append(line)
            if line.floor:
                self.floored = True
            if line.item is not None:
                for group in line.item.groups:
                    self.by_group.setdefault(group, []).append(line)
                if line.item.brand:
                    self.by_brand.setdefault(line.item.brand, []).append(line)

    def credit_every_line(self, order: int, unchanged: Iterable[_Line]) -> None:
        """List promotion ``order`` on every line except ``unchanged``."""
        self.everywhere.append(order)
        for line in unchanged:
            self.missed.setdefault(line.n, []).append(order)

    def select(self, on: Selector, customer: Customer | None) -> list[_Line]:
        """The lines the selector picks, in ``n`` order (a list the caller must not change)."""
        single = on.single
        if single is not None:
            kind, value = single
            return self.by_kind[kind].get(value) or []
        # Look up by the most selective key; `others` says whether any other key of the
        # selector still has to be checked on the hits.
        if on.skus:
            keys, table = on.skus, self.by_sku
            others = bool(on.groups or on.brands or on.favorites)
        elif on.groups:
            keys, table = on.groups, self.by_group
            others = bool(on.brands or on.favorites)
        elif on.brands:
            keys, table = on.brands, self.by_brand
            others = bool(on.favorites)
        elif on.favorites:
            return [line for line in self.all if selects(on, line.sku, line.item, customer)]
        else:
            return self.all
        if len(keys) == 1:
            hits = table.get(next(iter(keys)))
            if not hits:
                return []
        else:
            met = [table[key] for key in keys & table.keys()]
            if not met:
                return []
            if len(met) == 1:  # most receipts hold one of a promotion's skus
                hits = met[0]
            elif table is self.by_group:  # a line may be in several of the groups
                hits = sorted({id(line): line for found in met for line in found}.values(),
                              key=_n)
            else:  # a line has one sku and one brand
                hits = sorted(chain.from_iterable(met), key=_n)
        if not others:
            return hits
        return [line for line in hits if selects(on, line.sku, line.item, customer)]


@dataclass(slots=True)
class _Outcome:
    """What one eligible promotion did on this receipt."""

    promotion: Promotion
    reward: Reward  #: the promotion's, read often
    discounts: bool  #: the reward discounts lines
    wide: bool  #: the reward selects every line
    listed: AppliedPromotion
    order: int  #: position in the listing order (step, then member)
    coupon: str | None
    discount: int = 0
    points: int = 0


def coupon_matches(code: str, series: str) -> bool:
    """A code matches series ``S`` when it is ``S-`` plus at least one character (§5.10)."""
    prefix = series.upper() + "-"
    return len(code) > len(prefix) and code.upper().startswith(prefix)


def _make_lines(receipt: Receipt, catalog: Mapping[str, CatalogItem]) -> list[_Line]:
    lines: list[_Line] = []
    for line in sorted(receipt.lines, key=lambda entry: entry.n):
        item = catalog.get(line.sku)
        flags = item.flags if item is not None else frozenset()
        floor = ceil_div(item.min_price * line.quantity, QUANTITY_SCALE) if item else 0
        lines.append(_Line(
            n=line.n, sku=line.sku, quantity=line.quantity, units=line.whole_units,
            original=line.amount, item=item, floor=floor,
            no_discount="no_discount" in flags, no_accrual="no_accrual" in flags,
            no_redeem="no_redeem" in flags, amount=line.amount,
        ))
    return lines


# --------------------------------------------------------------------------- eligibility


@dataclass(frozen=True, slots=True)
class _Context:
    """What eligibility reads about this receipt, computed once."""

    now: datetime  #: at a fixed UTC offset (:func:`~loyalty.eligibility.at_fixed_offset`)
    now_instant: int  #: ``now`` as an :func:`~loyalty.eligibility.instant`
    weekday: int  #: store-local ISO weekday of ``now``
    minute: int  #: store-local minute of the day of ``now``
    store: str
    customer: Customer | None
    total: int
    lines: _Lines
    usable_coupons: Sequence[str]


def _eligible(prepared: Prepared, context: _Context) -> tuple[bool, str | None]:
    """(eligible before the control group, the coupon code that unlocked it)."""
    promotion = prepared.promotion
    # The window first, the cheapest test (on integers): a dates-only promotion needs no other.
    now = context.now_instant
    if not prepared.start <= now < prepared.end:
        return False, None
    if prepared.dates_only:  # most item promotions: nothing else to test
        return True, None
    if not on_the_clock(promotion.active, context.weekday, context.minute):
        return False, None
    store, customer, total, lines = (context.store, context.customer, context.total,
                                     context.lines)
    usable_coupons = context.usable_coupons
    if promotion.stores and store not in promotion.stores:
        return False, None
    if not audience_matches(promotion.audience, customer):
        return False, None
    conditions = promotion.conditions
    if conditions.min_total and total < conditions.min_total:
        return False, None
    for condition in conditions.items:
        quantity = sum(line.quantity for line in lines.select(condition.on, customer))
        needed = condition.min_quantity
        if quantity <= 0 or (needed is not None and quantity < needed):
            return False, None
    if conditions.counter is not None:
        if customer is None:
            return False, None
        before = customer.counters.get(conditions.counter.name, 0)
        if before + 1 < conditions.counter.at_least:
            return False, None
    if conditions.first_purchase and (customer is None or customer.purchases > 0):
        return False, None
    code: str | None = None
    if conditions.coupon:
        code = next((c for c in usable_coupons if coupon_matches(c, conditions.coupon)), None)
        if code is None:
            return False, None
    return True, code


# --------------------------------------------------------------------------- discounts


def _selected(reward: Reward, lines: _Lines, customer: Customer | None,
              *, for_discount: bool) -> list[_Line]:
    chosen = lines.select(reward.on, customer)
    if for_discount:
        return [line for line in chosen if not (line.no_discount or line.taken)]
    return chosen


def _cheapest_units(reward: Reward, lines: Sequence[_Line]) -> dict[int, int]:
    """How many units of each line the unit reward discounts (cheapest first, then lower n)."""
    unit_lines = [line for line in lines if line.units]
    units = sum(line.units or 0 for line in unit_lines)
    if reward.type == "nth_percent_off":
        count = units // reward.every
    else:
        count = units // (reward.buy + reward.get) * reward.get
    taken: dict[int, int] = {}
    if count <= 0:
        return taken
    if len(unit_lines) > 1:  # in n order already: a stable sort keeps lower n first on ties
        # Unit amounts amount / units compared exactly, as integers over a common denominator.
        common = lcm(*[line.units or 1 for line in unit_lines])
        unit_lines.sort(key=lambda line: line.amount * (common // (line.units or 1)))
    for line in unit_lines:
        if count <= 0:
            break
        take = min(count, line.units or 0)
        taken[line.n] = take
        count -= take
    return taken


def _discounts(reward: Reward, lines: Sequence[_Line]) -> list[tuple[_Line, int]]:
    """Each selected line's discount from ``reward`` on the current amounts, capped.

    Pairs in the order of ``lines``; a unit reward leaves out the lines it does not reach.
    """
    kind = reward.type
    if kind == "percent_off":
        numerator, denominator = reward.rate  # percent_of_half_up, unrolled
        return [(line, min(line.capacity, round_half_up(line.amount * numerator, denominator)))
                for line in lines]
    if kind == "amount_off":
        return list(zip(lines, _amount_off_shares(
            reward.amount, lines, floored=any(line.floor for line in lines)), strict=True))
    if kind == "fixed_price":
        price = reward.price
        return [(line, min(line.amount - line.floor, max(0, line.amount - round_half_up(
            price * line.quantity, QUANTITY_SCALE)))) for line in lines]
    if kind in ("nth_percent_off", "buy_x_get_y"):
        if kind == "nth_percent_off":
            numerator, denominator = reward.rate
        else:  # the y units are free
            numerator = denominator = 1
        by_n = {line.n: line for line in lines}
        result = []
        for n, take in _cheapest_units(reward, lines).items():
            line = by_n[n]
            share = round_half_up(line.amount * take * numerator,
                                  (line.units or 1) * denominator)
            result.append((line, min(line.capacity, share)))
        return result
    return []


def _amount_off_shares(amount: int, lines: Sequence[_Line], *, floored: bool) -> list[int]:
    """``amount`` spread over ``lines`` (§3.4), each share capped by its line's floor;
    ``floored``: some line has one."""
    amounts = [line.amount for line in lines]
    shares = allocate_in_order(min(amount, sum(amounts)), amounts)
    # A share never exceeds its line's amount (the total spread is at most their sum), so
    # only a min_price floor can cap it; few lines have one.
    if floored:
        for position in [position for position, line in enumerate(lines) if line.floor]:
            line = lines[position]
            shares[position] = max(0, min(shares[position], line.amount - line.floor))
    return shares


def _percent_off_alone(outcome: _Outcome, chosen: Sequence[_Line]) -> list[_Line]:
    """:func:`_discount_step` of a lone ``percent_off``, the most frequent step, inlined;
    the lines it changed."""
    numerator, denominator = outcome.reward.rate
    # round_half_up(amount × numerator, denominator), unrolled
    twice_numerator, twice_denominator = 2 * numerator, 2 * denominator
    exclusive, given = outcome.promotion.exclusive, 0
    changed = []
    for line in chosen:
        if line.no_discount or line.taken:
            continue
        amount = line.amount
        capacity = amount - line.floor
        if capacity <= 0:
            continue
        value = min((amount * twice_numerator + denominator) // twice_denominator, capacity)
        if value > 0:
            line.amount = amount - value
            given += value
            changed.append(line)
            if exclusive:
                line.taken = True
    outcome.discount += given
    return changed


def _amount_off_alone(outcome: _Outcome, chosen: Sequence[_Line], floored: bool) -> list[_Line]:
    """:func:`_discount_step` of a lone ``amount_off`` (mostly receipt-wide, so on every
    line) in list arithmetic; the lines it changed. ``floored``: some line has a floor."""
    open_lines = [line for line in chosen if not (line.no_discount or line.taken)]
    values = _amount_off_shares(outcome.reward.amount, open_lines, floored=floored)
    changed = list(compress(open_lines, values))
    for line, value in zip(changed, filter(None, values), strict=True):
        line.amount -= value
    if outcome.promotion.exclusive:
        for line in changed:
            line.taken = True
    outcome.discount += sum(values)
    return changed


def _discount_step(step: Sequence[_Outcome], lines: _Lines,
                   customer: Customer | None) -> None:
    if len(step) == 1:  # the common case: no competition, apply as computed
        outcome = step[0]
        promotion = outcome.promotion
        reward = promotion.reward
        chosen = lines.select(reward.on, customer)
        if not chosen:
            return
        if reward.type == "percent_off":
            changed = _percent_off_alone(outcome, chosen)
        elif reward.type == "amount_off":
            changed = _amount_off_alone(outcome, chosen, lines.floored)
        else:
            exclusive, given = promotion.exclusive, 0
            changed = []
            for line, value in _discounts(reward, [line for line in chosen
                                                   if not (line.no_discount or line.taken)]):
                if value > 0:
                    line.amount -= value
                    given += value
                    changed.append(line)
                    if exclusive:
                        line.taken = True
            outcome.discount += given
        if not outcome.wide:
            for line in changed:
                line.credits.append(outcome.order)
        elif len(changed) == len(lines.all):
            lines.credit_every_line(outcome.order, ())
        elif changed:
            numbers = {line.n for line in changed}
            lines.credit_every_line(outcome.order,
                                    [line for line in lines.all if line.n not in numbers])
        return
    # A group: every member is computed on the same amounts; each line keeps the largest
    # discount, ties to the earlier member.
    best: dict[int, tuple[int, _Outcome, _Line]] = {}
    for outcome in step:
        reward = outcome.reward
        for line, value in _discounts(reward, _selected(reward, lines, customer,
                                                        for_discount=True)):
            if value > 0 and (line.n not in best or value > best[line.n][0]):
                best[line.n] = (value, outcome, line)
    for n in sorted(best):
        value, outcome, line = best[n]
        line.amount -= value
        outcome.discount += value
        line.credits.append(outcome.order)
        if outcome.promotion.exclusive:
            line.taken = True


# --------------------------------------------------------------------------- accrual


def _accrual_base(line: _Line) -> int:
    return 0 if line.no_accrual else line.amount - line.redeemed


def _percent_points_step(members: Sequence[_Outcome], lines: _Lines,
                         customer: Customer | None, wide: _WidePoints) -> None:
    if len(members) == 1:  # the common case: no competition
        outcome = members[0]
        reward = outcome.reward
        numerator, denominator = reward.rate
        if outcome.wide:
            per_line, accrued, everywhere = wide.add(numerator, denominator)
            if accrued > 0:
                outcome.points += accrued
                lines.credit_every_line(outcome.order, [] if everywhere else [
                    line for line, value in zip(lines.all, per_line, strict=True) if value <= 0])
            return
        credit, accrued = outcome.order, 0
        for line in _selected(reward, lines, customer, for_discount=False):
            if line.no_accrual:
                continue
            points = (line.amount - line.redeemed) * numerator // denominator
            if points > 0:
                accrued += points
                line.percent_points += points
                line.credits.append(credit)
        outcome.points += accrued
        return
    # A group: each line takes the largest accrual offered, ties to the earlier member.
    best: dict[int, tuple[int, _Outcome, _Line]] = {}
    for outcome in members:
        reward = outcome.reward
        for line in _selected(reward, lines, customer, for_discount=False):
            value = percent_of_down(_accrual_base(line), reward.percent)
            if value > 0 and (line.n not in best or value > best[line.n][0]):
                best[line.n] = (value, outcome, line)
    for n in sorted(best):
        value, outcome, line = best[n]
        outcome.points += value
        line.percent_points += value
        line.credits.append(outcome.order)


class _WidePoints:
    """Percent points of receipt-wide promotions, summed per line position in bulk.

    Receipt-wide accrual is the one reward that touches every line of every receipt; done as
    list arithmetic it costs a few C loops instead of a Python loop per line and promotion.
    """

    __slots__ = ("accrued", "bases", "by_rate")

    def __init__(self, lines: Sequence[_Line]) -> None:
        self.bases = [_accrual_base(line) for line in lines]
        self.accrued: list[list[int]] = []
        #: (numerator, denominator) → what add() returned for it: campaigns stacked on a
        #: receipt often share a rate ("+2%" for gold, "+2%" this weekend)
        self.by_rate: dict[tuple[int, int], tuple[list[int], int, bool]] = {}

    def add(self, numerator: int, denominator: int) -> tuple[list[int], int, bool]:
        """Accrue ``numerator / denominator`` of every line's base, rounded down per line:
        (the points of each line, their sum, whether every line got some)."""
        rate = numerator, denominator
        known = self.by_rate.get(rate)
        if known is None:
            points = [base * numerator // denominator for base in self.bases]
            known = self.by_rate[rate] = points, sum(points), min(points, default=0) > 0
        self.accrued.append(known[0])
        return known

    def sums(self) -> list[int]:
        """Each line's points from all receipt-wide promotions."""
        if not self.accrued:
            return [0] * len(self.bases)
        return list(map(sum, zip(*self.accrued, strict=True)))


def _mixed_step(percents: Sequence[_Outcome], multipliers: Sequence[_Outcome], lines: _Lines,
                customer: Customer | None) -> dict[int, _Outcome]:
    """A group with percent and multiplier members: each line takes the member that offers
    it the most points (ties to the earlier member), whatever its kind (§5.6). A percent
    member offers its own points; a multiplier what it adds to the line's base accrual so
    far (the percent promotions outside the group and mixed groups before it): base ×
    (factor − 1). The percent winners accrue now; returns the multiplier winners (line n →
    member) for the multiplier stage."""
    best: dict[int, tuple[Fraction, int, _Outcome]] = {}

    def offer(line: _Line, points: Fraction, outcome: _Outcome) -> None:
        known = best.get(line.n)
        if known is None or points > known[0] or (points == known[0]
                                                   and outcome.order < known[1]):
            best[line.n] = (points, outcome.order, outcome)

    for outcome in percents:
        for line in _selected(outcome.reward, lines, customer, for_discount=False):
            points = percent_of_down(_accrual_base(line), outcome.reward.percent)
            if points > 0:
                offer(line, Fraction(points), outcome)
    for outcome in multipliers:
        for line in _selected(outcome.reward, lines, customer, for_discount=False):
            if line.percent_points > 0:
                offer(line, line.percent_points * (outcome.reward.factor - 1), outcome)
    won: dict[int, _Outcome] = {}
    for n in sorted(best):
        offered, _, outcome = best[n]
        if outcome.reward.type == "points_multiplier":
            won[n] = outcome
            continue
        line = lines.by_n[n]
        outcome.points += int(offered)
        line.percent_points += int(offered)
        line.credits.append(outcome.order)
    return won


def _multiplier_step(members: Sequence[_Outcome], lines: _Lines, customer: Customer | None,
                     won: Mapping[int, _Outcome] | None = None) -> None:
    # Each line with percent points takes the largest factor offered (ties to the earlier
    # member). A factor of 1 competes too: it changes nothing, but keeps a smaller factor of
    # the same group off the line (§3.3). ``won``: of a mixed group, the member that won
    # each line there (see _mixed_step); no other member of the step touches that line.
    best: dict[int, tuple[Fraction, _Outcome, _Line]] = {}
    for outcome in members:
        reward = outcome.reward
        factor = reward.factor
        for line in _selected(reward, lines, customer, for_discount=False):
            if won is not None and won.get(line.n) is not outcome:
                continue
            if line.percent_points > 0 and (line.n not in best or factor > best[line.n][0]):
                best[line.n] = (factor, outcome, line)
    for n in sorted(best):
        factor, outcome, line = best[n]
        before = line.multiplied
        line.factor_numerator *= factor.numerator
        line.factor_denominator *= factor.denominator
        after = line.multiplied
        if after != before:
            outcome.points += after - before
            line.credits.append(outcome.order)


def _fixed_points_step(members: Sequence[_Outcome], lines: _Lines,
                       customer: Customer | None) -> None:
    best: _Outcome | None = None
    for outcome in members:
        reward = outcome.reward
        can_accrue = any(not line.no_accrual
                         for line in _selected(reward, lines, customer, for_discount=False))
        if can_accrue and (best is None or reward.points > best.reward.points):
            best = outcome
    if best is not None:
        best.points += best.reward.points


# --------------------------------------------------------------------------- the engine


def _steps(candidates: Sequence[Prepared],
           context: _Context) -> tuple[list[list[_Outcome]], list[Promotion]]:
    """The eligible candidates as steps (§3.2), and the promotions held out as control.

    ``candidates`` are in step order; the members of a group form one step at the place of
    their first member.
    """
    steps: list[list[_Outcome]] = []
    by_group: dict[str, list[_Outcome]] = {}
    control: list[Promotion] = []
    customer, now = context.customer, context.now_instant
    for prepared in candidates:
        promotion = prepared.promotion
        if customer is None and prepared.accrues and not promotion.group:
            # Accrues nothing without a customer: no effect, no listing (§5.7). A group
            # member still places its group's step (§3.3).
            continue
        code = None
        if prepared.dates_only:  # most candidates
            if not prepared.start <= now < prepared.end:
                continue
        else:
            ok, code = _eligible(prepared, context)
            if not ok:
                continue
            if prepared.controlled and held_out(promotion.id, promotion.audience.control,
                                                customer):
                control.append(promotion)
                continue
        # `order` is the listing order (step, then member): the step's index until a group
        # gathers members, then renumbered below.
        outcome = _Outcome(promotion, promotion.reward, prepared.discounts, prepared.wide,
                           prepared.listed, len(steps), code)
        group = promotion.group
        if not group:
            steps.append([outcome])
        elif group in by_group:
            by_group[group].append(outcome)
        else:
            step = by_group[group] = [outcome]
            steps.append(step)
    if by_group:
        for order, outcome in enumerate(chain.from_iterable(steps)):
            outcome.order = order
    return steps, control


@dataclass(slots=True)
class _Stages:
    """The points steps in step order, by the accrual stage they belong to (§3.6)."""

    percent: list[Sequence[_Outcome]] = field(default_factory=list)
    multiplier: list[Sequence[_Outcome]] = field(default_factory=list)
    fixed: list[Sequence[_Outcome]] = field(default_factory=list)
    #: groups with percent and multiplier members, which compete per line for points (§5.6):
    #: (percent members, multiplier members); the latter are in ``multiplier`` too
    mixed: list[tuple[Sequence[_Outcome], Sequence[_Outcome]]] = field(default_factory=list)

    def add(self, step: Sequence[_Outcome]) -> None:
        """File a step's points members (most steps are one promotion)."""
        if len(step) == 1:
            kind = step[0].reward.type
            if kind == "points_percent":
                self.percent.append(step)
            elif kind == "points_multiplier":
                self.multiplier.append(step)
            elif kind == "points_fixed":
                self.fixed.append(step)
            return
        percents = [outcome for outcome in step if outcome.reward.type == "points_percent"]
        multipliers = [outcome for outcome in step if outcome.reward.type == "points_multiplier"]
        fixed = [outcome for outcome in step if outcome.reward.type == "points_fixed"]
        if percents and multipliers:
            self.mixed.append((percents, multipliers))
        elif percents:
            self.percent.append(percents)
        if multipliers:
            self.multiplier.append(multipliers)
        if fixed:
            self.fixed.append(fixed)


def _discount(steps: Sequence[Sequence[_Outcome]], lines: _Lines,
              customer: Customer | None) -> _Stages:
    """Apply the discount steps in order (§3.3); the points steps, filed for accrual."""
    stages = _Stages()
    for step in steps:
        if len(step) == 1:
            if step[0].discounts:
                _discount_step(step, lines, customer)
            else:
                stages.add(step)
            continue
        members = [outcome for outcome in step if outcome.discounts]
        if members:
            _discount_step(members, lines, customer)
        if len(members) < len(step):
            stages.add(step)
    return stages


def _redeem(lines: _Lines, customer: Customer, requested: int,
            redeem_limit: int | None) -> tuple[int, int]:
    """Spread the redemption over lines without ``no_redeem`` (§3.5); (redeem, redeem_max)."""
    payable = [line for line in lines.all if not line.no_redeem]
    cap = sum(line.amount for line in payable) * 99 // 100
    redeem_max = max(0, min(customer.balance, cap))
    if redeem_limit is not None:
        redeem_max = max(0, min(redeem_max, redeem_limit))
    redeem = min(requested, redeem_max)
    if redeem:
        shares = allocate_in_order(redeem, [line.amount for line in payable])
        for line, share in zip(payable, shares, strict=True):
            line.redeemed = share
    return redeem, redeem_max


def _accrue(stages: _Stages, lines: _Lines, customer: Customer) -> None:
    """Accrual (§3.6, §5.7): percent steps make the base, multipliers compound, fixed last."""
    if stages.percent:
        wide = _WidePoints(lines.all)
        for percent in stages.percent:
            _percent_points_step(percent, lines, customer, wide)
        for line, points in zip(lines.all, wide.sums(), strict=True):
            line.percent_points += points
    # id of a mixed group's multiplier members → the lines each won (see _mixed_step)
    won = {id(multipliers): _mixed_step(percents, multipliers, lines, customer)
           for percents, multipliers in stages.mixed}
    for multipliers in stages.multiplier:
        _multiplier_step(multipliers, lines, customer, won.get(id(multipliers)))
    for fixed in stages.fixed:
        _fixed_points_step(fixed, lines, customer)
    for line in lines.all:
        line.points = (line.multiplied if line.factor_denominator != line.factor_numerator
                       else line.percent_points)


def _messages(receipt: Receipt, customer: Customer | None, applied: Sequence[_Outcome],
              spent_here: Sequence[str], tz: tzinfo, *, balance_known: bool) -> list[Message]:
    """The customer line, spent-coupon notes, then applied promotions' messages (§5.15).
    Offline the balance is not known (the synced one misses what central moved since):
    the customer line leaves it out and ``{balance}`` is empty."""
    balance = customer.balance if customer is not None and balance_known else None
    messages: list[Message] = []
    if customer is not None:
        messages.append(customer_line(customer, balance))
    elif receipt.customer is not None:
        messages.append(Message("cashier", CUSTOMER_NOT_FOUND))
    messages.extend(Message("cashier", spent_coupon_text(code)) for code in spent_here)
    for outcome in applied:
        promotion = outcome.promotion
        if not promotion.messages:
            continue
        values = {
            "name": customer.name if customer is not None else "",
            "balance": format_money(balance) if balance is not None else "",
            "accrue": format_money(outcome.points),
            "discount": format_money(outcome.discount),
            "valid_to": last_valid_day(promotion.active, tz),
        }
        messages.extend(Message(m.target, render(m.text, values), m.barcode)
                        for m in promotion.messages)
    return messages


def _effects(receipt: Receipt, customer: Customer | None,
             outcomes: Sequence[_Outcome], applied: Sequence[_Outcome]) -> Effects:
    """Counters of every eligible promotion and the coupon codes to spend (§3.8, §5.10)."""
    counters: dict[str, int] = {}
    if customer is not None:
        for outcome in outcomes:
            for delta in outcome.promotion.counters:
                counters[delta.name] = counters.get(delta.name, 0) + delta.add
    # A `none` reward "applies" for its coupon: the code is spent when it was eligible.
    coupon_users = [*applied, *(o for o in outcomes if o.reward.type == "none")]
    spent: list[str] = []
    for outcome in coupon_users:
        if outcome.coupon is not None and outcome.coupon not in spent:
            spent.append(outcome.coupon)
    spent.sort(key=receipt.coupons.index)
    return Effects(
        counters=tuple(CounterDelta(name, add) for name, add in counters.items()),
        coupons=tuple(spent),
    )


def _line_results(receipt: Receipt, lines: _Lines,
                  outcomes: Sequence[_Outcome]) -> tuple[LineResult, ...]:
    ids = [outcome.promotion.id for outcome in outcomes]  # by listing order
    missed = lines.missed
    # A promotion is listed on a line once: a receipt-wide one in `everywhere` (less the
    # lines it missed), any other in the credits of each line it changed, once.
    everywhere = sorted(lines.everywhere)
    everywhere_ids = tuple([ids[order] for order in everywhere])
    # Lines changed by the same promotions share their listing (most lines of a receipt
    # with receipt-wide rewards are changed by those alone).
    listings: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[str, ...]] = {}
    results = []
    for request_line in receipt.lines:
        line = lines.by_n[request_line.n]
        credited = line.credits
        skipped = missed.get(line.n, ())
        if not skipped and len(credited) <= 1:
            if not credited:
                promotion_ids = everywhere_ids
            else:  # one more promotion, in its place in step order
                order = credited[0]
                place = bisect_left(everywhere, order)
                promotion_ids = (*everywhere_ids[:place], ids[order], *everywhere_ids[place:])
        else:
            key = (tuple(credited), tuple(skipped))
            known = listings.get(key)
            if known is None:
                orders = credited + [order for order in everywhere if order not in skipped]
                known = listings[key] = tuple([ids[order] for order in sorted(orders)])
            promotion_ids = known
        results.append(LineResult(
            n=line.n, discount=line.original - line.amount, amount=line.amount,
            redeemed=line.redeemed, points=line.points, promotions=promotion_ids,
        ))
    return tuple(results)


def price_receipt(
    receipt: Receipt,
    *,
    catalog: Mapping[str, CatalogItem],
    promotions: PromotionIndex,
    customer: Customer | None,
    store: str,
    tz: tzinfo,
    spent_coupons: Set[str] = frozenset(),
    redeem_limit: int | None = None,
    mode: Literal["online", "offline"] = "online",
) -> Calculation:
    """Price ``receipt`` as promotions spec §3 says (see the module docstring).

    ``customer`` None while ``receipt.customer`` is set means "not found": the receipt is
    priced without one and a cashier message says so. ``spent_coupons`` are codes already
    used (they unlock nothing and get a cashier message); ``redeem_limit`` further caps
    redeemable points (the edge's offline policy). ``points.balance`` is the balance before
    this receipt. Raises ValueError when ``receipt.opened_at`` is None.
    """
    now = receipt.opened_at
    if now is None:
        raise ValueError("receipt.opened_at must be set before pricing")
    now = at_fixed_offset(now)
    lines = _Lines(_make_lines(receipt, catalog))
    total = receipt.total

    spent_upper = {code.upper() for code in spent_coupons}
    usable_coupons = [code for code in receipt.coupons if code.upper() not in spent_upper]
    spent_here = [code for code in receipt.coupons if code.upper() in spent_upper]
    # Every series a code can belong to: "BLACK-FRIDAY-7F3K" is of "BLACK" or "BLACK-FRIDAY".
    series = {code[:at] for code in usable_coupons
              for at in range(1, len(code) - 1) if code[at] == "-"}

    # Offers are all of priority 0, so often placed alike among the index's promotions:
    # taken in id order, the stable sort below keeps §3.2's id order among them.
    offers = [promotions.place(offer.as_promotion())
              for offer in sorted(customer.personal_offers, key=_offer_id)
              if offer.accepted and in_window(offer.valid, now, tz)
              ] if customer is not None and customer.personal_offers else []
    candidates = promotions.lookup(
        now=now, skus=lines.by_sku.keys(),
        items=[line.item for line in lines.all if line.item is not None],
        customer=customer, coupon_series=series, offers=offers,
    )
    candidates.sort(key=_position)

    local = now.astimezone(tz)
    context = _Context(now, instant(now),
                       local.isoweekday(), local.hour * 60 + local.minute, store,
                       customer, total, lines, usable_coupons)
    steps, control = _steps(candidates, context)
    stages = _discount(steps, lines, customer)
    redeem = redeem_max = 0
    if customer is not None:
        redeem, redeem_max = _redeem(lines, customer, receipt.points_to_redeem, redeem_limit)
        _accrue(stages, lines, customer)

    outcomes = [outcome for step in steps for outcome in step]
    applied = [o for o in outcomes if o.discount > 0 or o.points != 0]  # a factor < 1: < 0
    results = _line_results(receipt, lines, outcomes)
    discount = sum(result.discount for result in results)
    fixed = sum(o.points for o in outcomes if o.reward.type == "points_fixed")
    balance = customer.balance if customer is not None else None
    return Calculation(
        receipt_id=receipt.id,
        customer=(CustomerSummary(customer.id, customer.name, customer.tier, balance, redeem_max)
                  if customer is not None else None),
        lines=results,
        total=total,
        discount=discount,
        due=total - discount,
        points=PointsSummary(accrue=sum(result.points for result in results) + fixed,
                             redeem=redeem, redeem_max=redeem_max, balance=balance),
        promotions=tuple(o.listed for o in applied),
        control=tuple(p.id for p in sorted(control, key=lambda p: (-p.priority, p.id))),
        messages=tuple(_messages(receipt, customer, applied, spent_here, tz,
                                 balance_known=mode == "online")),
        effects=_effects(receipt, customer, outcomes, applied),
        mode=mode,
    )
