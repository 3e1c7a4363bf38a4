"""Central's storage: a repository interface and its SQLite (WAL) implementation.

Theory of operation: processing code never writes SQL. It opens a unit of work with
``repository.transaction()`` (writes, serialized, atomic) or ``repository.read()`` (a
consistent snapshot) and calls the domain-shaped methods of :class:`Transaction`. A
PostgreSQL backend implements the same two protocols; nothing above this module changes.

SQLite specifics: one connection per thread, WAL journal, ``synchronous=FULL`` (a commit
that returned is on disk, power cut included: edges drop an outbox entry once central acks
it), write transactions start with ``BEGIN IMMEDIATE`` behind
an in-process lock so concurrent gRPC workers queue instead of spinning on SQLITE_BUSY.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from central.schema import migrate
from protos.sync import canonical_json
from tillgate.errors import StorageError

LedgerKind = Literal["accrual", "redemption", "refund", "adjustment", "expiry"]
ReceiptState = Literal["open", "confirmed", "cancelled"]


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One synced document (or tombstone) with its sync version."""

    kind: str
    id: str
    raw: dict[str, Any] | None  #: the document as loaded or last changed; None when deleted
    body: bytes | None  #: canonical JSON as synced; None when deleted
    deleted: bool
    version: int
    changed_at: str


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One points movement. Positive rows are lots consumed oldest first by negative ones."""

    customer_id: str
    kind: LedgerKind
    points: int
    at: str
    store: str = ""
    receipt_id: str = ""
    reason: str = ""
    available_at: str | None = None  #: None: spendable at once
    expires_at: str | None = None  #: None: never expires
    remaining: int = 0  #: unconsumed points of a positive row
    activated: bool = True  #: False while waiting for ``available_at``
    #: a restored lot: the accrual lot whose points it carries (None: none or unknown)
    origin: int | None = None
    id: int = 0  #: assigned by the repository


@dataclass(frozen=True, slots=True)
class LotUse:
    """Points a negative ledger row (``row_id``) took from a lot, and how many of them a
    refund gave back since."""

    row_id: int
    lot_id: int
    points: int
    restored: int
    expires_at: str | None  #: the lot's
    origin: int  #: the lot's origin (see :attr:`LedgerRow.origin`), else the lot itself


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A receipt as central knows it, keyed by (store, receipt id)."""

    store: str
    receipt_id: str
    state: ReceiptState
    mode: Literal["online", "offline"] = "online"
    customer_id: str | None = None
    receipt: bytes | None = None  #: serialized tillgate.v1.Receipt
    calculation: bytes | None = None  #: serialized tillgate.v1.Calculation (the last one)
    calculated_at: str | None = None
    fiscal: str | None = None  #: canonical JSON of the confirming fiscal data
    confirmation: bytes | None = None  #: serialized ConfirmReply, the kept confirmation
    confirmed_at: str | None = None
    due: int = 0
    refunded: int = 0  #: money refunded so far


@dataclass(frozen=True, slots=True)
class KeptRequest:
    """A kept answer: the method, the request's fingerprint and the serialized reply."""

    method: str
    fingerprint: bytes
    reply: bytes


@dataclass(frozen=True, slots=True)
class KeptRefund:
    """A refund kept by (store, refund id): its identity and answer."""

    refund_id: str
    receipt_id: str
    request: bytes  #: fingerprint of the refund (request without context)
    reply: bytes


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """An uploaded journal entry as recorded (applied, or rejected for review)."""

    store: str
    receipt_id: str
    seq: int
    status: Literal["applied", "rejected"]
    message: str
    entry: bytes
    at: str


class Transaction(Protocol):
    """The unit of work processing code talks to (see module docstring). Times are the
    fixed-width UTC text of :func:`central.clock.to_text`, so text order is time order."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested unit: everything inside is undone if the block raises."""
        ...

    # settings
    def setting(self, key: str) -> str | None:
        """A central setting, None when unset."""
        ...

    def set_setting(self, key: str, value: str) -> None:
        """Set a central setting."""
        ...

    def settings(self) -> dict[str, str]:
        """Every setting."""
        ...

    # documents and the sync feed
    def document(self, kind: str, doc_id: str) -> StoredDocument | None:
        """One document or tombstone."""
        ...

    def documents(self, kind: str) -> Iterator[StoredDocument]:
        """The live documents of a kind, by id."""
        ...

    def put_document(
        self, kind: str, doc_id: str, raw: Mapping[str, Any] | None, body: bytes | None, at: str
    ) -> int:
        """Store a document (``raw=None``: a tombstone) under the next version; returns it."""
        ...

    def head_version(self) -> int:
        """The last sync version given out (0: nothing stored yet)."""
        ...

    def changes_after(self, version: int, limit: int) -> list[StoredDocument]:
        """Documents and tombstones changed after ``version``, in version order."""
        ...

    def live_after(self, version: int, limit: int) -> list[StoredDocument]:
        """Live documents with a version above ``version``, in version order."""
        ...

    def compact_tombstones(self, before: str) -> int:
        """Drop tombstones changed before ``before``; returns the highest version dropped."""
        ...

    # customers
    def find_customer(self, kind: str, value: str) -> str | None:
        """A customer id by card, phone digits or token."""
        ...

    def set_customer_keys(self, customer_id: str, keys: Sequence[tuple[str, str]]) -> None:
        """Replace a customer's lookup keys."""
        ...

    def counters(self, customer_id: str) -> dict[str, int]:
        """A customer's counters."""
        ...

    def set_counter(self, customer_id: str, name: str, value: int) -> None:
        """Set one counter."""
        ...

    def purchases(self, customer_id: str) -> int:
        """Confirmed purchases so far."""
        ...

    def set_purchases(self, customer_id: str, purchases: int) -> None:
        """Set the confirmed purchases count."""
        ...

    def mark_seen(self, store: str, customer_id: str, at: str) -> None:
        """Note that a store saw the customer (the sync filter's ``seen_days``)."""
        ...

    def seen_since(self, store: str, since: str) -> set[str]:
        """Customers a store saw at or after ``since``."""
        ...

    def seen_after_version(self, store: str, version: int, since: str) -> set[str]:
        """Customers a store saw (at or after ``since``) while the head was ``version`` or later."""
        ...

    def add_purchased_item(self, customer_id: str, sku: str, month: str, quantity: int) -> None:
        """Add bought quantity (thousandths) to a customer's month."""
        ...

    def purchased_items(self, customer_id: str, month: str) -> dict[str, int]:
        """Quantities a customer bought in a month, by sku."""
        ...

    def receipt_totals(self, since: str, until: str) -> dict[str, int]:
        """Per customer: due less refunds of receipts confirmed in (since, until]."""
        ...

    def record_status_change(
        self, customer_id: str, system: str, value: str | None, source: str, at: str
    ) -> None:
        """Record a status change and its source (import, csv, rule:ID, manual)."""
        ...

    def status_changes(self, customer_id: str) -> list[dict[str, Any]]:
        """A customer's recorded status changes, oldest first."""
        ...

    # points ledger
    def add_ledger(self, row: LedgerRow) -> int:
        """Append a ledger row; returns its id."""
        ...

    def ledger(self, customer_id: str) -> list[LedgerRow]:
        """A customer's ledger, oldest first."""
        ...

    def ledger_sum(self, customer_id: str) -> int:
        """The sum of a customer's ledger rows."""
        ...

    def consumable_lots(self, customer_id: str, limit: int) -> list[LedgerRow]:
        """Active lots with points left, in consumption order."""
        ...

    def receipt_lots(self, customer_id: str, store: str, receipt_id: str) -> list[LedgerRow]:
        """A receipt's accrual lots with points left, then restored lots carrying them."""
        ...

    def waiting_points(self, customer_id: str) -> int:
        """Points in lots still waiting for activation."""
        ...

    def lot_points(self, customer_id: str) -> int:
        """Points left in active lots."""
        ...

    def set_lot_remaining(self, row_id: int, remaining: int) -> None:
        """Set a lot's unconsumed points."""
        ...

    def activate_lot(self, row_id: int) -> None:
        """Mark a lot spendable."""
        ...

    def lots_due(self, now: str, customer_id: str | None = None) -> list[LedgerRow]:
        """Lots whose activation or expiry time has come."""
        ...

    def add_lot_use(self, row_id: int, lot_id: int, points: int) -> None:
        """Record that ledger row ``row_id`` took ``points`` from lot ``lot_id``."""
        ...

    def redemption_uses(self, customer_id: str, store: str, receipt_id: str) -> list[LotUse]:
        """What a receipt's redemption took from each lot, latest-expiring lot first (lots
        that never expire first of all)."""
        ...

    def reversal_uses(self, origin: int) -> list[LotUse]:
        """What refunds of accrual lot ``origin``'s receipt took back from lots not carrying
        that receipt's points (points it had spent, paid back from others), with points
        not yet given back, latest-expiring lot first. Empty when ``origin`` is no accrual."""
        ...

    def restore_use(self, row_id: int, lot_id: int, points: int) -> None:
        """Count ``points`` more of a use as given back."""
        ...

    def accrual_standing(
        self, customer_id: str, store: str, receipt_id: str
    ) -> tuple[int, int, int]:
        """A receipt's accrual: (points accrued, expired from its lots or from restored lots
        carrying its points, reversed by refunds)."""
        ...

    # receipts, refunds, kept requests, journal
    def receipt(self, store: str, receipt_id: str) -> ReceiptRecord | None:
        """A receipt by (store, receipt id)."""
        ...

    def receipts_with_id(self, receipt_id: str) -> list[ReceiptRecord]:
        """The receipts with this id in any store, by store."""
        ...

    def put_receipt(self, record: ReceiptRecord) -> None:
        """Insert or replace a receipt."""
        ...

    def receipts(self) -> list[ReceiptRecord]:
        """Every receipt, by store and id."""
        ...

    def refunded_lines(self, store: str, receipt_id: str) -> dict[int, int]:
        """Quantities refunded so far, by line n."""
        ...

    def add_refunded_lines(self, store: str, receipt_id: str, lines: Mapping[int, int]) -> None:
        """Add refunded quantities."""
        ...

    def refund(self, store: str, refund_id: str) -> KeptRefund | None:
        """A kept refund by (store, refund id)."""
        ...

    def put_refund(self, store: str, refund: KeptRefund, at: str) -> None:
        """Keep a refund and its answer."""
        ...

    def replace_refund_reply(self, store: str, refund_id: str, reply: bytes) -> None:
        """Replace the kept answer of a refund (the one the store gave its register)."""
        ...

    def kept_request(self, store: str, request_id: str) -> KeptRequest | None:
        """The kept answer of (store, request id)."""
        ...

    def keep_request(self, store: str, request_id: str, kept: KeptRequest, at: str) -> None:
        """Keep an answer."""
        ...

    def prune_requests(self, before: str) -> int:
        """Forget kept answers older than ``before``."""
        ...

    def journal_entry(self, store: str, receipt_id: str, seq: int) -> JournalRecord | None:
        """An uploaded journal entry by its key."""
        ...

    def put_journal_entry(self, record: JournalRecord) -> None:
        """Record an uploaded journal entry (applied or rejected)."""
        ...

    def forget_journal_entry(self, store: str, receipt_id: str, seq: int) -> None:
        """Drop a kept entry (a rejected one sent again is judged again)."""
        ...

    def journal(self, status: str | None = None) -> list[JournalRecord]:
        """Uploaded entries, optionally of one status."""
        ...


class Repository(Protocol):
    """A storage backend: units of work over one database."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A write unit of work: committed at the end of the block, undone on an exception."""
        ...

    def read(self) -> AbstractContextManager[Transaction]:
        """A read-only unit of work over one consistent snapshot."""
        ...

    def close(self) -> None:
        """Release the backend's connections."""
        ...


class SQLiteRepository:
    """The SQLite backend. Opening it creates or migrates the database in place."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        try:
            migrate(self._connection())
        except sqlite3.Error as exc:
            self.close()
            raise StorageError(f"{self.path}: cannot open the central database: {exc}") from exc
        except StorageError:
            self.close()
            raise

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30.0
                )
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot open the central database: {exc}") from exc
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                conn.close()
                raise StorageError(f"{self.path}: cannot open the central database: {exc}") from exc
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write unit of work: committed when the block ends, rolled back on an exception."""
        conn = self._connection()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot start a transaction: {exc}") from exc
            try:
                yield SQLiteTransaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise StorageError(f"{self.path}: commit failed: {exc}") from exc

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A read-only unit of work over one consistent snapshot."""
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            yield SQLiteTransaction(conn)
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this repository opened."""
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def _dumps(value: Any) -> str:
    return canonical_json(value).decode()


def _journal_record(row: Any) -> JournalRecord:
    return JournalRecord(
        store=row[0],
        receipt_id=row[1],
        seq=int(row[2]),
        status=row[3],
        message=row[4],
        entry=bytes(row[5]),
        at=row[6],
    )


class SQLiteTransaction:
    """:class:`Transaction` over one SQLite connection inside an open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._conn.execute("SAVEPOINT unit")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO unit")
            self._conn.execute("RELEASE unit")
            raise
        self._conn.execute("RELEASE unit")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    # settings -----------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        row = self._one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def settings(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._all("SELECT key, value FROM settings")}

    # documents ----------------------------------------------------------------------------
    _DOC_COLUMNS = "kind, id, raw, body, deleted, version, changed_at"

    @staticmethod
    def _document(row: Any) -> StoredDocument:
        return StoredDocument(
            kind=row[0],
            id=row[1],
            raw=json.loads(row[2]) if row[2] is not None else None,
            body=row[3].encode() if row[3] is not None else None,
            deleted=bool(row[4]),
            version=int(row[5]),
            changed_at=row[6],
        )

    def document(self, kind: str, doc_id: str) -> StoredDocument | None:
        row = self._one(
            f"SELECT {self._DOC_COLUMNS} FROM documents WHERE kind = ? AND id = ?",  # noqa: S608 -- fixed column list
            (kind, doc_id),
        )
        return None if row is None else self._document(row)

    def documents(self, kind: str) -> Iterator[StoredDocument]:
        cursor = self._conn.execute(
            f"SELECT {self._DOC_COLUMNS} FROM documents WHERE kind = ? AND deleted = 0 ORDER BY id",  # noqa: S608 -- fixed column list
            (kind,),
        )
        for row in cursor:
            yield self._document(row)

    def head_version(self) -> int:
        value = self.setting("sync.head")
        return int(value) if value else 0

    def put_document(
        self, kind: str, doc_id: str, raw: Mapping[str, Any] | None, body: bytes | None, at: str
    ) -> int:
        """Store (or tombstone, with ``raw=None``) a document under the next sync version."""
        version = self.head_version() + 1
        self.set_setting("sync.head", str(version))
        self._conn.execute(
            "INSERT INTO documents (kind, id, raw, body, deleted, version, changed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET "
            "raw = excluded.raw, body = excluded.body, deleted = excluded.deleted, "
            "version = excluded.version, changed_at = excluded.changed_at",
            (
                kind,
                doc_id,
                None if raw is None else _dumps(raw),
                None if body is None else body.decode(),
                int(raw is None),
                version,
                at,
            ),
        )
        return version

    def changes_after(self, version: int, limit: int) -> list[StoredDocument]:
        rows = self._all(
            f"SELECT {self._DOC_COLUMNS} FROM documents WHERE version > ? ORDER BY version LIMIT ?",  # noqa: S608 -- fixed column list
            (version, limit),
        )
        return [self._document(row) for row in rows]

    def live_after(self, version: int, limit: int) -> list[StoredDocument]:
        rows = self._all(
            f"SELECT {self._DOC_COLUMNS} FROM documents WHERE version > ? AND deleted = 0 "  # noqa: S608 -- fixed column list
            "ORDER BY version LIMIT ?",
            (version, limit),
        )
        return [self._document(row) for row in rows]

    def compact_tombstones(self, before: str) -> int:
        """Drop tombstones changed before ``before``; returns the highest version dropped."""
        row = self._one(
            "SELECT MAX(version) FROM documents WHERE deleted = 1 AND changed_at < ?", (before,)
        )
        highest = int(row[0]) if row and row[0] is not None else 0
        if highest:
            self._conn.execute(
                "DELETE FROM documents WHERE deleted = 1 AND changed_at < ?", (before,)
            )
        return highest

    # customers ----------------------------------------------------------------------------
    def find_customer(self, kind: str, value: str) -> str | None:
        row = self._one(
            "SELECT customer_id FROM customer_keys WHERE kind = ? AND value = ?", (kind, value)
        )
        return None if row is None else str(row[0])

    def set_customer_keys(self, customer_id: str, keys: Sequence[tuple[str, str]]) -> None:
        self._conn.execute("DELETE FROM customer_keys WHERE customer_id = ?", (customer_id,))
        self._conn.executemany(
            "INSERT INTO customer_keys (kind, value, customer_id) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, value) DO UPDATE SET customer_id = excluded.customer_id",
            [(kind, value, customer_id) for kind, value in keys],
        )

    def counters(self, customer_id: str) -> dict[str, int]:
        rows = self._all(
            "SELECT name, value FROM counters WHERE customer_id = ? ORDER BY name", (customer_id,)
        )
        return {str(name): int(value) for name, value in rows}

    def set_counter(self, customer_id: str, name: str, value: int) -> None:
        self._conn.execute(
            "INSERT INTO counters (customer_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (customer_id, name) DO UPDATE SET value = excluded.value",
            (customer_id, name, value),
        )

    def purchases(self, customer_id: str) -> int:
        row = self._one(
            "SELECT purchases FROM customer_state WHERE customer_id = ?", (customer_id,)
        )
        return 0 if row is None else int(row[0])

    def set_purchases(self, customer_id: str, purchases: int) -> None:
        self._conn.execute(
            "INSERT INTO customer_state (customer_id, purchases) VALUES (?, ?) "
            "ON CONFLICT (customer_id) DO UPDATE SET purchases = excluded.purchases",
            (customer_id, purchases),
        )

    def mark_seen(self, store: str, customer_id: str, at: str) -> None:
        self._conn.execute(
            "INSERT INTO customer_seen (store, customer_id, last_seen, seen_version) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (store, customer_id) DO UPDATE SET "
            "last_seen = excluded.last_seen, seen_version = excluded.seen_version",
            (store, customer_id, at, self.head_version()),
        )

    def seen_after_version(self, store: str, version: int, since: str) -> set[str]:
        rows = self._all(
            "SELECT customer_id FROM customer_seen WHERE store = ? AND seen_version >= ? "
            "AND last_seen >= ?",
            (store, version, since),
        )
        return {str(row[0]) for row in rows}

    def seen_since(self, store: str, since: str) -> set[str]:
        rows = self._all(
            "SELECT customer_id FROM customer_seen WHERE store = ? AND last_seen >= ?",
            (store, since),
        )
        return {str(row[0]) for row in rows}

    def add_purchased_item(self, customer_id: str, sku: str, month: str, quantity: int) -> None:
        self._conn.execute(
            "INSERT INTO purchased_items (customer_id, sku, month, quantity) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (customer_id, sku, month) DO UPDATE SET "
            "quantity = quantity + excluded.quantity",
            (customer_id, sku, month, quantity),
        )

    def purchased_items(self, customer_id: str, month: str) -> dict[str, int]:
        rows = self._all(
            "SELECT sku, quantity FROM purchased_items WHERE customer_id = ? AND month = ?",
            (customer_id, month),
        )
        return {str(sku): int(quantity) for sku, quantity in rows}

    def receipt_totals(self, since: str, until: str) -> dict[str, int]:
        rows = self._all(
            "SELECT customer_id, SUM(due - refunded) FROM receipts WHERE state = 'confirmed' "
            "AND customer_id IS NOT NULL AND confirmed_at > ? AND confirmed_at <= ? "
            "GROUP BY customer_id",
            (since, until),
        )
        return {str(cid): int(total) for cid, total in rows}

    def record_status_change(
        self, customer_id: str, system: str, value: str | None, source: str, at: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO status_changes (customer_id, system, value, source, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (customer_id, system, value, source, at),
        )

    def status_changes(self, customer_id: str) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT system, value, source, at FROM status_changes WHERE customer_id = ? "
            "ORDER BY id",
            (customer_id,),
        )
        return [
            {"system": system, "value": value, "source": source, "at": at}
            for system, value, source, at in rows
        ]

    # ledger -------------------------------------------------------------------------------
    _LEDGER_COLUMNS = (
        "id, customer_id, kind, points, store, receipt_id, reason, at, available_at, "
        "expires_at, remaining, activated, origin"
    )

    @staticmethod
    def _ledger_row(row: Any) -> LedgerRow:
        return LedgerRow(
            id=int(row[0]),
            customer_id=row[1],
            kind=row[2],
            points=int(row[3]),
            store=row[4],
            receipt_id=row[5],
            reason=row[6],
            at=row[7],
            available_at=row[8],
            expires_at=row[9],
            remaining=int(row[10]),
            activated=bool(row[11]),
            origin=None if row[12] is None else int(row[12]),
        )

    def add_ledger(self, row: LedgerRow) -> int:
        cursor = self._conn.execute(
            "INSERT INTO ledger (customer_id, kind, points, store, receipt_id, reason, at, "
            "available_at, expires_at, remaining, activated, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.customer_id,
                row.kind,
                row.points,
                row.store,
                row.receipt_id,
                row.reason,
                row.at,
                row.available_at,
                row.expires_at,
                row.remaining,
                int(row.activated),
                row.origin,
            ),
        )
        return int(cursor.lastrowid or 0)

    def ledger(self, customer_id: str) -> list[LedgerRow]:
        rows = self._all(
            f"SELECT {self._LEDGER_COLUMNS} FROM ledger WHERE customer_id = ? ORDER BY id",  # noqa: S608 -- fixed column list
            (customer_id,),
        )
        return [self._ledger_row(row) for row in rows]

    #: The ids of one receipt's accrual lots; parameters customer, store, receipt.
    _ACCRUAL_LOTS = (
        "SELECT id FROM ledger WHERE customer_id = ? AND store = ? AND receipt_id = ? "
        "AND kind = 'accrual'"
    )

    def ledger_sum(self, customer_id: str) -> int:
        row = self._one(
            "SELECT COALESCE(SUM(points), 0) FROM ledger WHERE customer_id = ?", (customer_id,)
        )
        return int(row[0])

    def consumable_lots(self, customer_id: str, limit: int) -> list[LedgerRow]:
        """Active lots with points left, in consumption order (soonest expiry, then oldest)."""
        rows = self._all(
            f"SELECT {self._LEDGER_COLUMNS} FROM ledger WHERE customer_id = ? "  # noqa: S608 -- fixed column list
            "AND remaining > 0 AND activated = 1 "
            "ORDER BY expires_at IS NULL, expires_at, id LIMIT ?",
            (customer_id, limit),
        )
        return [self._ledger_row(row) for row in rows]

    def receipt_lots(self, customer_id: str, store: str, receipt_id: str) -> list[LedgerRow]:
        """The accrual lots of one receipt with points left (active or not), then the
        restored lots carrying their points."""
        rows = self._all(
            f"SELECT {self._LEDGER_COLUMNS} FROM ledger WHERE customer_id = ? "  # noqa: S608 -- fixed column list
            f"AND remaining > 0 AND (id IN ({self._ACCRUAL_LOTS}) "
            f"OR origin IN ({self._ACCRUAL_LOTS})) ORDER BY origin IS NOT NULL, id",
            (customer_id, customer_id, store, receipt_id, customer_id, store, receipt_id),
        )
        return [self._ledger_row(row) for row in rows]

    def waiting_points(self, customer_id: str) -> int:
        """Points in lots still waiting for activation."""
        row = self._one(
            "SELECT COALESCE(SUM(remaining), 0) FROM ledger "
            "WHERE customer_id = ? AND activated = 0",
            (customer_id,),
        )
        return int(row[0])

    def lot_points(self, customer_id: str) -> int:
        row = self._one(
            "SELECT COALESCE(SUM(remaining), 0) FROM ledger "
            "WHERE customer_id = ? AND activated = 1 AND remaining > 0",
            (customer_id,),
        )
        return int(row[0])

    def set_lot_remaining(self, row_id: int, remaining: int) -> None:
        self._conn.execute("UPDATE ledger SET remaining = ? WHERE id = ?", (remaining, row_id))

    def activate_lot(self, row_id: int) -> None:
        self._conn.execute("UPDATE ledger SET activated = 1 WHERE id = ?", (row_id,))

    def lots_due(self, now: str, customer_id: str | None = None) -> list[LedgerRow]:
        """Lots whose activation or expiry time has come (for one customer or all)."""
        where = "" if customer_id is None else " AND customer_id = ?"
        params: tuple[str, ...] = (now,) if customer_id is None else (now, customer_id)
        pending = self._all(
            f"SELECT {self._LEDGER_COLUMNS} FROM ledger "  # noqa: S608 -- fixed column list
            f"WHERE activated = 0 AND available_at <= ?{where}",
            params,
        )
        expiring = self._all(
            f"SELECT {self._LEDGER_COLUMNS} FROM ledger "  # noqa: S608 -- fixed column list
            f"WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?{where}",
            params,
        )
        rows = {int(row[0]): row for row in (*pending, *expiring)}
        return [self._ledger_row(rows[key]) for key in sorted(rows)]

    #: A lot use's columns (see :class:`LotUse`), from ``lot_uses AS u`` and its ``ledger AS lot``.
    _LOT_USE_COLUMNS = (
        "SELECT u.row_id, u.lot_id, u.points, u.restored, lot.expires_at, "
        "COALESCE(lot.origin, lot.id)"
    )
    #: Points given back come from the latest-expiring lot first: consumption undone in reverse.
    _LOT_USE_ORDER = "ORDER BY lot.expires_at IS NOT NULL, lot.expires_at DESC, u.lot_id DESC"

    def _lot_uses(self, sql: str, params: tuple[Any, ...]) -> list[LotUse]:
        return [LotUse(int(a), int(b), int(c), int(d), e, int(f))
                for a, b, c, d, e, f in self._all(sql, params)]

    def add_lot_use(self, row_id: int, lot_id: int, points: int) -> None:
        self._conn.execute(
            "INSERT INTO lot_uses (row_id, lot_id, points) VALUES (?, ?, ?) "
            "ON CONFLICT (row_id, lot_id) DO UPDATE SET points = points + excluded.points",
            (row_id, lot_id, points),
        )

    def redemption_uses(self, customer_id: str, store: str, receipt_id: str) -> list[LotUse]:
        return self._lot_uses(
            f"{self._LOT_USE_COLUMNS} "
            "FROM ledger AS r JOIN lot_uses AS u ON u.row_id = r.id "
            "JOIN ledger AS lot ON lot.id = u.lot_id "
            "WHERE r.customer_id = ? AND r.store = ? AND r.receipt_id = ? "
            "AND r.kind = 'redemption' "
            f"{self._LOT_USE_ORDER}",
            (customer_id, store, receipt_id),
        )

    def reversal_uses(self, origin: int) -> list[LotUse]:
        return self._lot_uses(
            f"{self._LOT_USE_COLUMNS} "  # noqa: S608 -- fixed column list
            "FROM ledger AS o JOIN ledger AS r ON r.customer_id = o.customer_id "
            "AND r.store = o.store AND r.receipt_id = o.receipt_id "
            "AND r.kind = 'refund' AND r.points < 0 "
            "JOIN lot_uses AS u ON u.row_id = r.id "
            "JOIN ledger AS lot ON lot.id = u.lot_id "
            "WHERE o.id = ? AND o.kind = 'accrual' AND u.points > u.restored "
            "AND COALESCE(lot.origin, lot.id) NOT IN ("
            "SELECT a.id FROM ledger AS a WHERE a.customer_id = o.customer_id "
            "AND a.store = o.store AND a.receipt_id = o.receipt_id AND a.kind = 'accrual') "
            f"{self._LOT_USE_ORDER}",
            (origin,),
        )

    def restore_use(self, row_id: int, lot_id: int, points: int) -> None:
        self._conn.execute(
            "UPDATE lot_uses SET restored = restored + ? WHERE row_id = ? AND lot_id = ?",
            (points, row_id, lot_id),
        )

    def accrual_standing(
        self, customer_id: str, store: str, receipt_id: str
    ) -> tuple[int, int, int]:
        where = "customer_id = ? AND store = ? AND receipt_id = ?"
        params = (customer_id, store, receipt_id)
        accrued = self._one(
            f"SELECT COALESCE(SUM(points), 0) FROM ledger WHERE {where} AND kind = 'accrual'",  # noqa: S608 -- fixed text
            params,
        )
        expired = self._one(
            "SELECT COALESCE(SUM(u.points), 0) FROM ledger AS lot "  # noqa: S608 -- fixed text
            "JOIN lot_uses AS u ON u.lot_id = lot.id "
            "JOIN ledger AS e ON e.id = u.row_id AND e.kind = 'expiry' "
            f"WHERE lot.customer_id = ? AND (lot.id IN ({self._ACCRUAL_LOTS}) "
            f"OR lot.origin IN ({self._ACCRUAL_LOTS}))",
            (customer_id, *params, *params),
        )
        reversed_ = self._one(
            f"SELECT COALESCE(-SUM(points), 0) FROM ledger WHERE {where} "  # noqa: S608 -- fixed text
            "AND kind = 'refund' AND points < 0",
            params,
        )
        return int(accrued[0]), int(expired[0]), int(reversed_[0])

    # receipts -----------------------------------------------------------------------------
    _RECEIPT_COLUMNS = (
        "store, receipt_id, state, mode, customer_id, receipt, calculation, calculated_at, "
        "fiscal, confirmation, confirmed_at, due, refunded"
    )

    @staticmethod
    def _receipt_record(row: Any) -> ReceiptRecord:
        return ReceiptRecord(*row)

    def receipts_with_id(self, receipt_id: str) -> list[ReceiptRecord]:
        rows = self._all(
            f"SELECT {self._RECEIPT_COLUMNS} FROM receipts WHERE receipt_id = ? ORDER BY store",  # noqa: S608 -- fixed column list
            (receipt_id,),
        )
        return [self._receipt_record(row) for row in rows]

    def receipt(self, store: str, receipt_id: str) -> ReceiptRecord | None:
        row = self._one(
            f"SELECT {self._RECEIPT_COLUMNS} FROM receipts WHERE store = ? AND receipt_id = ?",  # noqa: S608 -- fixed column list
            (store, receipt_id),
        )
        return None if row is None else self._receipt_record(row)

    def put_receipt(self, record: ReceiptRecord) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO receipts ({self._RECEIPT_COLUMNS}) "  # noqa: S608 -- fixed column list
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.store,
                record.receipt_id,
                record.state,
                record.mode,
                record.customer_id,
                record.receipt,
                record.calculation,
                record.calculated_at,
                record.fiscal,
                record.confirmation,
                record.confirmed_at,
                record.due,
                record.refunded,
            ),
        )

    def receipts(self) -> list[ReceiptRecord]:
        rows = self._all(
            f"SELECT {self._RECEIPT_COLUMNS} FROM receipts ORDER BY store, receipt_id"  # noqa: S608 -- fixed column list
        )
        return [self._receipt_record(row) for row in rows]

    def refunded_lines(self, store: str, receipt_id: str) -> dict[int, int]:
        rows = self._all(
            "SELECT n, quantity FROM refunded_lines WHERE store = ? AND receipt_id = ?",
            (store, receipt_id),
        )
        return {int(n): int(quantity) for n, quantity in rows}

    def add_refunded_lines(self, store: str, receipt_id: str, lines: Mapping[int, int]) -> None:
        self._conn.executemany(
            "INSERT INTO refunded_lines (store, receipt_id, n, quantity) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (store, receipt_id, n) DO UPDATE SET "
            "quantity = quantity + excluded.quantity",
            [(store, receipt_id, n, quantity) for n, quantity in lines.items()],
        )

    def refund(self, store: str, refund_id: str) -> KeptRefund | None:
        row = self._one(
            "SELECT refund_id, receipt_id, request, reply FROM refunds "
            "WHERE store = ? AND refund_id = ?",
            (store, refund_id),
        )
        return None if row is None else KeptRefund(row[0], row[1], bytes(row[2]), bytes(row[3]))

    def put_refund(self, store: str, refund: KeptRefund, at: str) -> None:
        self._conn.execute(
            "INSERT INTO refunds (store, refund_id, receipt_id, request, reply, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (store, refund.refund_id, refund.receipt_id, refund.request, refund.reply, at),
        )

    def replace_refund_reply(self, store: str, refund_id: str, reply: bytes) -> None:
        self._conn.execute(
            "UPDATE refunds SET reply = ? WHERE store = ? AND refund_id = ?",
            (reply, store, refund_id),
        )

    def kept_request(self, store: str, request_id: str) -> KeptRequest | None:
        row = self._one(
            "SELECT method, fingerprint, reply FROM requests WHERE store = ? AND request_id = ?",
            (store, request_id),
        )
        return None if row is None else KeptRequest(row[0], bytes(row[1]), bytes(row[2]))

    def keep_request(self, store: str, request_id: str, kept: KeptRequest, at: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO requests (store, request_id, method, fingerprint, reply, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (store, request_id, kept.method, kept.fingerprint, kept.reply, at),
        )

    def prune_requests(self, before: str) -> int:
        """Forget kept answers older than ``before``; returns how many."""
        cursor = self._conn.execute("DELETE FROM requests WHERE at < ?", (before,))
        return cursor.rowcount

    def journal_entry(self, store: str, receipt_id: str, seq: int) -> JournalRecord | None:
        row = self._one(
            "SELECT store, receipt_id, seq, status, message, entry, at FROM journal "
            "WHERE store = ? AND receipt_id = ? AND seq = ?",
            (store, receipt_id, seq),
        )
        return None if row is None else _journal_record(row)

    def put_journal_entry(self, record: JournalRecord) -> None:
        self._conn.execute(
            "INSERT INTO journal (store, receipt_id, seq, status, message, entry, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.store,
                record.receipt_id,
                record.seq,
                record.status,
                record.message,
                record.entry,
                record.at,
            ),
        )

    def forget_journal_entry(self, store: str, receipt_id: str, seq: int) -> None:
        self._conn.execute(
            "DELETE FROM journal WHERE store = ? AND receipt_id = ? AND seq = ?",
            (store, receipt_id, seq),
        )

    def journal(self, status: str | None = None) -> list[JournalRecord]:
        sql = "SELECT store, receipt_id, seq, status, message, entry, at FROM journal"
        params: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        rows = self._all(sql + " ORDER BY store, seq", params)
        return [_journal_record(row) for row in rows]
