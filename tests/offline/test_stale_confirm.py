"""The offline confirm re-checks what its calculation relied on, against the edge's own state
(promotions §9, register protocol §2.3 ``stale``).

Two lanes of one store, both offline, price receipts against the same cached state; the first
confirm spends the coupon, the points, the first purchase or the counter goal, and the second
is ``conflict``/``stale``: nothing journaled, the receipt still open for a recalculation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offline.db import EdgeDatabase
from offline.policy import OfflinePolicy
from offline.processor import OfflineProcessor
from offline.sync import META_LAST_SYNC_AT
from protos import tillgate_pb2 as pb
from tests.offline.edge import (
    ACTIVE,
    ANNA,
    DEFAULT_DOCS,
    STORE,
    calculate_request,
    confirm_request,
    seed,
)

NOW = 1_795_418_100.0  # 2026-11-23T10:15:00+03:00
LIMITED = OfflinePolicy(redeem="limited")

WELCOME: dict[str, Any] = {
    "id": "welcome", "name": "Welcome", "active": ACTIVE, "priority": 5,
    "conditions": {"first_purchase": True}, "reward": {"type": "points_fixed", "points": 777},
}
# a stamp card: every purchase stamps, the tenth is rewarded and takes ten stamps
STAMP: dict[str, Any] = {
    "id": "stamp", "name": "Штамп", "active": ACTIVE, "priority": 4,
    "counters": [{"name": "stamps"}], "reward": {"type": "none"},
}
TENTH: dict[str, Any] = {
    "id": "tenth", "name": "Десятая покупка", "active": ACTIVE, "priority": 3,
    "conditions": {"counter": {"name": "stamps", "at_least": 10}},
    "reward": {"type": "points_fixed", "points": 5000},
    "counters": [{"name": "stamps", "add": -10}],
}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        self.now += 1.0  # every reading a second later: "since" is never ambiguous
        return self.now


def _docs(anna: dict[str, Any] | None = None,
          *promotions: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    docs = [(kind, anna if anna is not None and body is ANNA else body)
            for kind, body in DEFAULT_DOCS]
    return [*docs, *(("promotion", promotion) for promotion in promotions)]


def _edge(tmp_path: Path, docs: list[tuple[str, dict[str, Any]]], *,
          policy: OfflinePolicy | None = None, name: str = "cache.db") -> OfflineProcessor:
    db = EdgeDatabase(tmp_path / name)
    seed(db, docs)
    return OfflineProcessor(db, store=STORE, policy=policy, clock=Clock())


def _calculate(edge: OfflineProcessor, request: pb.CalculateRequest) -> pb.Calculation:
    reply = edge.calculate(request)
    assert not reply.HasField("error"), reply.error
    return reply.calculation


def _applied(calc: pb.Calculation) -> list[str]:
    return [promotion.id for promotion in calc.promotions]


def _journal_size(edge: OfflineProcessor) -> int:
    return len(edge.outbox.pending(1000))


def _state(edge: OfflineProcessor, receipt_id: str) -> str:
    return str(edge.db.query("SELECT state FROM receipts WHERE receipt_id = ?",
                             (receipt_id,))[0]["state"])


def _assert_stale(edge: OfflineProcessor, receipt_id: str, due: int, *named: str) -> None:
    """The confirm is stale naming ``named``, journals nothing, leaves the receipt open."""
    journaled = _journal_size(edge)
    reply = edge.confirm(confirm_request(receipt_id, due))
    assert (reply.error.code, reply.error.reason) == ("conflict", "stale")
    for text in named:
        assert text in reply.error.message
    assert _journal_size(edge) == journaled
    assert _state(edge, receipt_id) == "open"


def _confirmed(edge: OfflineProcessor, receipt_id: str, due: int) -> pb.ConfirmReply:
    reply = edge.confirm(confirm_request(receipt_id, due))
    assert not reply.HasField("error"), reply.error
    return reply


def test_a_coupon_is_spent_once_by_two_receipts_priced_offline(tmp_path: Path) -> None:
    edge = _edge(tmp_path, _docs())
    first = _calculate(edge, calculate_request("CPA", card=None, coupons=("SPRING-7F3K",)))
    second = _calculate(edge, calculate_request("CPB", card=None, coupons=("SPRING-7F3K",)))
    assert "spring" in _applied(first)
    assert "spring" in _applied(second)
    _confirmed(edge, "CPA", first.due)

    _assert_stale(edge, "CPB", second.due, "SPRING-7F3K")
    # the register recalculates: no coupon discount now, and that confirms
    again = _calculate(edge, calculate_request("CPB", card=None, coupons=("SPRING-7F3K",)))
    assert "spring" not in _applied(again)
    assert again.due == second.due + 1000
    _confirmed(edge, "CPB", again.due)


def test_the_balance_is_redeemed_once_by_two_receipts_priced_offline(tmp_path: Path) -> None:
    edge = _edge(tmp_path, _docs({**ANNA, "balance": 15000}), policy=LIMITED)
    first = _calculate(edge, calculate_request("RDA", points_to_redeem=15000))
    second = _calculate(edge, calculate_request("RDB", points_to_redeem=15000))
    assert first.points.redeem == second.points.redeem == 15000
    _confirmed(edge, "RDA", first.due)

    _assert_stale(edge, "RDB", second.due, "15000 points, 0 available")
    again = _calculate(edge, calculate_request("RDB", points_to_redeem=15000))
    assert again.points.redeem == 0
    assert _confirmed(edge, "RDB", again.due).points.redeemed == 0


def test_a_first_purchase_promotion_is_given_once_offline(tmp_path: Path) -> None:
    edge = _edge(tmp_path, _docs(None, WELCOME))
    first = _calculate(edge, calculate_request("FPA"))
    second = _calculate(edge, calculate_request("FPB"))
    assert "welcome" in _applied(second)
    _confirmed(edge, "FPA", first.due)

    _assert_stale(edge, "FPB", second.due, "'welcome'", "first purchase")
    again = _calculate(edge, calculate_request("FPB"))
    assert "welcome" not in _applied(again)
    _confirmed(edge, "FPB", again.due)


def test_a_counter_goal_is_rewarded_once_offline(tmp_path: Path) -> None:
    edge = _edge(tmp_path, _docs({**ANNA, "counters": {"stamps": 9}}, STAMP, TENTH))
    first = _calculate(edge, calculate_request("CTA"))
    second = _calculate(edge, calculate_request("CTB"))
    assert "tenth" in _applied(second)
    _confirmed(edge, "CTA", first.due)

    _assert_stale(edge, "CTB", second.due, "'tenth'", "'stamps'", "below 10")
    again = _calculate(edge, calculate_request("CTB"))
    assert "tenth" not in _applied(again)
    _confirmed(edge, "CTB", again.due)


def test_a_confirm_that_still_holds_goes_through_and_repeats_the_same(tmp_path: Path) -> None:
    # the spendable balance moved between calculate and confirm, but still covers it
    edge = _edge(tmp_path, _docs({**ANNA, "balance": 15000}), policy=LIMITED)
    first = _calculate(edge, calculate_request("OKA", points_to_redeem=5000))
    second = _calculate(edge, calculate_request("OKB", points_to_redeem=5000))
    _confirmed(edge, "OKA", first.due)
    confirmed = _confirmed(edge, "OKB", second.due)
    assert confirmed.points.redeemed == 5000
    # repeated: the kept confirmation, not stale, and nothing journaled again
    journaled = _journal_size(edge)
    assert edge.confirm(confirm_request("OKB", second.due)) == confirmed
    assert _journal_size(edge) == journaled


def _central_calculation(tmp_path: Path, receipt_id: str, *, balance: int,
                         redeem: int = 0, promotions: tuple[dict[str, Any], ...] = ()
                         ) -> tuple[pb.CalculateRequest, pb.CalculateReply]:
    """A calculation as central gives it for Анна holding ``balance`` points (priced by the
    same engine on a database of its own, then marked online with the balance shown)."""
    central = _edge(tmp_path, _docs({**ANNA, "balance": balance}, *promotions),
                    policy=LIMITED, name=f"central-{receipt_id}.db")
    request = calculate_request(receipt_id, points_to_redeem=redeem)
    calculation = _calculate(central, request)
    calculation.mode = "online"
    calculation.points.balance = balance
    del calculation.messages[:]
    return request, pb.CalculateReply(calculation=calculation)


def test_receipts_priced_online_after_the_last_sync_are_checked_against_what_central_saw(
    tmp_path: Path,
) -> None:
    # the cache is older than central's answers: Анна had 5 000 points at the last sync,
    # central priced both receipts with her 15 000 now
    edge = _edge(tmp_path, _docs({**ANNA, "balance": 5000}))
    edge.db.set_meta(META_LAST_SYNC_AT, repr(edge.clock()))
    first = _central_calculation(tmp_path, "ONA", balance=15000, redeem=15000)
    second = _central_calculation(tmp_path, "ONB", balance=15000, redeem=15000)
    edge.record_online_calculation(*first)
    edge.record_online_calculation(*second)
    # central goes away: the first confirm is answered here and holds (central's 15 000)
    _confirmed(edge, "ONA", first[1].calculation.due)
    _assert_stale(edge, "ONB", second[1].calculation.due, "15000 points, 0 available")


def test_a_confirm_made_online_since_takes_the_first_purchase_of_a_receipt_priced_online(
    tmp_path: Path,
) -> None:
    edge = _edge(tmp_path, _docs(None, WELCOME))
    edge.db.set_meta(META_LAST_SYNC_AT, repr(edge.clock()))
    first = _central_calculation(tmp_path, "OFA", balance=340000, promotions=(WELCOME,))
    second = _central_calculation(tmp_path, "OFB", balance=340000, promotions=(WELCOME,))
    assert "welcome" in _applied(second[1].calculation)
    edge.record_online_calculation(*first)
    edge.record_online_calculation(*second)
    confirm = confirm_request("OFA", first[1].calculation.due)
    edge.record_online_confirm(confirm, pb.ConfirmReply(
        receipt_id="OFA", mode="online", points=pb.PointsMovement(accrued=777)))
    # then central goes away before the next sync
    _assert_stale(edge, "OFB", second[1].calculation.due, "'welcome'")


def test_a_receipt_priced_online_before_the_last_sync_is_checked_against_the_cache(
    tmp_path: Path,
) -> None:
    edge = _edge(tmp_path, _docs({**ANNA, "balance": 15000}))
    request, reply = _central_calculation(tmp_path, "OSA", balance=15000, redeem=15000)
    edge.record_online_calculation(request, reply)
    # another lane spent the points online; the sync after that brought Анна's 2 000 left
    seed(edge.db, _docs({**ANNA, "balance": 2000}))
    edge.db.set_meta(META_LAST_SYNC_AT, repr(edge.clock()))
    _assert_stale(edge, "OSA", reply.calculation.due, "15000 points, 2000 available")
