"""``read_status`` from the database file alone, whether or not a daemon holds it open."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.outbox import Outbox
from offline.status import read_status, write_runtime_state
from offline.sync import SyncClient
from protos import tillgate_pb2 as pb
from tests.offline.edge import STORE, seed


def test_a_missing_database_reports_defaults(tmp_path: Path) -> None:
    status = read_status(tmp_path / "nothing.db")
    assert status == {
        "mode": "offline",
        "breaker": "closed",
        "runtime_at": None,
        "running": False,
        "cache": {"version": None, "age_s": None, "last_sync_duration_s": None, "central": None},
        "outbox": {"depth": 0, "oldest_age_s": None, "rejected": 0},
    }
    assert not (tmp_path / "nothing.db").exists(), "reading status must not create the file"


def test_status_reflects_the_daemon_cache_and_outbox(tmp_path: Path) -> None:
    db_path = tmp_path / "cache.db"
    db = EdgeDatabase(db_path)
    assert read_status(db_path)["mode"] == "offline"
    seed(db)
    SyncClient(EdgeCache(db), store=STORE).finish(started_at=time.time(), duration_s=1.25)
    write_runtime_state(db, "online", "half_open")
    outbox = Outbox(db, store=STORE, clock=lambda: time.time() - 30)
    for receipt_id in ("R1", "R2", "R3"):
        outbox.append(receipt_id, "cancel", pb.CancelRequest(receipt_id=receipt_id))
    entries = outbox.pending(1)
    outbox.record_acks(entries, [pb.EntryAck(receipt_id="R1", seq=1, status="rejected")])

    # the "daemon" holds a write transaction open while status is read
    with db.transaction():
        status = read_status(db_path)
    assert status["mode"] == "online"
    assert status["breaker"] == "half_open"
    assert status["runtime_at"] is not None
    assert status["cache"]["version"] == 6
    assert 0 <= status["cache"]["age_s"] < 60
    assert status["cache"]["last_sync_duration_s"] == 1.25
    assert status["outbox"]["depth"] == 2
    assert 29 <= status["outbox"]["oldest_age_s"] < 90
    assert status["outbox"]["rejected"] == 1
    db.close()


def test_runtime_state_is_checked(tmp_path: Path) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    with pytest.raises(ValueError, match="breaker"):
        write_runtime_state(db, "online", "ajar")  # type: ignore[arg-type]  # wrong on purpose
