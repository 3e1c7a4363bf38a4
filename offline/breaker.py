"""A circuit breaker for calls to central, as a pure state machine.

Theory of operation: the daemon asks :meth:`CircuitBreaker.allow` before it calls central and
reports the outcome with :meth:`record_success` or :meth:`record_failure`. Time is an input
(``now``, seconds on any monotonic clock): the breaker never reads a clock or sleeps.

- ``closed``: calls go through; ``failure_threshold`` consecutive failures open it.
- ``open``: calls are refused (the daemon goes straight to the edge) until ``cooldown_s``
  have passed since it opened; the first :meth:`allow` after that moves to ``half_open``.
- ``half_open``: exactly one trial call is let through; its success closes the breaker, its
  failure opens it again for another cool-down. Further :meth:`allow` calls while the trial
  is running are refused.

All transitions are in :data:`_TRANSITIONS`; an event the table does not expect in a state is a
no-op (e.g. a late success from a call started before the breaker opened).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tillgate.errors import ConfigError

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where the breaker is; the value is what status reports show."""

    #: calls go to central
    CLOSED = "closed"
    #: calls are refused until the cool-down ends
    OPEN = "open"
    #: one trial call is allowed
    HALF_OPEN = "half_open"


class _Event(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    TRIP = "trip"  # failure count reached the threshold
    COOLED = "cooled"  # the cool-down has passed


_TRANSITIONS: dict[tuple[BreakerState, _Event], BreakerState] = {
    (BreakerState.CLOSED, _Event.SUCCESS): BreakerState.CLOSED,
    (BreakerState.CLOSED, _Event.FAILURE): BreakerState.CLOSED,
    (BreakerState.CLOSED, _Event.TRIP): BreakerState.OPEN,
    (BreakerState.OPEN, _Event.COOLED): BreakerState.HALF_OPEN,
    (BreakerState.HALF_OPEN, _Event.SUCCESS): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, _Event.FAILURE): BreakerState.OPEN,
}


@dataclass(slots=True)
class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half_open after
    ``cooldown_s`` → closed on a successful trial, open again on a failed one."""

    failure_threshold: int = 3
    cooldown_s: float = 10.0
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ConfigError("must be at least 1", key="breaker.failure_threshold")
        if self.cooldown_s < 0:
            raise ConfigError("must not be negative", key="breaker.cooldown_s")

    def _fire(self, event: _Event, now: float) -> None:
        target = _TRANSITIONS.get((self.state, event))
        if target is None:
            return
        if target is BreakerState.OPEN and self.state is not BreakerState.OPEN:
            self.opened_at = now
        if target is BreakerState.CLOSED:
            self.opened_at = None
        self.state = target

    def allow(self, now: float) -> bool:
        """Whether a call to central may start now (in half_open: only the one trial)."""
        if (
            self.state is BreakerState.OPEN
            and self.opened_at is not None
            and now - self.opened_at >= self.cooldown_s
        ):
            self._fire(_Event.COOLED, now)
            self.trial_running = False
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def record_success(self, now: float) -> None:
        """A call to central answered (any reply, domain errors included)."""
        if self.state is BreakerState.OPEN:
            return  # a late answer to a call started before the breaker opened
        self.consecutive_failures = 0
        self.trial_running = False
        self._fire(_Event.SUCCESS, now)

    def record_failure(self, now: float) -> None:
        """A call to central failed (deadline, refused connection, gRPC status not OK)."""
        if self.state is BreakerState.OPEN:
            return
        self.trial_running = False
        if self.state is BreakerState.HALF_OPEN:
            self._fire(_Event.FAILURE, now)
            return
        self.consecutive_failures += 1
        self._fire(_Event.FAILURE, now)
        if self.consecutive_failures >= self.failure_threshold:
            self.consecutive_failures = 0
            self._fire(_Event.TRIP, now)

    def remaining_cooldown(self, now: float) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (now - self.opened_at))
