"""The edge cache: the loyalty documents synced from central, as central sent them.

Theory of operation: every live document sits in ``documents`` as (kind, id, canonical JSON,
version), byte for byte what central's sync feed carried, so that :meth:`EdgeCache.content_hash`
equals central's hash over the same data. Customers are also indexed by card, phone digits
and app token in ``customer_keys``. Documents are parsed with the loyalty parsers when a
receipt needs them (catalog items by the receipt's skus, one customer); promotions are parsed
all at once into an in-memory :class:`loyalty.PromotionIndex` that is rebuilt only when the
promotions generation (a counter in ``meta`` bumped by every sync that touches a promotion)
moves, never per receipt.

A snapshot is written into ``<table>_shadow`` tables, page by page, and swapped in with table
renames in one transaction on its last page: a process killed mid-snapshot leaves the live
tables as they were (the shadow is rebuilt by the next snapshot).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from loyalty import (
    CatalogItem,
    Customer,
    CustomerRef,
    PromotionIndex,
    normalize_phone,
    parse_catalog_item,
    parse_customer,
    parse_promotion,
)
from offline.db import DOCUMENT_TABLES, EdgeDatabase
from protos import tillgate_pb2 as pb
from protos.sync import content_hash
from tillgate.errors import DocumentError

__all__ = [
    "META_CATALOG_GENERATION",
    "META_CENTRAL",
    "META_PROMOTIONS_GENERATION",
    "META_SYNC_VERSION",
    "EdgeCache",
    "customer_keys",
]

#: meta key of the sync checkpoint; absent until the first sync completed
META_SYNC_VERSION = "sync_version"
#: meta key of the central database (``SyncPage.central``) the checkpoint counts in and the
#: waiting journal was made against; absent until a central that names itself was synced
META_CENTRAL = "central"
#: meta key bumped whenever a sync changed a promotion
META_PROMOTIONS_GENERATION = "promotions_generation"
#: meta key bumped whenever a sync changed a catalog item
META_CATALOG_GENERATION = "catalog_generation"
#: parsed catalog items kept in memory (the cache is dropped whole when full)
CATALOG_MEMO_SIZE = 50_000

_SQL_VARS = 500  # keep IN (...) lists under SQLite's variable limit


def customer_keys(document: Mapping[str, Any]) -> set[str]:
    """The lookup keys of a customer document: ``card:…``, ``phone:<digits>``, ``token:…``."""
    keys: set[str] = set()
    for card in document.get("cards") or ():
        if isinstance(card, str) and card:
            keys.add(f"card:{card}")
    phone = document.get("phone")
    if isinstance(phone, str) and normalize_phone(phone):
        keys.add(f"phone:{normalize_phone(phone)}")
    for token in document.get("tokens") or ():
        if isinstance(token, str) and token:
            keys.add(f"token:{token}")
    return keys


def _ref_key(ref: CustomerRef) -> str:
    if ref.kind == "phone":
        return f"phone:{normalize_phone(ref.value)}"
    return f"{ref.kind}:{ref.value}"


class EdgeCache:
    """Read and write access to the synced documents of one edge database."""

    def __init__(self, db: EdgeDatabase) -> None:
        self.db = db
        self._index: PromotionIndex | None = None
        self._index_generation: str | None = None
        self._catalog_memo: dict[str, CatalogItem | None] = {}
        self._catalog_generation: str | None = None

    # -- reading -------------------------------------------------------------------------

    def version(self) -> int | None:
        """The sync checkpoint, or None when the cache was never synced."""
        value = self.db.get_meta(META_SYNC_VERSION)
        return int(value) if value is not None else None

    def is_empty(self) -> bool:
        """True until a first sync completed (the edge then cannot price anything)."""
        return self.version() is None

    def document(self, kind: str, doc_id: str) -> bytes | None:
        rows = self.db.query("SELECT json FROM documents WHERE kind = ? AND id = ?", (kind, doc_id))
        return bytes(rows[0]["json"]) if rows else None

    def count(self, kind: str) -> int:
        return int(
            self.db.query("SELECT count(*) AS n FROM documents WHERE kind = ?", (kind,))[0]["n"]
        )

    def catalog_for(self, skus: Iterable[str]) -> dict[str, CatalogItem]:
        """The catalog items of these skus that the cache holds (unknown skus are left out).

        Parsed items are memoized until a sync changes the catalog."""
        generation = self.db.get_meta(META_CATALOG_GENERATION) or "0"
        memo = self._catalog_memo
        if generation != self._catalog_generation or len(memo) > CATALOG_MEMO_SIZE:
            memo.clear()
            self._catalog_generation = generation
        requested = set(skus)
        wanted = sorted(sku for sku in requested if sku not in memo)
        for start in range(0, len(wanted), _SQL_VARS):
            chunk = wanted[start : start + _SQL_VARS]
            marks = ",".join("?" * len(chunk))
            found = {
                row["id"]: row["json"]
                for row in self.db.query(
                    f"SELECT id, json FROM documents WHERE kind = 'catalog' AND id IN ({marks})",  # noqa: S608  # only '?' marks are interpolated
                    chunk,
                )
            }
            for sku in chunk:
                body = found.get(sku)
                memo[sku] = parse_catalog_item(json.loads(body)) if body is not None else None
        items: dict[str, CatalogItem] = {}
        for sku in requested:
            item = memo.get(sku)
            if item is not None:
                items[sku] = item
        return items

    def customer_by_id(self, customer_id: str) -> Customer | None:
        body = self.document("customer", customer_id)
        return parse_customer(json.loads(body)) if body is not None else None

    def customer_id_by_ref(self, ref: CustomerRef) -> str | None:
        """The id of the cached customer a card, phone or token names (None when not cached)."""
        rows = self.db.query(
            "SELECT customer_id FROM customer_keys WHERE key = ? ORDER BY customer_id LIMIT 1",
            (_ref_key(ref),),
        )
        return str(rows[0]["customer_id"]) if rows else None

    def customer_by_ref(self, ref: CustomerRef) -> Customer | None:
        """The cached customer a card, phone or token names (None when not cached)."""
        customer_id = self.customer_id_by_ref(ref)
        return self.customer_by_id(customer_id) if customer_id is not None else None

    def spent_coupons(self, codes: Iterable[str]) -> frozenset[str]:
        """Which of these codes were spent: synced ``coupon`` documents or offline confirms.

        Codes compare case-insensitively; the receipt's own spelling is returned."""
        result: set[str] = set()
        for code in codes:
            upper = code.upper()
            if self.db.query(
                "SELECT 1 FROM offline_coupons WHERE code = ?", (upper,)
            ) or self.db.query(
                "SELECT 1 FROM documents WHERE kind = 'coupon' AND id IN (?, ?)", (code, upper)
            ):
                result.add(code)
        return frozenset(result)

    def promotion_index(self) -> PromotionIndex:
        """The in-memory promotion index, rebuilt when a sync changed promotions."""
        generation = self.db.get_meta(META_PROMOTIONS_GENERATION) or "0"
        if self._index is None or generation != self._index_generation:
            promotions = []
            for row in self.db.query("SELECT id, json FROM documents WHERE kind = 'promotion'"):
                try:
                    promotions.append(parse_promotion(json.loads(row["json"])))
                except DocumentError:
                    continue  # central validated it; a newer schema we cannot read is skipped
            self._index = PromotionIndex(promotions)
            self._index_generation = generation
        return self._index

    def content_hash(self) -> str:
        """protos.sync.content_hash over every live document, as central computes it."""
        rows = self.db.query("SELECT kind, id, json FROM documents")
        return content_hash((row["kind"], row["id"], bytes(row["json"])) for row in rows)

    # -- writing (called by the sync client inside its transactions) ----------------------

    def apply_documents(
        self, documents: Iterable[pb.Document], *, shadow: bool = False
    ) -> set[str]:
        """Upsert or delete documents (the last one of a (kind, id) wins); returns the kinds
        that changed. Must run inside a transaction of :attr:`db`."""
        suffix = "_shadow" if shadow else ""
        conn = self.db.conn
        latest: dict[tuple[str, str], pb.Document] = {}
        for doc in documents:
            latest[(doc.kind, doc.id)] = doc
        kinds = {kind for kind, _ in latest}
        stale_keys: list[tuple[str, str]] = []
        if not shadow:
            for kind, doc_id in latest:
                if kind != "customer":
                    continue
                old = conn.execute(
                    "SELECT json FROM documents WHERE kind = 'customer' AND id = ?", (doc_id,)
                ).fetchone()
                if old is not None:
                    stale_keys.extend((key, doc_id) for key in customer_keys(json.loads(old[0])))
        conn.executemany(
            f"DELETE FROM customer_keys{suffix} WHERE key = ? AND customer_id = ?",  # noqa: S608  # fixed table names
            stale_keys,
        )
        conn.executemany(
            f"DELETE FROM documents{suffix} WHERE kind = ? AND id = ?",  # noqa: S608  # fixed table names
            [key for key, doc in latest.items() if doc.deleted],
        )
        live = [doc for doc in latest.values() if not doc.deleted]
        conn.executemany(
            f"INSERT OR REPLACE INTO documents{suffix} (kind, id, json, version) "  # noqa: S608  # fixed table names
            "VALUES (?, ?, ?, ?)",
            [(doc.kind, doc.id, doc.json, doc.version) for doc in live],
        )
        conn.executemany(
            f"INSERT OR IGNORE INTO customer_keys{suffix} (key, customer_id) "  # noqa: S608  # fixed table names
            "VALUES (?, ?)",
            [
                (key, doc.id)
                for doc in live
                if doc.kind == "customer"
                for key in customer_keys(json.loads(doc.json))
            ],
        )
        return kinds

    def start_shadow(self) -> None:
        """Empty shadow tables for a new snapshot (inside a transaction)."""
        for table, columns in DOCUMENT_TABLES.items():
            self.db.conn.execute(f"DROP TABLE IF EXISTS {table}_shadow")
            self.db.conn.execute(f"CREATE TABLE {table}_shadow ({columns}) WITHOUT ROWID")

    def swap_shadow(self) -> None:
        """Make the shadow tables live (inside the transaction that sets the checkpoint)."""
        for table in DOCUMENT_TABLES:
            self.db.conn.execute(f"DROP TABLE {table}")
            self.db.conn.execute(f"ALTER TABLE {table}_shadow RENAME TO {table}")

    def bump_generation(self, key: str) -> None:
        """Note that promotions (or catalog items) changed, inside a transaction: in-memory
        indexes and memos of every process rebuild lazily."""
        current = int(self.db.get_meta(key) or "0")
        self.db.set_meta(key, str(current + 1))
