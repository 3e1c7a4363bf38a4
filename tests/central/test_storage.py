"""Storage: migrations in place, ledger lots, savepoints."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.accounts import Lifetime, record_movement, settle, spendable_balance
from central.clock import now
from central.schema import MIGRATIONS, SCHEMA_VERSION, current_version, migrate
from central.storage import LedgerKind, LedgerRow, SQLiteRepository
from tillgate.errors import StorageError


def test_new_database_is_built_to_the_current_version(tmp_path: Path) -> None:
    repo = SQLiteRepository(tmp_path / "c.db")
    repo.close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert current_version(conn) == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_existing_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:1]) == 0
    conn.execute(
        "INSERT INTO ledger (customer_id, kind, points, at) VALUES ('C1', 'adjustment', 5, 'x')"
    )
    conn.close()
    repo = SQLiteRepository(path)
    with repo.read() as tx:
        assert tx.ledger_sum("C1") == 5
        assert tx.purchased_items("C1", "2026-11") == {}  # a table of step 2
    repo.close()
    with sqlite3.connect(path) as check:
        assert current_version(check) == SCHEMA_VERSION


def test_step_6_learns_which_lot_each_earlier_expiry_took(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:5]) == 0
    conn.executescript(
        "INSERT INTO ledger (id, customer_id, kind, points, store, receipt_id, at, expires_at, "
        "remaining) VALUES (17, 'C1', 'accrual', 300, 'S001', 'R1', 'a', 'b', 0);"
        "INSERT INTO ledger (customer_id, kind, points, store, receipt_id, reason, at) "
        "VALUES ('C1', 'expiry', -120, 'S001', 'R1', 'lot 17 expired', 'b');"
        "INSERT INTO ledger (customer_id, kind, points, store, receipt_id, reason, at) "
        "VALUES ('C1', 'refund', -100, 'S001', 'R1', 'refund F1: accrual', 'c');"
    )
    conn.close()
    repo = SQLiteRepository(path)
    with repo.read() as tx:
        assert tx.accrual_standing("C1", "S001", "R1") == (300, 120, 100)
    repo.close()


def test_step_8_names_the_origin_of_restored_lots_only_where_it_is_unambiguous(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:7]) == 0
    lots = "INSERT INTO ledger (id, customer_id, kind, points, store, receipt_id, at, "
    conn.executescript(
        # R1 accrued lot 1; R2 redeemed 90 from it, refunded: 90 back as lot 3, since expired
        f"{lots} expires_at) VALUES (1, 'C1', 'accrual', 300, 'S001', 'R1', 'a', 'e1');"
        f"{lots} expires_at) VALUES (2, 'C1', 'redemption', -90, 'S001', 'R2', 'b', NULL);"
        "INSERT INTO lot_uses (row_id, lot_id, points, restored) VALUES (2, 1, 90, 90);"
        f"{lots} expires_at) VALUES (3, 'C1', 'refund', 90, 'S001', 'R2', 'c', 'e1');"
        f"{lots} reason) VALUES (4, 'C1', 'expiry', -90, 'S001', 'R2', 'e1', 'lot 3 expired');"
        "INSERT INTO lot_uses (row_id, lot_id, points) VALUES (4, 3, 90);"
        # R5 redeemed from lots 6 and 7 of one expiry: which one lot 9 carries is unknown
        f"{lots} expires_at) VALUES (6, 'C1', 'accrual', 10, 'S001', 'R6', 'a', 'e2');"
        f"{lots} expires_at) VALUES (7, 'C1', 'accrual', 10, 'S001', 'R7', 'a', 'e2');"
        f"{lots} expires_at) VALUES (8, 'C1', 'redemption', -20, 'S001', 'R5', 'b', NULL);"
        "INSERT INTO lot_uses (row_id, lot_id, points, restored) VALUES (8, 6, 10, 10);"
        "INSERT INTO lot_uses (row_id, lot_id, points, restored) VALUES (8, 7, 10, 10);"
        f"{lots} expires_at) VALUES (9, 'C1', 'refund', 20, 'S001', 'R5', 'c', 'e2');"
    )
    conn.close()
    repo = SQLiteRepository(path)
    with repo.read() as tx:
        origins = {row.id: row.origin for row in tx.ledger("C1")}
        assert (origins[3], origins[9]) == (1, None)
        # the 90 that expired after coming back count as R1's: R1 has 210 left to take back
        assert tx.accrual_standing("C1", "S001", "R1") == (300, 90, 0)
    repo.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteRepository(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StorageError, match="newer"):
        SQLiteRepository(path)


def test_savepoint_undoes_only_its_block(tmp_path: Path) -> None:
    repo = SQLiteRepository(tmp_path / "c.db")
    with repo.transaction() as tx:
        tx.set_setting("a", "1")
        try:
            with tx.savepoint():
                tx.set_setting("b", "2")
                raise RuntimeError("undo")
        except RuntimeError:
            pass
    with repo.read() as tx:
        assert tx.setting("a") == "1"
        assert tx.setting("b") is None
    repo.close()


movements = st.lists(
    st.tuples(st.sampled_from(["accrual", "redemption", "refund", "adjustment"]),
              st.integers(min_value=1, max_value=5000), st.integers(min_value=0, max_value=5)),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(movements)
def test_balance_is_the_ledger_sum_and_lots_hold_exactly_the_spendable_points(
    tmp_path_factory: pytest.TempPathFactory, moves: list[tuple[str, int, int]]
) -> None:
    repo = SQLiteRepository(tmp_path_factory.mktemp("ledger") / "c.db")
    moment = now()
    total = 0
    with repo.transaction() as tx:
        for kind, amount, receipt in moves:
            points = amount if kind in ("accrual", "adjustment") else -amount
            ledger_kind: LedgerKind = (
                "accrual" if kind == "accrual" else "redemption" if kind == "redemption"
                else "refund" if kind == "refund" else "adjustment"
            )
            record_movement(tx, "C1", ledger_kind, points, now=moment, receipt_id=f"R{receipt}")
            total += points
            assert spendable_balance(tx, "C1") == total
            rows: list[LedgerRow] = tx.ledger("C1")
            assert sum(row.points for row in rows) == total
            assert all(row.remaining >= 0 for row in rows)
            # every spendable point sits in exactly one lot; a debt is backed by none
            assert tx.lot_points("C1") == max(0, total)
    repo.close()


def test_new_points_repay_a_debt_before_they_can_expire(tmp_path: Path) -> None:
    repo = SQLiteRepository(tmp_path / "c.db")
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    lifetime = Lifetime(validity=timedelta(days=10))
    with repo.transaction() as tx:
        record_movement(tx, "C1", "accrual", 1000, now=start, receipt_id="R1", lifetime=lifetime)
        record_movement(tx, "C1", "redemption", -1000, now=start, receipt_id="R2")
        # R1 refunded after its points were spent: a debt of 1000
        record_movement(tx, "C1", "refund", -1000, now=start, receipt_id="R1")
        assert spendable_balance(tx, "C1") == -1000
        record_movement(tx, "C1", "accrual", 1500, now=start, receipt_id="R3", lifetime=lifetime)
        assert spendable_balance(tx, "C1") == 500
        settle(tx, start + timedelta(days=11))
        expired = [row.points for row in tx.ledger("C1") if row.kind == "expiry"]
        assert expired == [-500]  # only what the debt left of R3's points
        assert spendable_balance(tx, "C1") == 0
    repo.close()
