"""Answers kept for 48 hours, across restarts, keyed by store and request ``id`` (§2.3).

A repeated ``id`` with the same request gets the kept answer without the work being done again;
the same ``id`` with a different request is a conflict. Answers are written with
``synchronous=FULL`` before the register sees them, so a kill after the answer left cannot
make a repeat do the work twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tillgate.errors import StorageError

KEEP_SECONDS = 48 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    store TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    digest TEXT NOT NULL,
    answer TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (store, id)
);
CREATE INDEX IF NOT EXISTS answers_at ON answers (at);
CREATE INDEX IF NOT EXISTS answers_receipt
    ON answers (store, type, json_extract(answer, '$.receipt_id'));
"""


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    digest: str
    answer: dict[str, Any]


class AnswerJournal:
    """The SQLite file of kept answers."""

    def __init__(self, path: Path, store: str, *, keep_seconds: int = KEEP_SECONDS) -> None:
        self._store = store
        self._keep = keep_seconds
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the answer journal: {exc}") from exc
        self.path = path

    def lookup(self, request_id: str, *, now: float | None = None) -> KeptAnswer | None:
        cutoff = (time.time() if now is None else now) - self._keep
        try:
            row = self._db.execute(
                "SELECT digest, answer FROM answers WHERE store = ? AND id = ? AND at >= ?",
                (self._store, request_id, cutoff),
            ).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot read the answer journal: {exc}") from exc
        return KeptAnswer(row[0], json.loads(row[1])) if row else None

    def receipt_answers(
        self, kind: str, receipt_id: str, *, now: float | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(request id, answer)`` of every kept answer to a ``kind`` request (``calculate``,
        ``confirm``) about ``receipt_id``, the first kept first: what a restarted daemon
        knows of a receipt (its last calculation's messages, whether it was confirmed)."""
        cutoff = (time.time() if now is None else now) - self._keep
        try:
            rows = self._db.execute(
                "SELECT id, answer FROM answers WHERE store = ? AND type = ?"
                " AND json_extract(answer, '$.receipt_id') = ? AND at >= ? ORDER BY at, rowid",
                (self._store, kind, receipt_id, cutoff),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot read the answer journal: {exc}") from exc
        return [(row[0], json.loads(row[1])) for row in rows]

    def keep(
        self,
        request_id: str,
        kind: str,
        digest: str,
        answer: dict[str, Any],
        *,
        now: float | None = None,
    ) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (store, id, type, digest, answer, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self._store,
                    request_id,
                    kind,
                    digest,
                    json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
                    time.time() if now is None else now,
                ),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot write the answer journal: {exc}") from exc

    def purge(self, *, now: float | None = None) -> int:
        """Forget answers older than the keeping period; returns how many."""
        cutoff = (time.time() if now is None else now) - self._keep
        cursor = self._db.execute("DELETE FROM answers WHERE at < ?", (cutoff,))
        return cursor.rowcount

    def close(self) -> None:
        self._db.close()
