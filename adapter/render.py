"""Typed answers → the JSON bodies of register protocol §2 and §3."""

from __future__ import annotations

from typing import Any

from loyalty.values import (
    Calculation,
    CustomerSummary,
    Message,
    RefundLine,
    format_quantity,
)
from protos import tillgate_pb2 as pb
from protos.convert import messages_from_pb

PROTOCOL_VERSION = 1


def envelope(kind: str, request_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "type": kind, "id": request_id, **body}


def error(
    request_id: str | None,
    code: str,
    message: str,
    *,
    field: str | None = None,
    reason: str | None = None,
    retry_after_ms: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if reason is not None:
        body["reason"] = reason
    if retry_after_ms is not None:
        body["retry_after_ms"] = retry_after_ms
    if extra:
        body.update(extra)
    return envelope("error", request_id, body)


def message_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"target": message.target, "text": message.text}
    if message.barcode is not None:
        out["barcode"] = {"format": message.barcode.format, "data": message.barcode.data}
    return out


def messages_json(messages: tuple[Message, ...] | list[Message]) -> list[dict[str, Any]]:
    return [message_json(m) for m in messages]


def pb_messages_json(msgs: Any) -> list[dict[str, Any]]:
    return messages_json(messages_from_pb(msgs))


def customer_json(summary: CustomerSummary, *, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": summary.id, "name": summary.name, "status": summary.status}
    if full:
        out["balance"] = summary.balance
        out["redeem_max"] = summary.redeem_max
    return out


def calculation_json(calc: Calculation) -> dict[str, Any]:
    return {
        "receipt_id": calc.receipt_id,
        "mode": calc.mode,
        "customer": customer_json(calc.customer, full=False) if calc.customer else None,
        "lines": [
            {
                "n": line.n,
                "discount": line.discount,
                "amount": line.amount,
                "redeemed": line.redeemed,
                "points": line.points,
                "promotions": list(line.promotions),
            }
            for line in calc.lines
        ],
        "total": calc.total,
        "discount": calc.discount,
        "due": calc.due,
        "points": {
            "accrue": calc.points.accrue,
            "redeem": calc.points.redeem,
            "redeem_max": calc.points.redeem_max,
            "balance": calc.points.balance,
        },
        "promotions": [{"id": p.id, "name": p.name} for p in calc.promotions],
        "control": list(calc.control),
        "messages": messages_json(calc.messages),
    }


def refund_lines_json(lines: tuple[RefundLine, ...]) -> list[dict[str, Any]]:
    return [{"n": line.n, "quantity": format_quantity(line.quantity)} for line in lines]


def offers_json(offers: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for offer in offers:
        assert isinstance(offer, pb.Offer)
        item: dict[str, Any] = {"id": offer.id, "name": offer.name}
        if offer.text:
            item["text"] = offer.text
        if offer.valid_to:
            item["valid_to"] = offer.valid_to
        result.append(item)
    return result
