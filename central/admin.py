"""Admin views and actions over the central database (used by the CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from central import clock
from central.accounts import record_movement, refresh_customer, settle, spendable_balance
from central.processing import OPEN_RECEIPT_LIFETIME
from central.storage import Repository
from protos import tillgate_pb2 as pb
from tillgate.errors import DocumentError, ValidationError


def receipts_view(repository: Repository, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every receipt: store, receipt_id, state (open receipts past their lifetime count as
    cancelled), mode (where it was confirmed, or calculated while open), refunded."""
    moment = now or clock.now()
    limit = clock.to_text(moment - OPEN_RECEIPT_LIFETIME)
    with repository.read() as tx:
        return [
            {
                "store": record.store,
                "receipt_id": record.receipt_id,
                "state": "cancelled"
                if record.state == "open" and (record.calculated_at or "") < limit
                else record.state,
                "mode": record.mode,
                "refunded": record.refunded,
                "due": record.due,
                "customer_id": record.customer_id,
            }
            for record in tx.receipts()
        ]


def customer_view(
    repository: Repository, customer_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """A customer's balance (the ledger sum), spendable balance, ledger, statuses, counters."""
    moment = now or clock.now()
    with repository.transaction() as tx:
        settle(tx, moment, customer_id)
    with repository.read() as tx:
        stored = tx.document("customer", customer_id)
        if stored is None or stored.raw is None:
            raise DocumentError("unknown customer", kind="customer", doc_id=customer_id)
        ledger = tx.ledger(customer_id)
        return {
            "id": customer_id,
            "name": stored.raw.get("name", ""),
            "balance": sum(row.points for row in ledger),
            "available": spendable_balance(tx, customer_id),
            "ledger": [
                {
                    "kind": row.kind,
                    "points": row.points,
                    "receipt_id": row.receipt_id,
                    "store": row.store,
                    "at": row.at,
                    "reason": row.reason,
                    "available_at": row.available_at,
                    "expires_at": row.expires_at,
                }
                for row in ledger
            ],
            "statuses": dict(stored.raw.get("statuses") or {}),
            "status_history": tx.status_changes(customer_id),
            "counters": tx.counters(customer_id),
            "purchases": tx.purchases(customer_id),
            "favorites": dict(stored.raw.get("favorites") or {}),
            "version": stored.version,
        }


def adjust(
    repository: Repository, customer_id: str, points: int, reason: str,
    now: datetime | None = None,
) -> int:
    """A manual balance adjustment as one ledger row; returns the new spendable balance."""
    moment = now or clock.now()
    if points == 0:
        raise ValidationError("points", "must not be 0")
    if not reason.strip():
        raise ValidationError("reason", "must not be empty")
    with repository.transaction() as tx:
        stored = tx.document("customer", customer_id)
        if stored is None or stored.raw is None:
            raise DocumentError("unknown customer", kind="customer", doc_id=customer_id)
        record_movement(tx, customer_id, "adjustment", points, now=moment, reason=reason)
        refresh_customer(tx, customer_id, moment)
        return spendable_balance(tx, customer_id)


def journal_view(repository: Repository, *, rejected_only: bool = False) -> list[dict[str, Any]]:
    """Uploaded journal entries (all, or the rejected ones kept for review)."""
    with repository.read() as tx:
        records = tx.journal("rejected" if rejected_only else None)
    return [
        {
            "store": record.store,
            "receipt_id": record.receipt_id,
            "seq": record.seq,
            "operation": pb.JournalEntry.FromString(record.entry).WhichOneof("operation"),
            "status": record.status,
            "message": record.message,
            "at": record.at,
        }
        for record in records
    ]
