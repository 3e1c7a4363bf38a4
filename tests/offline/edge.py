"""Helpers for edge tests: seed a real edge database and build Processing requests."""

from __future__ import annotations

from typing import Any

from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.sync import SyncClient
from protos import tillgate_pb2 as pb
from protos.sync import canonical_json

STORE = "S001"
TZ = "Europe/Moscow"

OILS: dict[str, Any] = {
    "sku": "4600001",
    "name": "Масло подсолнечное 1 л",
    "groups": ["oils", "grocery"],
}
BREAD: dict[str, Any] = {"sku": "4600002", "name": "Хлеб", "groups": ["bread", "grocery"]}
ANNA: dict[str, Any] = {
    "id": "C1",
    "cards": ["7700001234567"],
    "phone": "+79161234567",
    "name": "Анна К.",
    "statuses": {"tier": "gold"},
    "balance": 340000,
}
ACTIVE: dict[str, Any] = {"from": "2026-01-01T00:00:00+03:00", "to": "2028-01-01T00:00:00+03:00"}
OIL_15: dict[str, Any] = {
    "id": "oil-15",
    "name": "-15% на все масла",
    "active": ACTIVE,
    "priority": 100,
    "reward": {"type": "percent_off", "percent": "15", "on": {"groups": ["oils"]}},
}
BASE_POINTS: dict[str, Any] = {
    "id": "base-points",
    "name": "5% баллами",
    "active": ACTIVE,
    "priority": 10,
    "reward": {"type": "points_percent", "percent": "5"},
}
SPRING: dict[str, Any] = {
    "id": "spring",
    "name": "Купон -100 ₽ на хлеб",
    "active": ACTIVE,
    "priority": 50,
    "conditions": {"coupon": "SPRING"},
    "reward": {"type": "amount_off", "amount": 1000, "on": {"groups": ["bread"]}},
}

DEFAULT_DOCS: list[tuple[str, dict[str, Any]]] = [
    ("catalog", OILS),
    ("catalog", BREAD),
    ("customer", ANNA),
    ("promotion", OIL_15),
    ("promotion", BASE_POINTS),
    ("promotion", SPRING),
]


def seed(db: EdgeDatabase, docs: list[tuple[str, dict[str, Any]]] | None = None) -> None:
    """Load documents as a one-page snapshot, as a first sync would."""
    documents = []
    for version, (kind, body) in enumerate(docs if docs is not None else DEFAULT_DOCS, start=1):
        doc_id = body["sku"] if kind == "catalog" else body["id"]
        documents.append(
            pb.Document(kind=kind, id=doc_id, json=canonical_json(body), version=version)
        )
    SyncClient(EdgeCache(db), store=STORE).apply_page(
        pb.SyncPage(version=len(documents), snapshot=True, last=True, documents=documents)
    )


def context(request_id: str = "q1") -> pb.Context:
    return pb.Context(store=STORE, request_id=request_id, timezone=TZ, lane="03")


def calculate_request(
    receipt_id: str = "R1",
    *,
    card: str | None = "7700001234567",
    coupons: tuple[str, ...] = (),
    points_to_redeem: int = 0,
    opened_at: str = "2026-11-23T10:15:00+03:00",
) -> pb.CalculateRequest:
    receipt = pb.Receipt(
        id=receipt_id,
        opened_at=opened_at,
        coupons=list(coupons),
        points_to_redeem=points_to_redeem,
        lines=[
            pb.ReceiptLine(n=1, sku="4600001", quantity_milli=2000, price=15990, amount=31980),
            pb.ReceiptLine(n=2, sku="4600002", quantity_milli=1000, price=4500, amount=4500),
        ],
    )
    if card is not None:
        receipt.customer.card = card
    return pb.CalculateRequest(context=context(), receipt=receipt)


def confirm_request(receipt_id: str, due: int, *, document: str = "1001") -> pb.ConfirmRequest:
    return pb.ConfirmRequest(
        context=context(),
        receipt_id=receipt_id,
        due=due,
        fiscal=pb.Fiscal(fn="9999", document=document, sign="42", at="2026-11-23T10:20:00+03:00"),
        payments=[pb.Payment(kind="card", amount=due)],
    )
