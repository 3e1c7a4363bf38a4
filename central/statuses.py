"""Status systems: a customer's status per system (``tier`` …) changes by import, by a rule
on purchase totals over a period, or manually; every change is recorded with its source.

A status rule (document kind ``status_rule``) names the system, the period in days and the
levels with their ``min_total`` (kopecks, confirmed receipts' due less refunds, over the
period ending now). :func:`recompute` gives each live customer the highest level reached,
else the rule's ``default`` (when it has one; otherwise the status is left as it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from central import clock
from central.documents import store_document
from central.storage import Repository, Transaction
from tillgate.errors import DocumentError


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status changed by a rule or by hand."""

    customer_id: str
    system: str
    old: str | None
    new: str
    source: str


def _level(rule: dict[str, Any], total: int) -> str | None:
    reached = [lvl for lvl in rule["levels"] if total >= int(lvl["min_total"])]
    if reached:
        return str(max(reached, key=lambda lvl: int(lvl["min_total"]))["value"])
    default = rule.get("default")
    return str(default) if default else None


def set_status(
    tx: Transaction, customer_id: str, system: str, value: str, source: str, now: datetime
) -> StatusChange | None:
    """Set one status of a customer (recorded with ``source``); None when unchanged."""
    stored = tx.document("customer", customer_id)
    if stored is None or stored.raw is None:
        raise DocumentError("unknown customer", kind="customer", doc_id=customer_id)
    statuses = dict(stored.raw.get("statuses") or {})
    old = statuses.get(system)
    if old == value:
        return None
    statuses[system] = value
    store_document(tx, "customer", {**stored.raw, "statuses": statuses}, now, source=source)
    return StatusChange(customer_id, system, old, value, source)


def recompute(repository: Repository, now: datetime | None = None) -> list[StatusChange]:
    """Apply every status rule to every live customer; returns the changes made."""
    moment = now or clock.now()
    changes: list[StatusChange] = []
    with repository.transaction() as tx:
        rules = [doc.raw for doc in tx.documents("status_rule") if doc.raw is not None]
        customers = [doc.id for doc in tx.documents("customer")]
        for rule in rules:
            since = moment - timedelta(days=int(rule["period_days"]))
            totals = tx.receipt_totals(clock.to_text(since), clock.to_text(moment))
            for customer_id in customers:
                value = _level(rule, totals.get(customer_id, 0))
                if value is None:
                    continue
                change = set_status(
                    tx, customer_id, str(rule["system"]), value, f"rule:{rule['id']}", moment
                )
                if change is not None:
                    changes.append(change)
    return changes
