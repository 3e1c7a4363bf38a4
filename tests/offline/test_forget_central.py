"""``tillgate forget-central`` clears the sync checkpoint under the sync lock: while a pull
holds ``<db>.sync.lock`` it waits, then fails naming the holder's pid and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offline.cache import META_CENTRAL
from offline.db import EdgeDatabase, SyncBusyError, SyncLock
from offline.outbox import Outbox
from protos import tillgate_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
OLD_CENTRAL = "5c7749da763344c459d1234569837e5f"


def _store(tmp_path: Path) -> tuple[Path, Path]:
    """A configuration and its edge database: synced from OLD_CENTRAL, one entry waiting."""
    config = tmp_path / "tillgate.toml"
    config.write_text('store = "S001"\ndata_dir = "data"\n')
    (tmp_path / "data").mkdir()
    db_path = tmp_path / "data" / "edge.db"
    db = EdgeDatabase(db_path)
    with db.transaction():
        db.set_meta(META_CENTRAL, OLD_CENTRAL)
    Outbox(db, store="S001").append("R1", "cancel", pb.CancelRequest(receipt_id="R1"))
    db.close()
    return config, db_path


def _central(db_path: Path) -> str | None:
    db = EdgeDatabase(db_path)
    try:
        return db.get_meta(META_CENTRAL)
    finally:
        db.close()


def _held(db_path: Path) -> SyncLock:
    """The sync lock, held by this process as a running pull would hold it."""
    lock = SyncLock(db_path)
    assert lock.try_acquire()
    return lock


def _forget(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tillgate", "forget-central", "--config", str(config),
         "--old-central-is-gone"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_forget_central_fails_naming_the_pull_that_holds_the_lock(tmp_path: Path) -> None:
    config, db_path = _store(tmp_path)
    lock = _held(db_path)
    try:
        started = time.monotonic()
        child = _forget(config)
        stdout, stderr = child.communicate(timeout=60)
        waited = time.monotonic() - started
    finally:
        lock.release()
    assert child.returncode == 1  # as every command whose work failed (2: a usage error)
    assert stdout == ""
    assert stderr.startswith("tillgate forget-central: ")
    assert f"another sync is running (pid {os.getpid()})" in stderr
    assert "Traceback" not in stderr
    assert waited >= 5  # it waited a few seconds for the pull first
    assert _central(db_path) == OLD_CENTRAL  # nothing changed


def test_forget_central_waits_for_a_pull_to_finish(tmp_path: Path) -> None:
    config, db_path = _store(tmp_path)
    lock = _held(db_path)
    try:
        child = _forget(config)
        time.sleep(1.0)
        assert child.poll() is None, child.communicate()  # waiting for the lock
        assert _central(db_path) == OLD_CENTRAL
    finally:
        lock.release()
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert stdout.startswith("1 kept entries will go to the central this store reaches next")
    assert _central(db_path) is None


def test_outbox_forget_central_raises_sync_busy_and_changes_nothing(tmp_path: Path) -> None:
    _config, db_path = _store(tmp_path)
    db = EdgeDatabase(db_path)
    outbox = Outbox(db, store="S001")
    lock = _held(db_path)
    try:
        with pytest.raises(SyncBusyError, match=rf"another sync is running \(pid {os.getpid()}\)"):
            outbox.forget_central(lock_wait_s=0.2)
    finally:
        lock.release()
    assert db.get_meta(META_CENTRAL) == OLD_CENTRAL
    assert outbox.forget_central(lock_wait_s=0.2) == 1
    assert db.get_meta(META_CENTRAL) is None
    db.close()
