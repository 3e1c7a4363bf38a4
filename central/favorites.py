"""Favorite products sets: monthly candidates and automatic filling of empty slots.

A favorites set (document kind ``favorites_set``: ``id``, ``slots``, candidate selector
``on``) lets a customer choose up to ``slots`` skus (customer ``favorites``). Each month
:func:`refresh` recomputes every customer's candidates from what they bought in the previous
(store-local) month among the skus ``on`` selects, most bought first, and keeps them in the
customer document under ``favorite_candidates``; with ``fill`` an empty slot takes the most
bought candidate not chosen yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from central import clock
from central.documents import store_document
from central.storage import Repository, Transaction

#: The month boundaries are read in this zone (the chain's home zone).
HOME_TIMEZONE = ZoneInfo("Europe/Moscow")


@dataclass(frozen=True, slots=True)
class FavoritesRefresh:
    """What a refresh did."""

    month: str  #: YYYY-MM the candidates came from
    customers: int  #: customers whose document changed
    filled: int  #: slots filled automatically


def previous_month(now: datetime, tz: tzinfo = HOME_TIMEZONE) -> str:
    """``2026-11-23`` → ``2026-10``."""
    local = now.astimezone(tz)
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def _selects(tx: Transaction, on: Mapping[str, Any], sku: str) -> bool:
    if not on:
        return True
    if on.get("skus") and sku not in on["skus"]:
        return False
    if on.get("groups") or on.get("brands"):
        item = tx.document("catalog", sku)
        raw = item.raw if item is not None and item.raw is not None else {}
        if on.get("groups") and not set(on["groups"]) & set(raw.get("groups") or ()):
            return False
        if on.get("brands") and raw.get("brand") not in on["brands"]:
            return False
    return True


def refresh(
    repository: Repository, now: datetime | None = None, *, month: str | None = None,
    fill: bool = False,
) -> FavoritesRefresh:
    """Recompute candidates from ``month`` (default: the previous month); fill empty slots
    when ``fill``."""
    moment = now or clock.now()
    source_month = month or previous_month(moment)
    changed = 0
    filled = 0
    with repository.transaction() as tx:
        sets = [doc.raw for doc in tx.documents("favorites_set") if doc.raw is not None]
        for customer in list(tx.documents("customer")):
            raw = customer.raw
            if raw is None:
                continue
            bought = tx.purchased_items(customer.id, source_month)
            candidates: dict[str, list[str]] = {}
            favorites = {k: list(v) for k, v in dict(raw.get("favorites") or {}).items()}
            for fav_set in sets:
                ranked = sorted(
                    (sku for sku in bought if _selects(tx, fav_set.get("on") or {}, sku)),
                    key=lambda sku: (-bought[sku], sku),
                )
                candidates[fav_set["id"]] = ranked
                if fill:
                    chosen = favorites.get(fav_set["id"], [])
                    for sku in ranked:
                        if len(chosen) >= int(fav_set["slots"]):
                            break
                        if sku not in chosen:
                            chosen.append(sku)
                            filled += 1
                    if chosen:
                        favorites[fav_set["id"]] = chosen
            updated = {**raw, "favorite_candidates": candidates}
            if favorites:
                updated["favorites"] = favorites
            if updated != raw:
                store_document(tx, "customer", updated, moment, source="favorites")
                changed += 1
    return FavoritesRefresh(source_month, changed, filled)
