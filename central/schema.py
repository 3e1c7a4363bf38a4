"""The central database schema as ordered migration steps.

Theory of operation: the database carries ``schema_version`` (one row). :func:`migrate`
runs, in one transaction each, every step whose number is above the stored version, so an
existing database is upgraded in place and a new one is built by the same path. Steps are
never edited once released; a change is a new step appended to :data:`MIGRATIONS`.
The statements are plain SQL that a PostgreSQL backend can mirror step by step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tillgate.errors import StorageError

_STEP_1 = """
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Every synced document: catalog items, customers, promotions, coupons, favorites sets,
-- status rules. raw = the document as loaded or last changed; body = as synced (customers
-- carry their current balance, counters and purchases). A deleted document is a tombstone.
CREATE TABLE documents (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    raw        TEXT,
    body       TEXT,
    deleted    INTEGER NOT NULL DEFAULT 0,
    version    INTEGER NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX documents_by_version ON documents (version);
CREATE TABLE customer_keys (
    kind        TEXT NOT NULL,          -- card, phone (digits only), token
    value       TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX customer_keys_by_customer ON customer_keys (customer_id);
CREATE TABLE customer_state (
    customer_id TEXT PRIMARY KEY,
    purchases   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE counters (
    customer_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (customer_id, name)
);
-- One row per points movement; the balance is always the sum. Positive rows are lots that
-- later negative rows consume oldest first (remaining); accruals may wait (available_at)
-- and expire (expires_at).
CREATE TABLE ledger (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id  TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN
                   ('accrual', 'redemption', 'refund', 'adjustment', 'expiry')),
    points       INTEGER NOT NULL,
    store        TEXT NOT NULL DEFAULT '',
    receipt_id   TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT '',
    at           TEXT NOT NULL,
    available_at TEXT,
    expires_at   TEXT,
    remaining    INTEGER NOT NULL DEFAULT 0,
    activated    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX ledger_by_customer ON ledger (customer_id, id);
CREATE TABLE receipts (
    store         TEXT NOT NULL,
    receipt_id    TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('open', 'confirmed', 'cancelled')),
    mode          TEXT NOT NULL DEFAULT 'online',
    customer_id   TEXT,
    receipt       BLOB,
    calculation   BLOB,
    calculated_at TEXT,
    fiscal        TEXT,
    confirmation  BLOB,
    confirmed_at  TEXT,
    due           INTEGER NOT NULL DEFAULT 0,
    refunded      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (store, receipt_id)
);
CREATE TABLE refunds (
    store      TEXT NOT NULL,
    refund_id  TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    request    BLOB NOT NULL,
    reply      BLOB NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (store, refund_id)
);
CREATE TABLE refunded_lines (
    store      TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    n          INTEGER NOT NULL,
    quantity   INTEGER NOT NULL,
    PRIMARY KEY (store, receipt_id, n)
);
-- Kept answers by (store, request id): a repeat gets the first answer.
CREATE TABLE requests (
    store       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    method      TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    reply       BLOB NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (store, request_id)
);
-- Uploaded journal entries: applied once each; rejected ones kept for review.
CREATE TABLE journal (
    store      TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    message    TEXT NOT NULL DEFAULT '',
    entry      BLOB NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (store, receipt_id, seq)
);
CREATE TABLE customer_seen (
    store       TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (store, customer_id)
);
"""

_STEP_2 = """
-- Units bought per customer, sku and month: favorites candidates are refreshed from it.
CREATE TABLE purchased_items (
    customer_id TEXT NOT NULL,
    sku         TEXT NOT NULL,
    month       TEXT NOT NULL,          -- YYYY-MM, store-local
    quantity    INTEGER NOT NULL,       -- thousandths
    PRIMARY KEY (customer_id, sku, month)
);
-- Every status change with its source (import, rule, manual).
CREATE TABLE status_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    system      TEXT NOT NULL,
    value       TEXT,
    source      TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX receipts_by_customer ON receipts (customer_id, confirmed_at);
"""

_STEP_3 = """
-- Keep per-call ledger work independent of a customer's history length: the sum reads a
-- covering index, pending and expiring lots have small partial indexes, consumption
-- walks lots in their consumption order.
CREATE INDEX ledger_points ON ledger (customer_id, points);
CREATE INDEX ledger_pending ON ledger (customer_id, available_at) WHERE activated = 0;
CREATE INDEX ledger_pending_all ON ledger (available_at) WHERE activated = 0;
CREATE INDEX ledger_expiring ON ledger (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX ledger_consumable ON ledger (customer_id, expires_at IS NULL, expires_at, id)
    WHERE remaining > 0 AND activated = 1;
"""

_STEP_4 = """
-- The sync version current when a store last saw a customer: a delta pull with a customer
-- filter also sends customers that came into the store's scope after its checkpoint.
ALTER TABLE customer_seen ADD COLUMN seen_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX customer_seen_by_version ON customer_seen (store, seen_version);
"""

_STEP_5 = """
-- This database's identity, sent with every sync page: the edge binds its cache and its
-- waiting journal to it, so a store pointed at another central never mixes the two.
INSERT INTO settings (key, value) VALUES ('central.id', lower(hex(randomblob(16))));
"""

_STEP_6 = """
-- Which lots each negative ledger row took its points from: a refund gives redeemed points
-- back with the expiry of the lots they came from, and takes back no accrual that expired.
-- restored: points of the use a refund gave back since.
CREATE TABLE lot_uses (
    row_id   INTEGER NOT NULL,
    lot_id   INTEGER NOT NULL,
    points   INTEGER NOT NULL,
    restored INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (row_id, lot_id)
);
CREATE INDEX lot_uses_by_lot ON lot_uses (lot_id);
CREATE INDEX ledger_by_receipt ON ledger (customer_id, store, receipt_id);
-- Expiries before this step name their lot in the reason only ("lot 17 expired").
INSERT INTO lot_uses (row_id, lot_id, points)
    SELECT e.id, CAST(substr(e.reason, 5, length(e.reason) - 12) AS INTEGER), -e.points
    FROM ledger AS e
    WHERE e.kind = 'expiry' AND e.reason GLOB 'lot [0-9]* expired' AND e.points < 0;
"""

_STEP_7 = """
-- Receipt ids are unique in the chain: a refund at another store finds the sale by its id.
CREATE INDEX receipts_by_id ON receipts (receipt_id);
"""

_STEP_8 = """
-- The accrual lot whose points a restored refund lot carries (its id, or the origin of a
-- restored lot it came from): what expires from it no longer counts as that receipt's, so
-- refunding the receipt does not take those points a second time. NULL: none or unknown.
ALTER TABLE ledger ADD COLUMN origin INTEGER;
CREATE INDEX ledger_by_origin ON ledger (origin) WHERE origin IS NOT NULL;
-- Lots restored before this step carry their origin's expiry but not its id: it is set
-- where exactly one lot their receipt's redemption gave back has that expiry; an
-- ambiguous lot keeps NULL (counted as before) rather than being given a wrong origin.
UPDATE ledger SET origin = (
    SELECT MIN(u.lot_id)
    FROM ledger AS r
    JOIN lot_uses AS u ON u.row_id = r.id
    JOIN ledger AS lot ON lot.id = u.lot_id
    WHERE r.customer_id = ledger.customer_id AND r.store = ledger.store
      AND r.receipt_id = ledger.receipt_id AND r.kind = 'redemption' AND u.restored > 0
      AND lot.expires_at = ledger.expires_at
    HAVING COUNT(DISTINCT u.lot_id) = 1
)
WHERE kind = 'refund' AND points > 0 AND expires_at IS NOT NULL;
"""

#: Ordered migration steps; step i brings the schema to version i.
MIGRATIONS: Sequence[str] = (
    _STEP_1, _STEP_2, _STEP_3, _STEP_4, _STEP_5, _STEP_6, _STEP_7, _STEP_8,
)

#: The settings key of the database's identity (see step 5).
CENTRAL_ID = "central.id"

#: The schema version this code expects.
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The stored schema version, 0 for a new database."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    found = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(found[0]) if found else 0


def migrate(conn: sqlite3.Connection, steps: Sequence[str] = MIGRATIONS) -> int:
    """Bring the database up to ``len(steps)``; returns the version it started from."""
    start = current_version(conn)
    if start > len(steps):
        raise StorageError(
            f"database schema version {start} is newer than this tillgate ({len(steps)})"
        )
    for number in range(start + 1, len(steps) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if number == 1:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            for statement in _statements(steps[number - 1]):
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StorageError(f"schema migration step {number} failed: {exc}") from exc
    return start


def _statements(script: str) -> list[str]:
    body = "\n".join(
        line for line in script.splitlines() if not line.lstrip().startswith("--")
    )
    return [part.strip() for part in body.split(";") if part.strip()]
