"""The request router: every register request answered online by central, else by the edge.

Theory of operation: a request is turned into its gRPC message (with the store's context) and
sent to central within the deadline, unless the circuit breaker is open. A gRPC failure feeds
the breaker and the same message goes to the edge, which prices it over the synced cache and
journals it for upload; its answer says ``mode: "offline"``. Answers central gives online are
also recorded at the edge, so a receipt calculated online can be confirmed offline. A receipt
whose calculation was made offline stays on the edge until central has its journal, so its
confirm cannot overtake its calculation. Domain refusals (not_found, conflict, ...) travel in
the replies and become ``error`` answers here; they are answers, not failures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

import structlog

from adapter import render
from adapter.requests import Calculate, Cancel, Confirm, Fiscal, Identify, Refund
from adapter.upstream import CentralClient
from loyalty.values import CustomerRef, Message, Receipt
from offline.breaker import BreakerState, CircuitBreaker
from protos import convert
from protos import tillgate_pb2 as pb
from tillgate.errors import UpstreamUnavailable

log = structlog.get_logger("tillgate.router")

CLOCK_AHEAD = timedelta(minutes=5)
CLOCK_BEHIND = timedelta(hours=24)
CLOCK_SKEW_TEXT = "Часы кассы расходятся с часами сервера: проверьте дату и время кассы"
RETRY_AFTER_MS = 1000


class EdgeBackend(Protocol):
    """What the router needs of the edge (``offline``): central's shapes, answered locally."""

    def calculate(self, request: pb.CalculateRequest) -> pb.CalculateReply: ...
    def confirm(self, request: pb.ConfirmRequest) -> pb.ConfirmReply: ...
    def cancel(self, request: pb.CancelRequest) -> pb.CancelReply: ...
    def refund(self, request: pb.RefundRequest) -> pb.RefundReply: ...
    def identify(self, request: pb.IdentifyRequest) -> pb.IdentifyReply: ...
    def balance(self, request: pb.IdentifyRequest) -> pb.IdentifyReply: ...
    def record_online_calculation(
        self, request: pb.CalculateRequest, reply: pb.CalculateReply
    ) -> None: ...
    def record_online_confirm(self, request: pb.ConfirmRequest, reply: pb.ConfirmReply) -> None: ...
    def record_online_cancel(self, request: pb.CancelRequest, reply: pb.CancelReply) -> None: ...
    def record_online_refund(self, request: pb.RefundRequest, reply: pb.RefundReply) -> None: ...
    def record_online_identify(self, reply: pb.IdentifyReply) -> None: ...
    def owns_receipt(self, receipt_id: str) -> bool: ...

    def holds_unsent(self, customer_ref: CustomerRef | None, coupons: Sequence[str]) -> bool: ...


class Unavailable(Exception):  # noqa: N818 - an outcome, answered as the `unavailable` code
    """No answer can be given now."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _fiscal_pb(fiscal: Fiscal) -> pb.Fiscal:
    return pb.Fiscal(
        fn=fiscal.fn, document=fiscal.document, sign=fiscal.sign, at=fiscal.at.isoformat()
    )


def _error_json(request_id: str, err: pb.Error) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if err.reason == "over_refund":
        extra["remaining"] = render.refund_lines_json(convert.refund_lines_from_pb(err.remaining))
    return render.error(
        request_id,
        err.code or "internal",
        err.message or err.code,
        field=err.field or None,
        reason=err.reason or None,
        retry_after_ms=RETRY_AFTER_MS if err.code == "unavailable" else None,
        extra=extra,
    )


class Router:
    """Answers validated requests: online first, then the edge."""

    def __init__(
        self,
        *,
        store: str,
        timezone: str,
        tz: tzinfo,
        central: CentralClient | None,
        edge: EdgeBackend | None,
        breaker: CircuitBreaker,
        wall_clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.timezone = timezone
        self.tz = tz
        self.central = central
        self.edge = edge
        self.breaker = breaker
        self._wall = wall_clock or (lambda: datetime.now(tz))
        self._monotonic = monotonic
        self.last_mode = "online"
        #: the last call was refused by central for this store (a certificate of another
        #: store): central's health check still passes, so only a call that succeeds clears it
        self.refused = False

    @property
    def mode(self) -> str:
        if self.central is None or self.breaker.state is not BreakerState.CLOSED:
            return "offline"
        if self.refused:
            return "offline"
        return self.last_mode

    def central_lost(self) -> None:
        """The background probe could not reach central: counted as a failed call."""
        self.breaker.record_failure(self._monotonic())
        self.last_mode = "offline"

    def central_back(self) -> None:
        """The background probe reached central: the next answers will be online."""
        self.breaker.record_success(self._monotonic())
        self.last_mode = "online"

    def _context(self, request_id: str, lane: str) -> pb.Context:
        return pb.Context(
            store=self.store, request_id=request_id, timezone=self.timezone, lane=lane
        )

    async def _online(self, name: str, request: Any) -> Any | None:
        """Central's reply, or None when central cannot answer now."""
        if self.central is None or self.breaker.state is not BreakerState.CLOSED:
            return None
        now = self._monotonic()
        try:
            reply = await getattr(self.central, name)(request)
        except UpstreamUnavailable as exc:
            if exc.answered:
                log.warning("central_call_failed", call=name, error=str(exc))
                return None
            self.breaker.record_failure(self._monotonic())
            self.last_mode = "offline"
            self.refused = exc.refused
            log.warning(
                "central_failed",
                call=name,
                error=str(exc),
                breaker=self.breaker.state.value,
                elapsed_ms=round((self._monotonic() - now) * 1000, 1),
            )
            return None
        self.breaker.record_success(self._monotonic())
        self.last_mode = "online"
        self.refused = False
        return reply

    def _offline(self, name: str, request: Any) -> Any:
        if self.edge is None:
            raise Unavailable(
                "central_unreachable",
                "central processing cannot be reached and there is no edge cache",
            )
        return getattr(self.edge, name)(request)

    def _record(self, name: str, request: Any, reply: Any) -> None:
        if self.edge is not None:
            try:
                recorder = "calculation" if name == "calculate" else name
                getattr(self.edge, f"record_online_{recorder}")(request, reply)
            except Exception:  # the register's answer must not depend on the shadow copy
                log.exception("edge_record_failed", call=name)

    async def _route(
        self, name: str, request: Any, receipt_id: str | None, *, on_edge: bool = False
    ) -> tuple[Any, str]:
        if self.edge is not None and (
            on_edge or (receipt_id is not None and self.edge.owns_receipt(receipt_id))
        ):
            return self._offline(name, request), "offline"
        reply = await self._online(name, request)
        if reply is not None:
            if name in ("calculate", "confirm", "cancel", "refund"):
                self._record(name, request, reply)
            return reply, "online"
        return self._offline(name, request), "offline"

    # --- requests ------------------------------------------------------------------------

    async def calculate(self, request_id: str, lane: str, req: Calculate) -> dict[str, Any]:
        receipt = req.receipt
        now = self._wall()
        skewed = False
        if receipt.opened_at is None:
            receipt = _with_opened_at(receipt, now)
        elif receipt.opened_at - now > CLOCK_AHEAD or now - receipt.opened_at > CLOCK_BEHIND:
            skewed = True
            log.warning(
                "clock_skew",
                lane=lane,
                opened_at=receipt.opened_at.isoformat(),
                now=now.isoformat(),
            )
        message = pb.CalculateRequest(
            context=self._context(request_id, lane), receipt=convert.receipt_to_pb(receipt)
        )
        # An offline sale central has not heard of yet (its customer's purchase, a coupon it
        # spent) would be priced as if it never happened: the edge, which knows it, answers.
        on_edge = False
        if self.edge is not None:
            try:
                on_edge = self.edge.holds_unsent(receipt.customer, receipt.coupons)
            except Exception:  # a broken shadow copy must not cost the online answer
                log.exception("edge_check_failed", call="calculate")
        reply, mode = await self._route("calculate", message, receipt.id, on_edge=on_edge)
        if reply.HasField("error"):
            return _error_json(request_id, reply.error)
        calc = convert.calculation_from_pb(reply.calculation)
        body = render.calculation_json(calc)
        body["mode"] = mode
        if skewed:
            body["messages"].append(render.message_json(Message("cashier", CLOCK_SKEW_TEXT)))
        return render.envelope("calculate.result", request_id, body)

    async def confirm(self, request_id: str, lane: str, req: Confirm) -> dict[str, Any]:
        message = pb.ConfirmRequest(
            context=self._context(request_id, lane),
            receipt_id=req.receipt_id,
            due=req.due,
            fiscal=_fiscal_pb(req.fiscal),
            payments=[pb.Payment(kind=p.kind, amount=p.amount) for p in req.payments],
        )
        reply, mode = await self._route("confirm", message, req.receipt_id)
        if reply.HasField("error"):
            return _error_json(request_id, reply.error)
        points = reply.points
        return render.envelope(
            "confirm.result",
            request_id,
            {
                "receipt_id": reply.receipt_id or req.receipt_id,
                # a kept confirmation is returned as it was made (§2.3), its mode included
                "mode": reply.mode or mode,
                "points": {
                    "accrued": points.accrued,
                    "redeemed": points.redeemed,
                    "balance": points.balance if points.HasField("balance") else None,
                },
                "messages": render.pb_messages_json(reply.messages),
            },
        )

    async def cancel(self, request_id: str, lane: str, req: Cancel) -> dict[str, Any]:
        message = pb.CancelRequest(
            context=self._context(request_id, lane), receipt_id=req.receipt_id
        )
        reply, _mode = await self._route("cancel", message, req.receipt_id)
        if reply.HasField("error"):
            return _error_json(request_id, reply.error)
        return render.envelope("cancel.result", request_id, {"receipt_id": req.receipt_id})

    async def refund(self, request_id: str, lane: str, req: Refund) -> dict[str, Any]:
        message = pb.RefundRequest(
            context=self._context(request_id, lane),
            refund_id=req.refund_id,
            receipt_id=req.receipt_id,
            lines=convert.refund_lines_to_pb(req.lines or ()),
        )
        if req.fiscal is not None:
            message.fiscal.CopyFrom(_fiscal_pb(req.fiscal))
        reply, mode = await self._route("refund", message, req.receipt_id)
        if reply.HasField("error"):
            return _error_json(request_id, reply.error)
        points: dict[str, Any] | None = None
        if reply.HasField("points"):
            points = {
                "reversed": reply.points.reversed,
                "restored": reply.points.restored,
                "balance": reply.points.balance if reply.points.HasField("balance") else None,
            }
        return render.envelope(
            "refund.result",
            request_id,
            {
                "refund_id": req.refund_id,
                "mode": reply.mode or mode,
                "points": points,
                "messages": render.pb_messages_json(reply.messages),
            },
        )

    async def identify(self, request_id: str, lane: str, req: Identify) -> dict[str, Any]:
        message = pb.IdentifyRequest(
            context=self._context(request_id, lane),
            customer=convert.customer_ref_to_pb(req.customer),
        )
        reply, mode = await self._route(req.kind, message, None)
        if reply.HasField("error"):
            return _error_json(request_id, reply.error)
        if mode == "online" and self.edge is not None:
            try:
                self.edge.record_online_identify(reply)
            except Exception:  # remembering the customer for sync must not fail the answer
                log.exception("edge_record_failed", call="identify")
        customer = render.customer_json(convert.customer_summary_from_pb(reply.customer), full=True)
        if req.kind == "balance":
            return render.envelope("balance.result", request_id, {"customer": customer})
        return render.envelope(
            "identify.result",
            request_id,
            {
                "customer": customer,
                "offers": render.offers_json(reply.offers),
                "messages": render.pb_messages_json(reply.messages),
            },
        )


def _with_opened_at(receipt: Receipt, now: datetime) -> Receipt:
    return replace(receipt, opened_at=now.replace(microsecond=0))
