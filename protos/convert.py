"""Converters between loyalty values and the gRPC messages of ``tillgate.proto``.

The only place that knows both shapes: central, the edge and the adapter call these and
never touch message fields for domain values themselves.
"""

from __future__ import annotations

from typing import cast

from loyalty.values import (
    AppliedPromotion,
    Barcode,
    BarcodeFormat,
    Calculation,
    CounterDelta,
    CustomerKind,
    CustomerRef,
    CustomerSummary,
    Effects,
    LineResult,
    Message,
    MessageTarget,
    PointsSummary,
    Receipt,
    ReceiptLine,
    RefundLine,
    parse_time,
)
from protos import tillgate_pb2 as pb
from tillgate.errors import ValidationError


def customer_ref_to_pb(ref: CustomerRef) -> pb.CustomerRef:
    return pb.CustomerRef(**{ref.kind: ref.value})


def customer_ref_from_pb(msg: pb.CustomerRef) -> CustomerRef:
    kinds: tuple[CustomerKind, ...] = ("card", "phone", "token")
    for kind in kinds:
        value = getattr(msg, kind)
        if value:
            return CustomerRef(kind, value)
    raise ValueError("customer reference carries no card, phone or token")


def receipt_to_pb(receipt: Receipt) -> pb.Receipt:
    msg = pb.Receipt(
        id=receipt.id,
        opened_at=receipt.opened_at.isoformat() if receipt.opened_at else "",
        coupons=list(receipt.coupons),
        points_to_redeem=receipt.points_to_redeem,
        lines=[
            pb.ReceiptLine(
                n=line.n,
                sku=line.sku,
                barcode=line.barcode,
                name=line.name,
                quantity_milli=line.quantity,
                price=line.price,
                amount=line.amount,
            )
            for line in receipt.lines
        ],
    )
    if receipt.number is not None:
        msg.number = receipt.number
    if receipt.shift is not None:
        msg.shift = receipt.shift
    if receipt.customer is not None:
        msg.customer.CopyFrom(customer_ref_to_pb(receipt.customer))
    return msg


def _line_from_pb(index: int, line: pb.ReceiptLine) -> ReceiptLine:
    try:
        return ReceiptLine(
            n=line.n,
            sku=line.sku,
            quantity=line.quantity_milli,
            price=line.price,
            amount=line.amount,
            barcode=line.barcode,
            name=line.name,
        )
    except ValidationError as exc:  # named as the register names it: lines[1].amount
        raise exc.under(f"lines[{index}]") from None


def receipt_from_pb(msg: pb.Receipt) -> Receipt:
    return Receipt(
        id=msg.id,
        lines=tuple(_line_from_pb(index, line) for index, line in enumerate(msg.lines)),
        opened_at=parse_time(msg.opened_at, "opened_at") if msg.opened_at else None,
        number=msg.number if msg.HasField("number") else None,
        shift=msg.shift if msg.HasField("shift") else None,
        customer=customer_ref_from_pb(msg.customer) if msg.HasField("customer") else None,
        coupons=tuple(msg.coupons),
        points_to_redeem=msg.points_to_redeem,
    )


def message_to_pb(message: Message) -> pb.Message:
    msg = pb.Message(target=message.target, text=message.text)
    if message.barcode is not None:
        msg.barcode.CopyFrom(pb.Barcode(format=message.barcode.format, data=message.barcode.data))
    return msg


def message_from_pb(msg: pb.Message) -> Message:
    barcode = (
        Barcode(cast(BarcodeFormat, msg.barcode.format), msg.barcode.data)
        if msg.HasField("barcode")
        else None
    )
    return Message(cast(MessageTarget, msg.target), msg.text, barcode)


def messages_to_pb(messages: tuple[Message, ...] | list[Message]) -> list[pb.Message]:
    return [message_to_pb(m) for m in messages]


def messages_from_pb(msgs: object) -> tuple[Message, ...]:
    return tuple(message_from_pb(m) for m in cast("list[pb.Message]", msgs))


def customer_summary_to_pb(summary: CustomerSummary) -> pb.CustomerSummary:
    msg = pb.CustomerSummary(id=summary.id, name=summary.name)
    if summary.status is not None:
        msg.status = summary.status
    if summary.balance is not None:
        msg.balance = summary.balance
    if summary.redeem_max is not None:
        msg.redeem_max = summary.redeem_max
    return msg


def customer_summary_from_pb(msg: pb.CustomerSummary) -> CustomerSummary:
    return CustomerSummary(
        id=msg.id,
        name=msg.name,
        status=msg.status if msg.HasField("status") else None,
        balance=msg.balance if msg.HasField("balance") else None,
        redeem_max=msg.redeem_max if msg.HasField("redeem_max") else None,
    )


def calculation_to_pb(calc: Calculation) -> pb.Calculation:
    points = pb.Points(
        accrue=calc.points.accrue, redeem=calc.points.redeem, redeem_max=calc.points.redeem_max
    )
    if calc.points.balance is not None:
        points.balance = calc.points.balance
    msg = pb.Calculation(
        receipt_id=calc.receipt_id,
        mode=calc.mode,
        lines=[
            pb.LineResult(
                n=line.n,
                discount=line.discount,
                amount=line.amount,
                redeemed=line.redeemed,
                points=line.points,
                promotions=list(line.promotions),
            )
            for line in calc.lines
        ],
        total=calc.total,
        discount=calc.discount,
        due=calc.due,
        points=points,
        promotions=[pb.AppliedPromotion(id=p.id, name=p.name) for p in calc.promotions],
        control=list(calc.control),
        messages=messages_to_pb(calc.messages),
        effects=pb.Effects(
            counters=[pb.CounterDelta(name=c.name, add=c.add) for c in calc.effects.counters],
            coupons=list(calc.effects.coupons),
        ),
    )
    if calc.customer is not None:
        msg.customer.CopyFrom(customer_summary_to_pb(calc.customer))
    return msg


def calculation_from_pb(msg: pb.Calculation) -> Calculation:
    return Calculation(
        receipt_id=msg.receipt_id,
        customer=customer_summary_from_pb(msg.customer) if msg.HasField("customer") else None,
        lines=tuple(
            LineResult(
                n=line.n,
                discount=line.discount,
                amount=line.amount,
                redeemed=line.redeemed,
                points=line.points,
                promotions=tuple(line.promotions),
            )
            for line in msg.lines
        ),
        total=msg.total,
        discount=msg.discount,
        due=msg.due,
        points=PointsSummary(
            accrue=msg.points.accrue,
            redeem=msg.points.redeem,
            redeem_max=msg.points.redeem_max,
            balance=msg.points.balance if msg.points.HasField("balance") else None,
        ),
        promotions=tuple(AppliedPromotion(p.id, p.name) for p in msg.promotions),
        control=tuple(msg.control),
        messages=messages_from_pb(msg.messages),
        effects=Effects(
            counters=tuple(CounterDelta(c.name, c.add) for c in msg.effects.counters),
            coupons=tuple(msg.effects.coupons),
        ),
        mode="offline" if msg.mode == "offline" else "online",
    )


def refund_lines_to_pb(lines: tuple[RefundLine, ...] | list[RefundLine]) -> list[pb.RefundLine]:
    return [pb.RefundLine(n=line.n, quantity_milli=line.quantity) for line in lines]


def refund_lines_from_pb(msgs: object) -> tuple[RefundLine, ...]:
    return tuple(
        RefundLine(m.n, m.quantity_milli) for m in cast("list[pb.RefundLine]", msgs)
    )
