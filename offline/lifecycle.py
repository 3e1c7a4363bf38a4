"""The receipt lifecycle of register protocol §2.4, as one table.

Theory of operation: the edge keeps each known receipt's state in SQLite; before doing an
operation the processor asks :func:`decide` what the table says for (state, operation) and
acts on the :class:`Verdict`. An open receipt older than :data:`OPEN_EXPIRY_S` counts as
cancelled (:func:`effective_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["OPEN_EXPIRY_S", "Action", "Op", "ReceiptState", "Verdict", "decide", "effective_state"]

#: an open receipt not confirmed within 7 days becomes cancelled
OPEN_EXPIRY_S = 7 * 86_400


class ReceiptState(StrEnum):
    #: the edge has never seen this receipt
    UNKNOWN = "unknown"
    #: calculated, not yet confirmed
    OPEN = "open"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class Op(StrEnum):
    CALCULATE = "calculate"
    CONFIRM = "confirm"
    CANCEL = "cancel"
    REFUND = "refund"


class Action(StrEnum):
    #: do the operation (the state moves to ``Verdict.next_state``)
    PROCEED = "proceed"
    #: answer ``conflict`` with ``Verdict.reason``
    CONFLICT = "conflict"
    #: answer ``not_found`` (field ``receipt_id``)
    NOT_FOUND = "not_found"
    #: answer without changing anything
    NO_EFFECT = "no_effect"
    #: confirm of a confirmed receipt: the kept confirmation if the fiscal data match
    KEPT_IF_SAME = "kept_if_same"
    #: refund of a receipt the edge does not know: journal it, points unknown
    JOURNAL_UNKNOWN = "journal_unknown"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    next_state: ReceiptState | None = None
    reason: str = ""


_S = ReceiptState
_TABLE: dict[tuple[ReceiptState, Op], Verdict] = {
    (_S.UNKNOWN, Op.CALCULATE): Verdict(Action.PROCEED, _S.OPEN),
    (_S.UNKNOWN, Op.CONFIRM): Verdict(Action.NOT_FOUND),
    # answered with no effect, but journaled: central may know a receipt the edge lost
    (_S.UNKNOWN, Op.CANCEL): Verdict(Action.PROCEED),
    (_S.UNKNOWN, Op.REFUND): Verdict(Action.JOURNAL_UNKNOWN),
    (_S.OPEN, Op.CALCULATE): Verdict(Action.PROCEED, _S.OPEN),
    (_S.OPEN, Op.CONFIRM): Verdict(Action.PROCEED, _S.CONFIRMED),
    (_S.OPEN, Op.CANCEL): Verdict(Action.PROCEED, _S.CANCELLED),
    (_S.OPEN, Op.REFUND): Verdict(Action.CONFLICT, reason="open"),
    (_S.CONFIRMED, Op.CALCULATE): Verdict(Action.CONFLICT, reason="confirmed"),
    (_S.CONFIRMED, Op.CONFIRM): Verdict(Action.KEPT_IF_SAME),
    (_S.CONFIRMED, Op.CANCEL): Verdict(Action.CONFLICT, reason="confirmed"),
    (_S.CONFIRMED, Op.REFUND): Verdict(Action.PROCEED, _S.CONFIRMED),
    (_S.CANCELLED, Op.CALCULATE): Verdict(Action.CONFLICT, reason="cancelled"),
    (_S.CANCELLED, Op.CONFIRM): Verdict(Action.CONFLICT, reason="cancelled"),
    (_S.CANCELLED, Op.CANCEL): Verdict(Action.NO_EFFECT),
    (_S.CANCELLED, Op.REFUND): Verdict(Action.CONFLICT, reason="cancelled"),
}


def decide(state: ReceiptState, op: Op) -> Verdict:
    """What §2.4 says ``op`` does to a receipt in ``state``."""
    return _TABLE[(state, op)]


def effective_state(state: ReceiptState, updated_at: float, now: float) -> ReceiptState:
    """The state with the 7-day expiry of open receipts applied."""
    if state is ReceiptState.OPEN and now - updated_at > OPEN_EXPIRY_S:
        return ReceiptState.CANCELLED
    return state
