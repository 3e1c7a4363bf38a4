"""Pricing speed of the loyalty engine: p50/p99 per receipt by receipt size and promotion count.

Usage::

    .venv/bin/python bench/engine.py            # full run: 100 / 10 000 / 100 000 promotions
    .venv/bin/python bench/engine.py --smoke    # seconds: 100 / 10 000 promotions, few receipts

The data set (fixed seed, so runs are comparable):

* catalog: 200 000 skus in 2 000 leaf groups (100 skus each) under 200 parent groups, 500
  brands; 2% flagged ``no_discount``, 1% carry a ``min_price``;
* promotions, the mix of a chain that keeps its history and plans ahead: 60% aimed at 1–5
  skus, 30% at a group (90% a leaf group, 10% a parent, a quarter of them also a brand),
  10% receipt-wide (points for tiers, min_total bonuses, amount_off) with audiences and
  weekday/hour windows. Reward types are mixed (percent_off, fixed_price, nth_percent_off,
  buy_x_get_y, amount_off, points_*). Promotions start uniformly over 104 weeks around
  today (a year of history kept for reports, a year of plans): item promotions run 1–4
  weeks, receipt-wide campaigns 1–3 days; 0.1% are standing programmes without an end. A
  tenth are in promotion groups, 5% are exclusive;
* the audiences of receipt-wide campaigns, "chain" mix (the headline figures): 10% for
  every customer (a chain-wide "spend 5 000, get 200 points"), 20% for 1–2 of the 4 tiers,
  70% CRM campaigns for 1–2 of 200 segments, with a control group of 0, 5 or 10%. So at
  100 000 defined, about 2 300 promotions are live at any moment, 46 of them receipt-wide,
  and a 50-line receipt meets some 36 candidates, 33 eligible, 23 applying (at 100
  defined: almost never one). The "stacked" mix (a stress row) is the first form of this
  bench: 20% for everyone, 40% for 2 of the first 40 segments, 40% for 2 of the 4 tiers —
  every card holder meets about a third of the live receipt-wide campaigns at once
  (a 50-line receipt: 49 candidates, 32 applying);
* receipts: random skus, 1–3 units (10% weighed), 70% with an identified customer (tier,
  2–4 of 200 segments, a balance, 0–3 personal offers), priced at today's 10:00–21:00.

Times are per receipt, wall clock and the pricing thread's CPU time (the CPU figures are
what the engine costs; wall p99 on a shared machine mostly measures the scheduler). Each
receipt is priced ``--passes`` times (default 3) and keeps its best time, and the promotion
counts of one receipt size take turns on every chunk of 20 receipts (each turn an untimed
pass over the chunk, then the timed one): on this shared box the speed of the same code
drifts by ±40% over minutes, which made ratios of cases measured minutes apart mean little.
The ratios printed are of the 100 000-promotion case over the 100 case, for the chain mix and
then for the stacked one; between them, the chain mix's extra time per promotion applied (at
100 almost none applies, so the big case's extra time is the work of those that do); a last
table keeps the same 100 live promotions and adds 99 900 that are not running today, to show
what merely *defined* promotions cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loyalty import (
    ActiveWindow,
    Audience,
    CatalogItem,
    Conditions,
    Customer,
    FrozenMap,
    PersonalOffer,
    Promotion,
    PromotionIndex,
    Receipt,
    ReceiptLine,
    Reward,
    Selector,
    price_receipt,
)
from loyalty.values import QUANTITY_SCALE

TZ = timezone(timedelta(hours=3))
TODAY = datetime(2026, 11, 23, tzinfo=TZ)
SKU_COUNT = 200_000
LEAF_GROUPS = 2_000
PARENT_GROUPS = 200
BRANDS = 500
SEGMENTS = [f"seg{number}" for number in range(200)]
#: the stacked mix aims at the first 40 segments only (its first form)
STACKED_SEGMENTS = 40
TIERS = ["bronze", "silver", "gold", "platinum"]


@dataclass(frozen=True)
class World:
    catalog: dict[str, CatalogItem]
    skus: list[str]
    leaf_of: dict[str, str]


def build_catalog(rnd: random.Random) -> World:
    group_sets = [frozenset({f"leaf{g}", f"parent{g % PARENT_GROUPS}", "all"})
                  for g in range(LEAF_GROUPS)]
    no_discount = frozenset({"no_discount"})
    empty: frozenset[str] = frozenset()
    catalog: dict[str, CatalogItem] = {}
    skus: list[str] = []
    leaf_of: dict[str, str] = {}
    for number in range(SKU_COUNT):
        sku = f"46{number:08d}"
        leaf = number % LEAF_GROUPS
        roll = rnd.random()
        catalog[sku] = CatalogItem(
            sku=sku, name=sku, groups=group_sets[leaf], brand=f"b{number % BRANDS}",
            flags=no_discount if roll < 0.02 else empty,
            min_price=rnd.randint(50, 500) * 100 if 0.02 <= roll < 0.03 else 0,
        )
        skus.append(sku)
        leaf_of[sku] = f"leaf{leaf}"
    return World(catalog, skus, leaf_of)


def _window(rnd: random.Random, *, receipt_wide: bool) -> ActiveWindow:
    if rnd.random() < 0.001:
        return ActiveWindow()  # a standing programme (tier accrual, a permanent price)
    start = TODAY + timedelta(weeks=rnd.uniform(-52, 52))
    weekdays: frozenset[int] = frozenset()
    hours = None
    if receipt_wide:
        # Receipt-wide campaigns are short: a weekend of double points, a spend-and-get day.
        end = start + timedelta(days=rnd.randint(1, 3))
        if rnd.random() < 0.3:
            weekdays = frozenset(rnd.sample(range(1, 8), rnd.randint(2, 7)))
        if rnd.random() < 0.3:
            hours = (rnd.choice([0, 8 * 60, 10 * 60]), rnd.choice([14 * 60, 20 * 60, 24 * 60]))
    else:
        end = start + timedelta(weeks=rnd.randint(1, 4))
    return ActiveWindow(start.astimezone(UTC), end.astimezone(UTC), weekdays, hours)


def _item_reward(rnd: random.Random, on: Selector) -> Reward:
    kind = rnd.random()
    if kind < 0.45:
        return Reward("percent_off", on, percent=Fraction(rnd.choice([5, 10, 15, 20, 30])))
    if kind < 0.6:
        return Reward("fixed_price", on, price=rnd.randint(10, 500) * 100)
    if kind < 0.7:
        return Reward("nth_percent_off", on, every=3, percent=Fraction(50))
    if kind < 0.8:
        return Reward("buy_x_get_y", on, buy=2, get=1)
    if kind < 0.9:
        return Reward("points_percent", on, percent=Fraction(rnd.choice([2, 5, 10])))
    return Reward("points_multiplier", on, factor=Fraction(2))


def _receipt_wide_audience(rnd: random.Random, mix: str) -> Audience:
    """Who a receipt-wide campaign is for (see the module docstring for the two mixes)."""
    roll = rnd.random()
    if mix == "stacked":
        if roll < 0.2:
            return Audience()
        if roll < 0.6:
            return Audience(segments=frozenset(rnd.sample(SEGMENTS[:STACKED_SEGMENTS], 2)),
                            control=Fraction(rnd.choice([0, 0, 5, 10])))
        return Audience(statuses=FrozenMap({"tier": frozenset(rnd.sample(TIERS, 2))}))
    if roll < 0.1:  # a chain-wide event: "spend 5 000, get 200 points" for everyone
        return Audience()
    if roll < 0.3:  # a tier campaign: "gold and platinum: double points this weekend"
        return Audience(statuses=FrozenMap(
            {"tier": frozenset(rnd.sample(TIERS, rnd.randint(1, 2)))}))
    # a CRM campaign aimed at segments, with a held-out control group
    return Audience(segments=frozenset(rnd.sample(SEGMENTS, rnd.randint(1, 2))),
                    control=Fraction(rnd.choice([0, 5, 10])))


def build_promotions(rnd: random.Random, world: World, count: int,
                     mix: str = "chain") -> list[Promotion]:
    """``count`` promotions of the stated mix; ``mix`` ("chain" or "stacked") only changes
    the audiences of receipt-wide promotions, drawn from their own random stream so that
    both mixes have the same promotions otherwise."""
    audiences = random.Random(count + 1)
    result: list[Promotion] = []
    for number in range(count):
        roll = rnd.random()
        audience = Audience()
        conditions = Conditions()
        if roll < 0.6:
            on = Selector(skus=frozenset(rnd.sample(world.skus, rnd.randint(1, 5))))
            reward = _item_reward(rnd, on)
            window = _window(rnd, receipt_wide=False)
        elif roll < 0.9:
            group = (f"leaf{rnd.randrange(LEAF_GROUPS)}" if rnd.random() < 0.9
                     else f"parent{rnd.randrange(PARENT_GROUPS)}")
            brands = frozenset({f"b{rnd.randrange(BRANDS)}"}) if rnd.random() < 0.25 \
                else frozenset()
            on = Selector(groups=frozenset({group}), brands=brands)
            reward = _item_reward(rnd, on)
            window = _window(rnd, receipt_wide=False)
        else:
            window = _window(rnd, receipt_wide=True)
            audience = _receipt_wide_audience(audiences, mix)
            kind = rnd.random()
            if kind < 0.5:
                reward = Reward("points_percent", Selector(), percent=Fraction(rnd.randint(1, 5)))
            elif kind < 0.8:
                reward = Reward("points_fixed", Selector(), points=rnd.randint(1, 50) * 1000)
                conditions = Conditions(min_total=rnd.randint(10, 100) * 10000)
            else:
                reward = Reward("amount_off", Selector(), amount=rnd.randint(1, 20) * 1000)
                conditions = Conditions(min_total=rnd.randint(10, 100) * 10000)
        result.append(Promotion(
            id=f"promo-{number:06d}", name=f"Акция {number}", reward=reward, active=window,
            priority=rnd.randint(0, 200), group=f"grp{rnd.randrange(50)}"
            if rnd.random() < 0.1 else "", exclusive=rnd.random() < 0.05,
            audience=audience, conditions=conditions,
        ))
    return result


def build_customer(rnd: random.Random, world: World, number: int) -> Customer:
    offers = tuple(
        PersonalOffer(id=f"po-{number}-{k}", reward=Reward(
            "percent_off", Selector(skus=frozenset(rnd.sample(world.skus, 2))),
            percent=Fraction(20)), valid=ActiveWindow(TODAY - timedelta(days=3),
                                                      TODAY + timedelta(days=10)))
        for k in range(rnd.randint(0, 3)))
    return Customer(
        id=f"C{number}", name="Покупатель", statuses=FrozenMap({"tier": rnd.choice(TIERS)}),
        segments=frozenset(rnd.sample(SEGMENTS, rnd.randint(2, 4))),
        balance=rnd.randint(0, 500_000), personal_offers=offers,
        purchases=rnd.randint(0, 50),
    )


def build_receipt(rnd: random.Random, world: World, size: int, number: int,
                  with_card: bool) -> Receipt:
    lines = []
    for n in range(1, size + 1):
        sku = rnd.choice(world.skus)
        quantity = rnd.randint(1, 2500) if rnd.random() < 0.1 else rnd.randint(1, 3) * 1000
        price = rnd.randint(30, 3000) * 10
        amount = (price * quantity * 2 + QUANTITY_SCALE) // (2 * QUANTITY_SCALE)
        lines.append(ReceiptLine(n=n, sku=sku, quantity=quantity, price=price, amount=amount))
    opened = TODAY + timedelta(hours=rnd.randint(10, 20), minutes=rnd.randint(0, 59))
    return Receipt(id=f"R{number}", lines=tuple(lines), opened_at=opened,
                   points_to_redeem=rnd.choice([0, 0, 10_000]) if with_card else 0)


def live_now(promotions: list[Promotion]) -> list[Promotion]:
    """The promotions as if all were running today (same targets, windows moved to today)."""
    window = ActiveWindow(TODAY - timedelta(days=7), TODAY + timedelta(days=7))
    return [dataclasses.replace(p, active=window) for p in promotions]


def archived(promotions: list[Promotion]) -> list[Promotion]:
    """The promotions with every window moved off today (history and plans only)."""
    result = []
    for promotion in promotions:
        start, end = promotion.active.start, promotion.active.end
        window = promotion.active
        if start is None or end is None or (start <= TODAY + timedelta(days=1)
                                            and end >= TODAY - timedelta(days=1)):
            window = ActiveWindow(TODAY - timedelta(weeks=60), TODAY - timedelta(weeks=58))
        result.append(dataclasses.replace(promotion, id=f"old-{promotion.id}", active=window))
    return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _settle() -> None:
    # The world is built once and lives forever (as in central): keep the collector from
    # rescanning 200 000 catalog items in the middle of a timed receipt.
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Figures:
    """Per-receipt times in ms: wall clock and this thread's CPU time."""

    wall50: float
    wall99: float
    cpu50: float
    cpu99: float
    applied: float  #: applied promotions per receipt


#: receipts priced against every index in turn before moving on (see measure())
CHUNK = 20


def measure(world: World, customers: list[Customer], indexes: list[PromotionIndex], size: int,
            receipts: int, passes: int) -> list[Figures]:
    """Price ``receipts`` random receipts of ``size`` lines against each index and report
    their times, each receipt's best of ``passes``.

    The indexes take turns on every chunk of :data:`CHUNK` receipts (each turn an untimed
    pass over the chunk, then the timed one), the first turn rotating from chunk to chunk:
    so every index is measured within the same few milliseconds, and the minutes-long
    swings of a shared machine's speed fall on all of them alike.
    """
    case_rnd = random.Random(size)
    batch = []
    for number in range(receipts):
        with_card = case_rnd.random() < 0.7
        receipt = build_receipt(case_rnd, world, size, number, with_card)
        batch.append((receipt, case_rnd.choice(customers) if with_card else None,
                      {line.sku: world.catalog[line.sku] for line in receipt.lines}))
    walls = [[float("inf")] * len(batch) for _ in indexes]
    cpus = [[float("inf")] * len(batch) for _ in indexes]
    applied = [0] * len(indexes)
    # The batch itself (up to 80 000 lines) would otherwise be rescanned by every full
    # collection; a server holds one receipt at a time.
    _settle()
    for _ in range(passes):
        applied = [0] * len(indexes)
        for first in range(0, len(batch), CHUNK):
            chunk = batch[first:first + CHUNK]
            for step in range(len(indexes)):
                turn = (first // CHUNK + step) % len(indexes)
                index, wall, cpu = indexes[turn], walls[turn], cpus[turn]
                # A running server is warm, and the turn before (another index) has filled
                # the caches with its own data.
                for receipt, customer, catalog in chunk:
                    price_receipt(receipt, catalog=catalog, promotions=index,
                                  customer=customer, store="S001", tz=TZ)
                for number, (receipt, customer, catalog) in enumerate(chunk, first):
                    began, began_cpu = time.perf_counter_ns(), time.thread_time_ns()
                    calc = price_receipt(receipt, catalog=catalog, promotions=index,
                                         customer=customer, store="S001", tz=TZ)
                    cpu[number] = min(cpu[number], (time.thread_time_ns() - began_cpu) / 1e6)
                    wall[number] = min(wall[number], (time.perf_counter_ns() - began) / 1e6)
                    applied[turn] += len(calc.promotions)
    return [Figures(statistics.median(wall), percentile(wall, 0.99), statistics.median(cpu),
                    percentile(cpu, 0.99), count / len(batch))
            for wall, cpu, count in zip(walls, cpus, applied, strict=True)]


def _print_ratios(title: str, sizes: list[int], pairs: list[tuple[Figures, ...]], *,
                  with_figures: bool = False) -> None:
    print(f"\n{title}; ratios of wall p50, wall p99, cpu p50, cpu p99:")
    for size, (a, b) in zip(sizes, pairs, strict=True):
        figures = (f"{a.cpu50:.3f}/{a.cpu99:.3f} vs {b.cpu50:.3f}/{b.cpu99:.3f}, applied "
                   f"{a.applied:.1f} / {b.applied:.1f}; " if with_figures else "")
        print(f"  {size:>3} lines: {figures}{b.wall50 / a.wall50:.2f}  {b.wall99 / a.wall99:.2f}"
              f"  {b.cpu50 / a.cpu50:.2f}  {b.cpu99 / a.cpu99:.2f}")


def run(promotion_counts: list[int], sizes: list[int], receipts: int, passes: int) -> None:
    rnd = random.Random(20261123)
    started = time.perf_counter()
    world = build_catalog(rnd)
    print(f"catalog: {len(world.catalog)} skus built in {time.perf_counter() - started:.1f} s")
    customers = [build_customer(rnd, world, number) for number in range(200)]
    indexes = []
    for count in promotion_counts:
        promotions = build_promotions(random.Random(count), world, count, "chain")
        started = time.perf_counter()
        indexes.append(PromotionIndex(promotions))
        print(f"{count} promotions: index built in {time.perf_counter() - started:.2f} s")
    _settle()
    results: dict[tuple[int, int], Figures] = {}
    for size in sizes:
        for count, figures in zip(promotion_counts,
                                  measure(world, customers, indexes, size, receipts, passes),
                                  strict=True):
            results[(count, size)] = figures
    header = (f"  {'lines':>5} {'wall p50':>9} {'wall p99':>9} {'cpu p50':>8} {'cpu p99':>8}"
              f" {'applied':>8}")
    for count in promotion_counts:
        print(f"\n{count} promotions: ms per receipt, applied promotions per receipt")
        print(header)
        for size in sizes:
            f = results[(count, size)]
            print(f"  {size:>5} {f.wall50:>9.3f} {f.wall99:>9.3f} {f.cpu50:>8.3f} {f.cpu99:>8.3f}"
                  f" {f.applied:>8.1f}")
    low, high = min(promotion_counts), max(promotion_counts)
    _print_ratios(f"ratio {high} / {low} promotions, chain mix", sizes,
                  [(results[(low, size)], results[(high, size)]) for size in sizes])
    # What the ratio is made of: the big case does the work of the promotions that apply
    # there (none apply at the small count), so its extra time is read per applied promotion.
    print(f"\nextra cpu p50 of {high} over {low} promotions, per promotion applied:")
    for size in sizes:
        a, b = results[(low, size)], results[(high, size)]
        more = b.applied - a.applied
        if more >= 1:  # below one, the quotient says nothing
            print(f"  {size:>3} lines: {(b.cpu50 - a.cpu50) * 1000 / more:.1f} µs"
                  f" ({more:.1f} more applied)")
    del indexes

    stacked = [PromotionIndex(build_promotions(random.Random(count), world, count, "stacked"))
               for count in (low, high)]
    _settle()
    _print_ratios(f"stress, stacked audiences: cpu p50/p99 ms at {low} vs {high} promotions,"
                  " applied per receipt", sizes,
                  [tuple(measure(world, customers, stacked, size, receipts, passes))
                   for size in sizes], with_figures=True)
    del stacked

    # The same live promotions in both cases; the big case adds an archive of promotions that
    # are not running today. This isolates what the count of *defined* promotions costs.
    live = live_now(build_promotions(random.Random(1), world, low))
    archive = archived(build_promotions(random.Random(2), world, high - low))
    small, big = PromotionIndex(live), PromotionIndex(live + archive)
    _settle()
    print(f"\nindex overhead: the same {low} live promotions alone vs. plus {high - low} "
          "archived/planned ones (cpu p50/p99 ms; ratio of big to small):")
    for size in sizes:
        a, b = measure(world, customers, [small, big], size, receipts, passes)
        print(f"  {size:>3} lines: {a.cpu50:.3f}/{a.cpu99:.3f} vs {b.cpu50:.3f}/{b.cpu99:.3f};"
              f" ratio {b.cpu50 / a.cpu50:.2f} {b.cpu99 / a.cpu99:.2f};"
              f" applied {a.applied:.1f} / {b.applied:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run")
    parser.add_argument("--receipts", type=int, default=None, help="receipts per case")
    parser.add_argument("--passes", type=int, default=3,
                        help="times each receipt is priced; its best time counts")
    args = parser.parse_args()
    if args.smoke:
        run([100, 10_000], [1, 50, 200], args.receipts or 20, args.passes)
    else:
        run([100, 10_000, 100_000], [1, 50, 200], args.receipts or 400, args.passes)


if __name__ == "__main__":
    main()
