"""Central's one clock.

Every "now" central uses (receipt ageing, bonus activation and expiry, sync horizons, ledger
timestamps) comes from :func:`now`. Tests and demonstrations pin it with the environment
variable ``TILLGATE_CENTRAL_NOW`` set to an RFC 3339 instant (``2026-11-23T12:00:00+03:00``);
it is read on every call, so a test may move the clock between requests of a running
in-process server. A server in another process reads its own environment.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from tillgate.errors import ConfigError

#: The environment switch that pins central's clock (RFC 3339 with offset).
NOW_ENV = "TILLGATE_CENTRAL_NOW"


def now() -> datetime:
    """The current instant, timezone-aware (UTC unless pinned with an offset)."""
    pinned = os.environ.get(NOW_ENV, "").strip()
    if not pinned:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(pinned)
    except ValueError as exc:
        raise ConfigError("must be an RFC 3339 instant", key=NOW_ENV) from exc
    if value.tzinfo is None:
        raise ConfigError("must carry a UTC offset", key=NOW_ENV)
    return value


def to_text(instant: datetime) -> str:
    """The stored form of an instant: fixed-width RFC 3339 in UTC, so text order is time order."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def from_text(text: str) -> datetime:
    """Parse an instant stored by :func:`to_text` (or any RFC 3339 with offset)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
