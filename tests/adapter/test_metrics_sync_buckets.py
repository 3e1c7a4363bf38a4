"""``tillgate_sync_seconds`` resolves the cold-sync target (30 s) and beyond: its buckets do not
stop at 10 s, where every slow sync would look alike."""

from __future__ import annotations

from adapter.metrics import DaemonMetrics


def test_sync_seconds_has_buckets_up_to_a_minute() -> None:
    metrics = DaemonMetrics()
    for duration in (0.02, 12.0, 28.0, 41.0, 75.0):
        metrics.sync_seconds.observe(duration)

    def at_most(bound: str) -> float | None:
        return metrics.registry.get_sample_value("tillgate_sync_seconds_bucket", {"le": bound})

    assert at_most("10.0") == 1
    assert at_most("20.0") == 2
    assert at_most("30.0") == 3, "a cold sync within its 30 s target"
    assert at_most("45.0") == 4
    assert at_most("60.0") == 4
    assert at_most("+Inf") == 5
