"""The edge database: one SQLite file (``cache.db``) in WAL mode holding the synced loyalty
documents, the receipts the edge knows, the outbox and the daemon's runtime state.

Theory of operation: every component of the edge (cache, sync client, processor, outbox,
uploader) shares one :class:`EdgeDatabase` per process and runs its SQL synchronously on the
event loop thread, each change inside :meth:`EdgeDatabase.transaction` (``BEGIN IMMEDIATE`` …
``COMMIT``). Nothing awaits inside a transaction, so transactions never interleave within the
process; other processes (``tillgate status``, a test) see only committed states. The file
runs with ``synchronous=FULL``: a transaction that returned is on disk, which is what lets the
daemon answer a register after an offline result was journaled.

The schema version is SQLite's ``user_version``; :data:`_MIGRATIONS` upgrades older files in
place, step by step. sqlite3 errors are translated to :class:`tillgate.errors.StorageError`
naming the file.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tillgate.errors import StorageError

__all__ = [
    "AUTOCHECKPOINT_PAGES",
    "DOCUMENT_TABLES",
    "EdgeDatabase",
    "SyncBusyError",
    "SyncLock",
    "holding_sync_lock",
]

#: WAL pages after which a commit checkpoints by itself (80 MB at 4 KiB pages)
AUTOCHECKPOINT_PAGES = 20_000

#: Tables that hold synced documents; a snapshot loads ``<name>_shadow`` and swaps it in.
DOCUMENT_TABLES: dict[str, str] = {
    # every live document as synced: the canonical JSON central sent, byte for byte
    "documents": "kind TEXT NOT NULL, id TEXT NOT NULL, json BLOB NOT NULL, "
    "version INTEGER NOT NULL, PRIMARY KEY (kind, id)",
    # customer lookup: key is "card:<number>", "phone:<digits>" or "token:<token>"
    "customer_keys": "key TEXT NOT NULL, customer_id TEXT NOT NULL, PRIMARY KEY (key, customer_id)",
}

_MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE documents (kind TEXT NOT NULL, id TEXT NOT NULL, json BLOB NOT NULL,
        version INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;
    CREATE TABLE customer_keys (key TEXT NOT NULL, customer_id TEXT NOT NULL,
        PRIMARY KEY (key, customer_id)) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    -- customers identified at a till while online: the sync asks central for them
    CREATE TABLE seen_customers (customer_id TEXT PRIMARY KEY, seen_at REAL NOT NULL)
        WITHOUT ROWID;
    -- the receipts the edge knows: lifecycle state and the calculation last given
    CREATE TABLE receipts (
        receipt_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,            -- open, confirmed, cancelled
        calculated_mode TEXT NOT NULL,  -- online, offline: where the last calculation was made
        request BLOB NOT NULL,          -- pb.CalculateRequest of the last calculation
        calculation BLOB NOT NULL,      -- pb.Calculation last given
        customer_id TEXT,
        confirm_request BLOB,           -- pb.ConfirmRequest that confirmed it
        confirm_reply BLOB,             -- pb.ConfirmReply given
        refunded TEXT NOT NULL DEFAULT '{}',  -- JSON {line n: thousandths refunded}
        created_at REAL NOT NULL,       -- first calculation seen here (7-day expiry)
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE refunds (refund_id TEXT PRIMARY KEY, receipt_id TEXT NOT NULL,
        request BLOB NOT NULL, reply BLOB NOT NULL, at REAL NOT NULL) WITHOUT ROWID;
    -- points redeemed offline and not yet part of a synced balance (limited redemption)
    CREATE TABLE offline_redemptions (receipt_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,
        points INTEGER NOT NULL, acked_at REAL) WITHOUT ROWID;
    CREATE INDEX offline_redemptions_customer ON offline_redemptions (customer_id);
    -- coupon codes spent by offline confirms (upper-cased): never accepted twice here
    CREATE TABLE offline_coupons (code TEXT PRIMARY KEY, receipt_id TEXT NOT NULL,
        at REAL NOT NULL) WITHOUT ROWID;
    -- the journal of offline operations waiting for central (pb.JournalEntry)
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a purge
        receipt_id TEXT NOT NULL,
        operation TEXT NOT NULL,                -- calculate, confirm, cancel, refund
        entry BLOB NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',  -- pending, done, rejected
        ack_status TEXT,
        ack_message TEXT,
        acked_at REAL
    );
    CREATE INDEX outbox_pending ON outbox (status, seq);
    CREATE INDEX outbox_receipt ON outbox (receipt_id, status);
    """,
    # 2: purchases confirmed offline and not yet part of a synced customer document: their
    # counters (JSON {name: add}) and the purchase itself count in offline pricing until then
    """
    CREATE TABLE offline_purchases (receipt_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,
        counters TEXT NOT NULL, acked_at REAL) WITHOUT ROWID;
    CREATE INDEX offline_purchases_customer ON offline_purchases (customer_id);
    """,
    # 3: the central database (meta "central") an entry was journaled against: it is sent there
    # only, even when requeued after the store moved to another central. NULL: not known.
    """
    ALTER TABLE outbox ADD COLUMN central TEXT;
    """,
    # 4: central's sync version once it applied the entry (UploadReply.version): the offline
    # purchase or redemption is forgotten once a sync reaches it, never before (a sync that
    # ran while the upload was acknowledged may not hold it, or may)
    """
    ALTER TABLE offline_purchases ADD COLUMN acked_version INTEGER;
    ALTER TABLE offline_redemptions ADD COLUMN acked_version INTEGER;
    """,
)


class EdgeDatabase:
    """An open edge database file; create one per process and share it."""

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._depth = 0
        try:
            if readonly:
                uri = f"file:{self.path}?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(self.path, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = FULL")
                # checkpoints belong to background work (checkpoint()), not to the commit of
                # a register's answer; this is only the backstop if nobody runs them
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
                self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{self.path}: cannot open the edge database: {exc}") from exc

    def _migrate(self) -> None:
        current = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if current > len(_MIGRATIONS):
            raise StorageError(
                f"{self.path}: schema version {current} is newer than this tillgate "
                f"understands ({len(_MIGRATIONS)})"
            )
        for version in range(current, len(_MIGRATIONS)):
            with self.transaction():
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (nested uses join the outer one); sqlite3 errors become
        :class:`StorageError`."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot start a transaction: {exc}") from exc
        self._depth = 1
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise StorageError(f"{self.path}: {exc}") from exc
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: commit failed: {exc}") from exc

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        """Rows of a read query (outside or inside a transaction)."""
        try:
            cursor = self.conn.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return list(cursor.fetchall())
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Set one meta value (call inside a transaction, or it commits on its own)."""
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (PASSIVE: never waits for, nor blocks, the
        writer). Runs on its own connection, so it may run in a worker thread
        (``asyncio.to_thread(db.checkpoint)``) while the event loop keeps answering."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: checkpoint failed: {exc}") from exc

    def close(self) -> None:
        self.conn.close()


class SyncBusyError(StorageError):
    """Another process holds the edge database's sync lock (a pull by the daemon's loop or
    ``tillgate sync``, or ``tillgate forget-central``): both would change the checkpoint or
    load the same shadow tables."""


class SyncLock:
    """An exclusive ``flock`` on ``<database>.sync.lock`` for the whole of one pull (or one
    change of the sync checkpoint outside it), holding the holder's pid. Released by
    :meth:`release` or when the process ends, however it ends."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".sync.lock")
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot open the sync lock: {exc}") from exc

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            self.release()
            raise StorageError(f"{self.path}: cannot lock: {exc}") from exc
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return True

    def holder(self) -> str:
        return os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "?"

    def busy(self, waited_s: float) -> SyncBusyError:
        """The error for a lock still held after ``waited_s``, naming its holder (releases
        this handle)."""
        holder = self.holder()
        self.release()
        return SyncBusyError(
            f"{self.db_path}: another sync is running (pid {holder}); waited {waited_s:g} s "
            "for it to finish, try again later"
        )

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@contextmanager
def holding_sync_lock(db_path: Path, *, wait_s: float) -> Iterator[None]:
    """Hold the sync lock of the edge database at ``db_path``, waiting up to ``wait_s`` for
    another holder (blocking: for commands, not the daemon's event loop); raises
    :class:`SyncBusyError` naming the holder's pid when it does not let go in time."""
    lock = SyncLock(db_path)
    deadline = time.monotonic() + wait_s
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            raise lock.busy(wait_s)
        time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()
