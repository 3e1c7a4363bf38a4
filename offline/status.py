"""The store's status as the edge database records it, for ``tillgate status``.

The daemon writes its mode and breaker state with :func:`write_runtime_state` whenever they
change; :func:`read_status` reads everything from the file alone, so it works whether the
daemon runs or not. When no daemon ever wrote a state (or the database does not exist yet)
the mode is reported ``"offline"`` (nothing can reach central through this store's daemon)
and the breaker ``"closed"`` (no failure was seen). ``runtime_at`` says when the daemon last
wrote its state (unix time, None if never), so a stale state can be told from a live one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from offline.cache import META_CENTRAL, META_SYNC_VERSION
from offline.db import EdgeDatabase
from offline.outbox import META_OUTBOX_PENDING
from offline.sync import META_LAST_SYNC_AT, META_LAST_SYNC_DURATION_S

__all__ = ["RUNNING_WITHIN_S", "clear_runtime_state", "read_status", "write_runtime_state"]

#: a daemon that wrote its state within this many seconds counts as running (it writes every 2 s)
RUNNING_WITHIN_S = 10.0

_META_MODE = "runtime_mode"
_META_BREAKER = "runtime_breaker"
_META_RUNTIME_AT = "runtime_at"


def write_runtime_state(
    db: EdgeDatabase,
    mode: Literal["online", "offline"],
    breaker: Literal["closed", "open", "half_open"],
) -> None:
    """Record the daemon's mode and breaker state (one small transaction)."""
    if mode not in ("online", "offline"):
        raise ValueError(f"mode must be online or offline, not {mode!r}")
    if breaker not in ("closed", "open", "half_open"):
        raise ValueError(f"breaker must be closed, open or half_open, not {breaker!r}")
    with db.transaction():
        db.set_meta(_META_MODE, mode)
        db.set_meta(_META_BREAKER, breaker)
        db.set_meta(_META_RUNTIME_AT, repr(time.time()))


def clear_runtime_state(db: EdgeDatabase) -> None:
    """The daemon is stopping: status shall not report it running."""
    with db.transaction():
        db.conn.execute("DELETE FROM meta WHERE key = ?", (_META_RUNTIME_AT,))


def _float(value: str | None) -> float | None:
    return float(value) if value is not None else None


def read_status(cache_db_path: Path | str) -> dict[str, Any]:
    """``{"mode", "breaker", "runtime_at", "cache": {"version", "age_s",
    "last_sync_duration_s", "central"}, "outbox": {"depth", "oldest_age_s", "rejected"}}``.

    ``cache.version`` and ``cache.age_s`` (seconds since the last complete sync) are None
    before the first sync; ``outbox.oldest_age_s`` is None when nothing waits."""
    status: dict[str, Any] = {
        "mode": "offline",
        "breaker": "closed",
        "runtime_at": None,
        "running": False,
        "cache": {"version": None, "age_s": None, "last_sync_duration_s": None, "central": None},
        "outbox": {"depth": 0, "oldest_age_s": None, "rejected": 0},
    }
    path = Path(cache_db_path)
    if not path.exists():
        return status
    db = EdgeDatabase(path, readonly=True)
    try:
        meta = {row["key"]: row["value"] for row in db.query("SELECT key, value FROM meta")}
        now = time.time()
        runtime_at = _float(meta.get(_META_RUNTIME_AT))
        running = runtime_at is not None and now - runtime_at <= RUNNING_WITHIN_S
        status["running"] = running
        # A daemon that is not running answers nobody: its mode is offline whatever it last was.
        status["mode"] = meta.get(_META_MODE, "offline") if running else "offline"
        status["breaker"] = meta.get(_META_BREAKER, "closed")
        status["runtime_at"] = runtime_at
        version = meta.get(META_SYNC_VERSION)
        last_sync = _float(meta.get(META_LAST_SYNC_AT))
        status["cache"] = {
            "version": int(version) if version is not None else None,
            "age_s": round(max(0.0, now - last_sync), 3) if last_sync is not None else None,
            "last_sync_duration_s": _float(meta.get(META_LAST_SYNC_DURATION_S)),
            "central": meta.get(META_CENTRAL),
        }
        oldest = db.query(
            "SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1"
        )
        rejected = db.query("SELECT count(*) AS n FROM outbox WHERE status = 'rejected'")[0]["n"]
        status["outbox"] = {
            "depth": int(meta.get(META_OUTBOX_PENDING, "0")),
            "oldest_age_s": round(max(0.0, now - float(oldest[0]["created_at"])), 3)
            if oldest
            else None,
            "rejected": int(rejected),
        }
    finally:
        db.close()
    return status
