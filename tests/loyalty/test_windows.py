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


def test_windows_compare_as_instants_even_in_a_zone_of_changing_offset() -> None:
    # §5.13: from/to compare as instants. In the autumn fold 02:10 CET (the second pass) is an
    # instant after 02:20 CEST, though two datetimes of one ZoneInfo compare by wall clock: a
    # promotion starting at 02:20 CEST runs at 02:10 CET, and not at 02:10 CEST.
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 25, 2, 20, tzinfo=berlin)  # fold=0: 02:20 CEST, 00:20 UTC
    before = datetime(2026, 10, 25, 2, 10, tzinfo=berlin)  # fold=0: 02:10 CEST, 00:10 UTC
    second_pass = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=berlin)  # 02:10 CET, 01:10 UTC
    assert second_pass < start  # what Python says: wall clock
    starting = dataclasses.replace(
        promo("fold", {"type": "percent_off", "percent": "10"}), active=ActiveWindow(start))
    ending = dataclasses.replace(
        promo("fold-end", {"type": "amount_off", "amount": 100}),
        active=ActiveWindow(None, start))
    items = catalog(item("oil"))
    for now, started in ((before, False), (second_pass, True)):
        calc = price(receipt(line(1, "oil", "1", 10000), at=now), [starting, ending], items,
                     tz=berlin)
        assert [p.id for p in calc.promotions] == (["fold"] if started else ["fold-end"])
