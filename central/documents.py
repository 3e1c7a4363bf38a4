"""Loading documents into central: validation by kind, storage, tombstones.

Catalog items, customers and promotions are checked by the loyalty parsers; central adds two
kinds of its own, checked here:

- favorites set ``{"id": "fav-nov", "slots": 2, "on": {"groups": ["coffee"]}}``: a customer
  picks up to ``slots`` skus among the candidates ``on`` selects (see central.favorites);
- status rule ``{"id": "tier-by-spend", "system": "tier", "period_days": 365,
  "levels": [{"value": "silver", "min_total": 1000000}, ...], "default": "bronze"}``: the
  status a customer's purchase total over the period earns (see central.statuses).

Every document may carry ``"deleted": true``; it then becomes a tombstone in the sync feed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from central.accounts import (
    DERIVED_KEYS,
    MAX_DAYS,
    customer_body,
    promotion_lifetime,
    record_movement,
    spendable_balance,
)
from central.clock import to_text
from central.storage import Transaction
from loyalty import (
    MAX_INTEGER,
    check_offer_keys,
    check_promotion_keys,
    document_kind,
    normalize_phone,
    parse_catalog_item,
    parse_customer,
    parse_promotion,
)
from protos.sync import canonical_json
from tillgate.errors import DocumentError

Kind = Literal["catalog", "customer", "promotion", "favorites_set", "status_rule"]
#: Every document kind central loads (the sync feed adds ``coupon``).
KINDS: tuple[Kind, ...] = ("catalog", "customer", "promotion", "favorites_set", "status_rule")
_KIND_LABEL = {
    "catalog": "catalog item",
    "customer": "customer",
    "promotion": "promotion",
    "favorites_set": "favorites set",
    "status_rule": "status rule",
}


def kind_of(obj: Mapping[str, Any]) -> Kind | None:
    """The kind a document's content says, or None when it cannot tell (a bare tombstone)."""
    explicit = obj.get("kind")
    if isinstance(explicit, str) and explicit in KINDS:
        return explicit
    if "slots" in obj:
        return "favorites_set"
    if "levels" in obj and "system" in obj:
        return "status_rule"
    try:
        return document_kind(obj)
    except DocumentError:
        return None


def id_of(kind: Kind, obj: Mapping[str, Any]) -> str:
    """The document's id (``sku`` for catalog items); raises DocumentError naming the key."""
    key = "sku" if kind == "catalog" else "id"
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise DocumentError("is required as a non-empty string", kind=_KIND_LABEL[kind], key=key)
    return value


def _positive_int(
    obj: Mapping[str, Any], key: str, where: DocumentError, maximum: int = MAX_INTEGER
) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise DocumentError(
            f"must be an integer 1..{maximum}", kind=where.kind, doc_id=where.doc_id, key=key
        )
    return value


def check_favorites_set(obj: Mapping[str, Any]) -> None:
    """Validate a favorites set document; raises DocumentError naming the key."""
    doc_id = id_of("favorites_set", obj)
    where = DocumentError("", kind="favorites set", doc_id=doc_id)
    _positive_int(obj, "slots", where)
    on = obj.get("on", {})
    if not isinstance(on, Mapping):
        raise DocumentError("must be a JSON object", kind=where.kind, doc_id=doc_id, key="on")
    for key, values in on.items():
        if key not in ("skus", "groups", "brands"):
            raise DocumentError(
                "must be skus, groups or brands", kind=where.kind, doc_id=doc_id, key=f"on.{key}"
            )
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DocumentError(
                "must be a list of strings", kind=where.kind, doc_id=doc_id, key=f"on.{key}"
            )


def check_status_rule(obj: Mapping[str, Any]) -> None:
    """Validate a status rule document; raises DocumentError naming the key."""
    doc_id = id_of("status_rule", obj)
    label = "status rule"
    where = DocumentError("", kind=label, doc_id=doc_id)
    if not isinstance(obj.get("system"), str) or not obj["system"]:
        raise DocumentError("must be a non-empty string", kind=label, doc_id=doc_id, key="system")
    _positive_int(obj, "period_days", where, MAX_DAYS)
    levels = obj.get("levels")
    if not isinstance(levels, list) or not levels:
        raise DocumentError("must be a non-empty list", kind=label, doc_id=doc_id, key="levels")
    for index, level in enumerate(levels):
        key = f"levels[{index}]"
        if not isinstance(level, Mapping):
            raise DocumentError("must be a JSON object", kind=label, doc_id=doc_id, key=key)
        if not isinstance(level.get("value"), str) or not level["value"]:
            raise DocumentError(
                "must be a non-empty string", kind=label, doc_id=doc_id, key=f"{key}.value"
            )
        total = level.get("min_total")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise DocumentError(
                "must be an integer of minor units >= 0",
                kind=label,
                doc_id=doc_id,
                key=f"{key}.min_total",
            )
    default = obj.get("default")
    if default is not None and not isinstance(default, str):
        raise DocumentError("must be a string", kind=label, doc_id=doc_id, key="default")


def check_document(kind: Kind, obj: Mapping[str, Any]) -> None:
    """Validate a live document of ``kind``; raises DocumentError naming kind, id and key."""
    if kind == "catalog":
        parse_catalog_item(obj)
    elif kind == "customer":
        parse_customer(obj)
        offers = obj.get("personal_offers")
        for index, offer in enumerate(offers if isinstance(offers, list) else ()):
            check_offer_keys(offer, f"personal_offers[{index}]", customer_id=str(obj["id"]))
    elif kind == "promotion":
        parse_promotion(obj)
        check_promotion_keys(obj)
        try:
            promotion_lifetime(obj)
        except DocumentError as exc:
            raise DocumentError(
                exc.message, kind="promotion", doc_id=str(obj.get("id", "")), key=exc.key
            ) from None
    elif kind == "favorites_set":
        check_favorites_set(obj)
    else:
        check_status_rule(obj)


def _clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in ("deleted", "kind")}


def customer_keys(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The lookup keys of a customer document: cards, phone digits, app tokens."""
    keys: list[tuple[str, str]] = [("card", card) for card in raw.get("cards") or ()]
    phone = normalize_phone(str(raw.get("phone") or ""))
    if phone:
        keys.append(("phone", phone))
    keys.extend(("token", token) for token in raw.get("tokens") or ())
    return keys


def store_document(
    tx: Transaction, kind: Kind, obj: Mapping[str, Any], now: datetime, *, source: str = "import",
    set_balance: bool = False,
) -> None:
    """Store one validated document (or its tombstone) under a new sync version.

    A customer's ``balance``, ``counters`` and ``purchases`` are its opening state: they
    apply only to a customer central has never stored (live or deleted) and keeps no books
    of (ledger rows, counters, purchases). Once loaded they are central's books (confirms,
    refunds, adjustments) and a document loaded again keeps them. The balance becomes a
    ledger adjustment (the difference to the spendable balance, reason ``source``);
    ``set_balance`` applies it to a known customer too (a CSV ``balance`` row, an explicit
    order). Status changes are recorded with ``source``.
    """
    doc_id = id_of(kind, obj)
    at = to_text(now)
    if obj.get("deleted") is True:
        existing = tx.document(kind, doc_id)
        if existing is not None and not existing.deleted:
            tx.put_document(kind, doc_id, None, None, at)
            if kind == "customer":
                tx.set_customer_keys(doc_id, [])
            tx.set_setting(f"kind.{kind}.changed", at + str(tx.head_version()))
        return
    raw = _clean(obj)
    if kind != "customer":
        existing = tx.document(kind, doc_id)
        if existing is not None and existing.raw == raw:
            return  # unchanged: no new sync version
        tx.put_document(kind, doc_id, raw, canonical_json(raw), at)
        tx.set_setting(f"kind.{kind}.changed", at + str(tx.head_version()))
        return
    previous = tx.document("customer", doc_id)
    old_statuses: Mapping[str, Any] = (
        previous.raw.get("statuses") or {} if previous is not None and previous.raw else {}
    )
    # (a deleted customer's tombstone may be compacted away; its books stay and count)
    opening = previous is None and not (
        tx.ledger(doc_id) or tx.counters(doc_id) or tx.purchases(doc_id)
    )
    # null reads as absent, as parse_customer reads it: the value central keeps stays.
    if raw.get("balance") is not None and (opening or set_balance):
        delta = int(raw["balance"]) - spendable_balance(tx, doc_id)
        record_movement(tx, doc_id, "adjustment", delta, now=now, reason=source)
    if opening:
        for name, value in dict(raw.get("counters") or {}).items():
            if value is not None:
                tx.set_counter(doc_id, name, int(value))
        if raw.get("purchases") is not None:
            tx.set_purchases(doc_id, int(raw["purchases"]))
    stored_raw = {key: value for key, value in raw.items() if key not in DERIVED_KEYS}
    new_statuses: Mapping[str, Any] = stored_raw.get("statuses") or {}
    for system in sorted(set(old_statuses) | set(new_statuses)):
        if old_statuses.get(system) != new_statuses.get(system):
            tx.record_status_change(doc_id, system, new_statuses.get(system), source, at)
    tx.set_customer_keys(doc_id, customer_keys(stored_raw))
    body = canonical_json(customer_body(tx, doc_id, stored_raw))
    if previous is None or previous.raw != stored_raw or previous.body != body:
        tx.put_document("customer", doc_id, stored_raw, body, at)
