"""The circuit breaker's transitions, driven by a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offline.breaker import BreakerState, CircuitBreaker
from tillgate.errors import ConfigError


def test_opens_after_n_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10)
    for t in (0.0, 1.0):
        assert breaker.allow(t)
        breaker.record_failure(t)
        assert breaker.state.value == "closed"
    assert breaker.allow(2.0)
    breaker.record_failure(2.0)
    assert breaker.state.value == "open"
    assert not breaker.allow(2.5)
    assert breaker.remaining_cooldown(5.0) == pytest.approx(7.0)


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10)
    breaker.record_failure(0.0)
    breaker.record_success(1.0)
    breaker.record_failure(2.0)
    assert breaker.state.value == "closed"
    breaker.record_failure(3.0)
    assert breaker.state.value == "open"


def test_half_open_after_cooldown_allows_one_trial_then_closes_on_success() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5)
    breaker.record_failure(100.0)
    assert not breaker.allow(104.9)
    assert breaker.allow(105.0)
    assert breaker.state.value == "half_open"
    assert not breaker.allow(105.1), "only one trial call while half open"
    breaker.record_success(105.2)
    assert breaker.state.value == "closed"
    assert breaker.allow(105.3)


def test_failed_trial_reopens_for_a_new_cooldown() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5)
    breaker.record_failure(0.0)
    assert breaker.allow(6.0)
    breaker.record_failure(6.5)
    assert breaker.state.value == "open"
    assert not breaker.allow(11.0)
    assert breaker.allow(11.5)
    assert breaker.state.value == "half_open"


def test_late_answers_while_open_do_not_change_the_state() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5)
    breaker.record_failure(0.0)
    breaker.record_success(1.0)
    assert breaker.state.value == "open"
    breaker.record_failure(4.0)
    assert breaker.allow(5.0), "a late failure must not restart the cool-down"


def test_bad_configuration_names_the_key() -> None:
    with pytest.raises(ConfigError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["allow", "ok", "fail"]), st.floats(0, 3, allow_nan=False)),
        max_size=60,
    )
)
def test_open_breaker_never_allows_before_its_cooldown(
    steps: list[tuple[str, float]],
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=4)
    now = 0.0
    for action, dt in steps:
        now += dt
        if action == "allow":
            was_open = breaker.state is BreakerState.OPEN
            opened_at = breaker.opened_at
            allowed = breaker.allow(now)
            if was_open and opened_at is not None and now - opened_at < 4:
                assert not allowed
        elif action == "ok":
            breaker.record_success(now)
        else:
            breaker.record_failure(now)
        assert breaker.state in set(BreakerState)
        assert (breaker.state is BreakerState.OPEN) == (breaker.opened_at is not None) or (
            breaker.state is BreakerState.HALF_OPEN
        )
