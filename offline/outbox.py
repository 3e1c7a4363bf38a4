"""The outbox: offline operations journaled for central, durable before the register hears back.

Theory of operation: :meth:`Outbox.append` writes one :class:`pb.JournalEntry` into the edge
database inside the caller's transaction (the processor journals and changes the receipt's
state together). The database runs ``synchronous=FULL``, so once the transaction commits the
entry survives a crash or a power cut, and only then does the daemon answer the register.

Entries carry a per-store ``seq`` from an AUTOINCREMENT key: increasing in journal order and
never reused. An entry stays ``pending`` until central acknowledges it: ``applied`` or
``duplicate`` mark it ``done``; ``rejected`` marks it ``rejected`` (logged, kept for review,
never retried, never blocking the queue). Central applies each (store, receipt_id, seq) once,
so resending a pending entry whose acknowledgement was lost is harmless; another entry under a
key central applied before (this database restored or made anew) is rejected, so it is kept
here with central's reason rather than taken as delivered.

What a confirm made here spent (``offline_redemptions``, ``offline_purchases``) counts in
offline pricing until a synced document holds it. An acknowledgement marks it ``acked_at``
(central has the entry's verdict: the customer's next sale may go to central again); an
applied one also names the sync version that holds it, after which a sync forgets it. A
rejected confirm is held by no version: the store really gave that sale, so it stays
counted here for as long as the entry is kept as rejected (:data:`REJECTED_CONFIRMS`), and
a requeue makes it unsent again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog

from offline.cache import META_CENTRAL, META_SYNC_VERSION
from offline.db import EdgeDatabase, holding_sync_lock
from protos import tillgate_pb2 as pb
from tillgate.errors import ConfigError

__all__ = [
    "META_OUTBOX_PENDING",
    "META_STORE",
    "REJECTED_CONFIRMS",
    "AckSummary",
    "Operation",
    "Outbox",
    "RejectedEntry",
    "claim_store",
]

log = structlog.get_logger("tillgate.offline.outbox")

#: meta key: how many entries are pending (kept with the rows, one transaction)
META_OUTBOX_PENDING = "outbox_pending"

#: meta key: the store the edge database belongs to (its entries carry it to central)
META_STORE = "store"

#: how long ``forget_central`` waits for a running pull to finish
FORGET_LOCK_WAIT_S = 5.0

Operation = Literal["calculate", "confirm", "cancel", "refund"]

#: SQL: the receipts whose confirm central rejected (kept for review): what they spent
#: stays counted at this store, no synced balance holds it.
REJECTED_CONFIRMS = (
    "SELECT receipt_id FROM outbox WHERE status = 'rejected' AND operation = 'confirm'"
)


def claim_store(db: EdgeDatabase, store: str) -> None:
    """Bind ``db`` to ``store`` before any entry is journaled or uploaded under it.

    Central refuses an entry uploaded by another store than the one it was made at, and a
    refused entry is never retried: a daemon whose ``store`` was edited while entries wait
    would lose them. So a database with entries of another store waiting is refused (with
    what to do); one with none waiting takes the new store, and its cache, synced for the
    old one, is pulled again from scratch.
    """
    owner = db.get_meta(META_STORE)
    if owner is None:  # a database from before stores were recorded: its entries tell
        rows = db.query("SELECT entry FROM outbox ORDER BY seq DESC LIMIT 1")
        if rows:
            owner = pb.JournalEntry.FromString(bytes(rows[0]["entry"])).store or None
    if owner == store:
        if db.get_meta(META_STORE) is None:
            with db.transaction():
                db.set_meta(META_STORE, store)
        return
    if owner is not None:
        waiting = int(
            db.query("SELECT count(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"]
        )
        if waiting:
            raise ConfigError(
                f"{db.path} holds {waiting} entries of store {owner!r} not yet uploaded to "
                f"central, which takes them from that store only: run with store = {owner!r} "
                "until `tillgate status` shows outbox.depth 0, then change it",
                key="store",
            )
        log.warning("store_changed", before=owner, after=store)
    with db.transaction() as conn:
        if owner is not None:
            conn.execute("DELETE FROM meta WHERE key = ?", (META_SYNC_VERSION,))
        db.set_meta(META_STORE, store)


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """An entry central rejected, as the store keeps it for review."""

    seq: int
    receipt_id: str
    operation: str
    message: str  #: central's reason
    central: str | None  #: the central it was journaled against (None: not known)


@dataclass(frozen=True, slots=True)
class AckSummary:
    """What one batch of acknowledgements changed."""

    done: int
    rejected: int
    unmatched: int  #: acks that named no pending entry of the batch (ignored)


class Outbox:
    """The journal of one store's offline operations in an :class:`EdgeDatabase`."""

    def __init__(
        self, db: EdgeDatabase, *, store: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock

    def append(
        self,
        receipt_id: str,
        operation: Operation,
        message: pb.OfflineCalculation | pb.OfflineConfirm | pb.CancelRequest | pb.OfflineRefund,
    ) -> pb.JournalEntry:
        """Journal one operation; durable when the enclosing transaction commits."""
        now = self.clock()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO outbox (receipt_id, operation, entry, created_at, central) "
                "VALUES (?, ?, x'', ?, (SELECT value FROM meta WHERE key = ?))",
                (receipt_id, operation, now, META_CENTRAL),
            )
            seq = cursor.lastrowid
            assert seq is not None
            entry = pb.JournalEntry(
                store=self.store,
                receipt_id=receipt_id,
                seq=seq,
                at=datetime.fromtimestamp(now, UTC).isoformat(),
            )
            getattr(entry, operation).CopyFrom(message)
            conn.execute(
                "UPDATE outbox SET entry = ? WHERE seq = ?", (entry.SerializeToString(), seq)
            )
            self._count_pending(conn, +1)
        return entry

    def _count_pending(self, conn: sqlite3.Connection, delta: int) -> None:
        # a counter kept in the same transactions as the rows, so that depth() costs one
        # lookup however long central has been away
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = CAST(value AS INTEGER) + ?",
            (META_OUTBOX_PENDING, str(max(0, delta)), delta),
        )

    def pending(self, limit: int) -> list[pb.JournalEntry]:
        """The oldest ``limit`` entries not yet acknowledged, in seq order."""
        return self.pending_batch(limit)[1]

    def pending_batch(self, limit: int) -> tuple[str, list[pb.JournalEntry]]:
        """The central the oldest pending entry was journaled against ("" when not known) and
        the oldest pending entries, up to ``limit``, journaled against that same one."""
        rows = self.db.query(
            "SELECT entry, central FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT ?",
            (limit,),
        )
        central = (rows[0]["central"] or "") if rows else ""
        entries = []
        for row in rows:
            if (row["central"] or "") != central:
                break
            entries.append(pb.JournalEntry.FromString(bytes(row["entry"])))
        return central, entries

    def record_acks(
        self, sent: Iterable[pb.JournalEntry], acks: Iterable[pb.EntryAck], *, version: int = 0
    ) -> AckSummary:
        """Apply central's acknowledgements of a batch (one transaction). ``version``: central's
        sync version with the batch applied (``UploadReply.version``; 0 when not told)."""
        by_key = {(entry.receipt_id, entry.seq): entry for entry in sent}
        done = rejected = unmatched = 0
        now = self.clock()
        with self.db.transaction() as conn:
            for ack in acks:
                entry = by_key.get((ack.receipt_id, ack.seq))
                if entry is None or ack.status not in ("applied", "duplicate", "rejected"):
                    unmatched += 1
                    continue
                status = "rejected" if ack.status == "rejected" else "done"
                changed = conn.execute(
                    "UPDATE outbox SET status = ?, ack_status = ?, ack_message = ?, acked_at = ? "
                    "WHERE seq = ? AND status = 'pending'",
                    (status, ack.status, ack.message, now, ack.seq),
                ).rowcount
                if not changed:
                    unmatched += 1
                    continue
                self._count_pending(conn, -1)
                if entry.WhichOneof("operation") == "confirm":
                    # applied: central's balance now includes this redemption, the next sync
                    # brings it; rejected: no version holds it (kept, see module docstring)
                    held_by = (version or None) if status == "done" else None
                    for table in ("offline_redemptions", "offline_purchases"):
                        conn.execute(
                            f"UPDATE {table} SET acked_at = ?, acked_version = ? "  # noqa: S608  # fixed table names
                            "WHERE receipt_id = ? AND acked_at IS NULL",
                            (now, held_by, entry.receipt_id),
                        )
                if status == "rejected":
                    rejected += 1
                    log.error(
                        "journal_entry_rejected",
                        receipt_id=ack.receipt_id,
                        seq=ack.seq,
                        operation=entry.WhichOneof("operation"),
                        message=ack.message,
                    )
                else:
                    done += 1
                    if ack.message:  # applied, with something the loyalty team should see
                        log.warning(
                            "journal_entry_note",
                            receipt_id=ack.receipt_id,
                            seq=ack.seq,
                            message=ack.message,
                        )
        return AckSummary(done, rejected, unmatched)

    def rejected(self) -> list[RejectedEntry]:
        """The entries central rejected, kept for review, in seq order."""
        rows = self.db.query(
            "SELECT seq, receipt_id, operation, ack_message, central FROM outbox "
            "WHERE status = 'rejected' ORDER BY seq"
        )
        return [
            RejectedEntry(int(row["seq"]), str(row["receipt_id"]), str(row["operation"]),
                          str(row["ack_message"] or ""), row["central"])
            for row in rows
        ]

    def requeue_rejected(
        self, seqs: Collection[int] = ()
    ) -> tuple[list[RejectedEntry], list[RejectedEntry]]:
        """Make rejected entries (all, or those of ``seqs``) pending again, so that they are
        sent once more: central judges a rejected entry again when it comes back. Returns the
        entries requeued and those left alone because they were journaled against another
        central than the one this store syncs from now (they can only be sent there)."""
        with self.db.transaction() as conn:
            bound = conn.execute(
                "SELECT value FROM meta WHERE key = ?", (META_CENTRAL,)
            ).fetchone()
            current = bound[0] if bound is not None else None
            chosen: list[RejectedEntry] = []
            foreign: list[RejectedEntry] = []
            for entry in self.rejected():
                if seqs and entry.seq not in seqs:
                    continue
                if entry.central is not None and entry.central != current:
                    foreign.append(entry)
                else:
                    chosen.append(entry)
            conn.executemany(
                "UPDATE outbox SET status = 'pending', ack_status = NULL, ack_message = NULL, "
                "acked_at = NULL WHERE seq = ?",
                [(entry.seq,) for entry in chosen],
            )
            _set_confirms_acked_at(conn, chosen, None)
            if chosen:
                self._count_pending(conn, len(chosen))
        return chosen, foreign

    def dismiss_rejected(self, seqs: Collection[int]) -> list[RejectedEntry]:
        """Close the rejected entries of ``seqs`` for good: their receipts were settled by hand
        at central (an adjustment), so they are never sent. Returns the entries dismissed.

        A dismissed entry is ``done`` (``ack_status`` ``dismissed``, central's reason kept)
        and purged like any other done entry. What a dismissed confirm spent stops counting
        once a sync that began after now has finished: that sync brings the adjustment made
        before it, so the sale counts here until central's balance holds it, then there."""
        now = self.clock()
        with self.db.transaction() as conn:
            chosen = [entry for entry in self.rejected() if entry.seq in seqs]
            conn.executemany(
                "UPDATE outbox SET status = 'done', ack_status = 'dismissed', acked_at = ? "
                "WHERE seq = ? AND status = 'rejected'",
                [(now, entry.seq) for entry in chosen],
            )
            _set_confirms_acked_at(conn, chosen, now)
        return chosen

    def forget_central(self, *, lock_wait_s: float = FORGET_LOCK_WAIT_S) -> int:
        """Unbind this store from the central its cache and journal belong to: every entry
        kept (waiting or rejected) may go to whichever central the store reaches next, and
        the cache is pulled again from scratch. For a central rebuilt from scratch, whose old
        database is gone. Returns the number of entries that were bound.

        Holds the sync lock while it clears the checkpoint, so that a pull running meanwhile
        cannot write its own back; raises :class:`offline.db.SyncBusyError` (naming the pid)
        when a pull still holds it after ``lock_wait_s``."""
        with holding_sync_lock(self.db.path, wait_s=lock_wait_s), \
                self.db.transaction() as conn:
            bound = conn.execute(
                "UPDATE outbox SET central = NULL WHERE central IS NOT NULL AND status != 'done'"
            ).rowcount
            conn.execute(
                "DELETE FROM meta WHERE key IN (?, ?)", (META_CENTRAL, META_SYNC_VERSION)
            )
        return bound

    def depth(self) -> int:
        """Entries waiting for central."""
        value = self.db.get_meta(META_OUTBOX_PENDING)
        return int(value) if value is not None else 0

    def oldest_age_s(self) -> float | None:
        """Age in seconds of the oldest entry waiting for central; None when none waits."""
        rows = self.db.query(
            "SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1"
        )
        return None if not rows else max(0.0, self.clock() - float(rows[0]["created_at"]))

    def has_pending(self, receipt_id: str) -> bool:
        """Whether an entry of this receipt still waits for central."""
        return bool(
            self.db.query(
                "SELECT 1 FROM outbox WHERE receipt_id = ? AND status = 'pending' LIMIT 1",
                (receipt_id,),
            )
        )

    def purge_done(self, older_than_s: float) -> int:
        """Forget acknowledged entries older than ``older_than_s`` (rejected ones are kept)."""
        with self.db.transaction() as conn:
            return conn.execute(
                "DELETE FROM outbox WHERE status = 'done' AND acked_at < ?",
                (self.clock() - older_than_s,),
            ).rowcount


def _set_confirms_acked_at(
    conn: sqlite3.Connection, entries: Sequence[RejectedEntry], acked_at: float | None
) -> None:
    """Give what the confirms among ``entries`` spent here a new ``acked_at`` (None: unsent
    again) and no acknowledged version: no synced document is known to hold it."""
    for table in ("offline_redemptions", "offline_purchases"):
        conn.executemany(
            f"UPDATE {table} SET acked_at = ?, acked_version = NULL "  # noqa: S608  # fixed table names
            "WHERE receipt_id = ?",
            [(acked_at, entry.receipt_id) for entry in entries if entry.operation == "confirm"],
        )
