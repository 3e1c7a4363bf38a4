"""The §2.4 table, as the edge encodes it."""

from __future__ import annotations

import pytest

from offline.lifecycle import (
    OPEN_EXPIRY_S,
    Action,
    Op,
    ReceiptState,
    decide,
    effective_state,
)

S, A = ReceiptState, Action

# register protocol §2.4, row by row (cancel of an unknown receipt: answered, no effect on
# the edge, and journaled so that central decides)
SPEC = {
    S.UNKNOWN: {
        Op.CALCULATE: A.PROCEED,
        Op.CONFIRM: A.NOT_FOUND,
        Op.CANCEL: A.PROCEED,
        Op.REFUND: A.JOURNAL_UNKNOWN,
    },
    S.OPEN: {
        Op.CALCULATE: A.PROCEED,
        Op.CONFIRM: A.PROCEED,
        Op.CANCEL: A.PROCEED,
        Op.REFUND: A.CONFLICT,
    },
    S.CONFIRMED: {
        Op.CALCULATE: A.CONFLICT,
        Op.CONFIRM: A.KEPT_IF_SAME,
        Op.CANCEL: A.CONFLICT,
        Op.REFUND: A.PROCEED,
    },
    S.CANCELLED: {
        Op.CALCULATE: A.CONFLICT,
        Op.CONFIRM: A.CONFLICT,
        Op.CANCEL: A.NO_EFFECT,
        Op.REFUND: A.CONFLICT,
    },
}


@pytest.mark.parametrize("state", list(ReceiptState))
@pytest.mark.parametrize("op", list(Op))
def test_every_cell_matches_the_spec(state: ReceiptState, op: Op) -> None:
    verdict = decide(state, op)
    assert verdict.action is SPEC[state][op]
    if verdict.action is Action.CONFLICT:
        assert verdict.reason == ("open" if state is S.OPEN else state.value)


def test_transitions() -> None:
    assert decide(S.UNKNOWN, Op.CALCULATE).next_state is S.OPEN
    assert decide(S.OPEN, Op.CONFIRM).next_state is S.CONFIRMED
    assert decide(S.OPEN, Op.CANCEL).next_state is S.CANCELLED


def test_open_receipts_expire_after_seven_days() -> None:
    assert effective_state(S.OPEN, 0.0, OPEN_EXPIRY_S) is S.OPEN
    assert effective_state(S.OPEN, 0.0, OPEN_EXPIRY_S + 1) is S.CANCELLED
    assert effective_state(S.CONFIRMED, 0.0, 10 * OPEN_EXPIRY_S) is S.CONFIRMED
