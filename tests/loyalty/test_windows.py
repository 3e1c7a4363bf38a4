"""Windows tested on integer instants agree with the datetime comparisons of spec §5.13."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from loyalty import ActiveWindow
from loyalty.eligibility import in_window_local, instant, on_the_clock, window_span

from .helpers import MSK, catalog, item, line, price, promo, receipt

OFFSETS = st.sampled_from([UTC, MSK, timezone(timedelta(hours=-5, minutes=-30)),
                           timezone(timedelta(hours=14))])
# Hypothesis takes naive bounds and attaches the zones itself.
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1),  # noqa: DTZ001
                       max_value=datetime(2040, 1, 1),  # noqa: DTZ001
                       timezones=OFFSETS)


@given(MOMENTS, st.none() | MOMENTS, st.none() | MOMENTS)
def test_instants_order_like_datetimes(now: datetime, start: datetime | None,
                                       end: datetime | None) -> None:
    window = ActiveWindow(start, end)
    first, last = window_span(window)
    assert (first <= instant(now) < last) == in_window_local(window, now, 1, 0)
    assert on_the_clock(window, 1, 0)


def test_a_wall_clock_zone_keeps_the_datetime_comparison() -> None:
    # In the autumn fold 02:10 CET is an instant after 02:20 CEST, but two datetimes of one
    # ZoneInfo compare by wall clock: neither the index nor the engine may decide on
    # instants then, or a promotion starting at 02:20 would apply at 02:10.
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 25, 2, 20, tzinfo=berlin)  # fold=0: 02:20 CEST, 00:20 UTC
    earlier_wall = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=berlin)  # 01:10 UTC
    later_wall = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=berlin)  # 01:30 UTC
    assert earlier_wall > start.astimezone(UTC)
    assert earlier_wall < start
    starting = dataclasses.replace(
        promo("fold", {"type": "percent_off", "percent": "10"}), active=ActiveWindow(start))
    items = catalog(item("oil"))
    for now, applies in ((earlier_wall, False), (later_wall, True)):
        calc = price(receipt(line(1, "oil", "1", 10000), at=now), [starting], items,
                     tz=berlin)
        assert bool(calc.promotions) is applies
