"""The offline policy at work: denied and limited redemption, coupons used offline once,
queue and age caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty import CustomerRef
from offline.cache import META_SYNC_VERSION, EdgeCache
from offline.db import EdgeDatabase
from offline.policy import OfflinePolicy
from offline.processor import AGE_WARNING, QUEUE_WARNING, OfflineProcessor
from offline.sync import SyncClient
from protos import tillgate_pb2 as pb
from tests.offline.edge import (
    ANNA,
    DEFAULT_DOCS,
    STORE,
    calculate_request,
    confirm_request,
    seed,
)
from tillgate.errors import ConfigError

NOW = 1_795_418_100.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _edge(
    tmp_path: Path, policy: OfflinePolicy, *, balance: int = 15000, clock: Clock | None = None
) -> OfflineProcessor:
    db = EdgeDatabase(tmp_path / "cache.db")
    docs = [
        (kind, {**body, "balance": balance} if body is ANNA else body)
        for kind, body in DEFAULT_DOCS
    ]
    seed(db, docs)
    return OfflineProcessor(db, store=STORE, policy=policy, clock=clock or Clock())


def _redeem_max(edge: OfflineProcessor, receipt_id: str) -> int:
    """The redemption allowance offline pricing gives the customer on a new receipt."""
    return edge.calculate(
        calculate_request(receipt_id, points_to_redeem=1)
    ).calculation.points.redeem_max


def test_redemption_is_denied_by_default(tmp_path: Path) -> None:
    edge = _edge(tmp_path, OfflinePolicy())
    calc = edge.calculate(calculate_request(points_to_redeem=5000)).calculation
    assert calc.points.redeem == 0
    assert calc.points.redeem_max == 0
    assert calc.customer.redeem_max == 0
    assert all(line.redeemed == 0 for line in calc.lines)


def test_limited_redemption_counts_what_was_redeemed_offline(tmp_path: Path) -> None:
    edge = _edge(tmp_path, OfflinePolicy(redeem="limited", redeem_cap=10000), balance=15000)
    first = edge.calculate(calculate_request("R1", points_to_redeem=50000)).calculation
    assert first.points.redeem_max == 10000, "the per-receipt cap"
    assert first.points.redeem == 10000
    assert sum(line.redeemed for line in first.lines) == 10000
    confirmed = edge.confirm(confirm_request("R1", first.due))
    assert confirmed.points.redeemed == 10000

    second = edge.calculate(calculate_request("R2", points_to_redeem=50000)).calculation
    assert second.points.redeem_max == 5000, "15 000 at sync minus 10 000 redeemed offline"
    assert second.points.redeem == 5000
    identify = edge.identify(
        pb.IdentifyRequest(
            context=calculate_request().context, customer=pb.CustomerRef(card=ANNA["cards"][0])
        )
    )
    assert identify.customer.redeem_max == 5000

    # a calculation that was never confirmed redeems nothing
    edge.cancel(pb.CancelRequest(context=calculate_request().context, receipt_id="R2"))
    third = edge.calculate(calculate_request("R3", points_to_redeem=50000)).calculation
    assert third.points.redeem_max == 5000


def test_offline_redemptions_are_forgotten_once_central_has_them_and_a_sync_ran(
    tmp_path: Path,
) -> None:
    clock = Clock()
    edge = _edge(tmp_path, OfflinePolicy(redeem="limited"), balance=15000, clock=clock)
    calc = edge.calculate(calculate_request("R1", points_to_redeem=12000)).calculation
    edge.confirm(confirm_request("R1", calc.due))
    assert _redeem_max(edge, "R2") == 3000
    entries = edge.outbox.pending(10)
    clock.now += 5
    edge.outbox.record_acks(
        entries,
        [pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="applied") for e in entries],
    )
    sync = SyncClient(EdgeCache(edge.db), store=STORE, clock=clock)
    # a sync that began before central acknowledged may not carry the new balance yet
    sync.finish(started_at=clock.now - 10, duration_s=0.1)
    assert _redeem_max(edge, "R3") == 3000
    clock.now += 5
    sync.finish(started_at=clock.now - 1, duration_s=0.1)
    # the synced balance (here unchanged, 15 000) is the whole truth again
    assert _redeem_max(edge, "R4") == 15000


def test_a_confirm_central_rejected_stays_counted_here_until_it_is_applied(
    tmp_path: Path,
) -> None:
    clock = Clock()
    edge = _edge(tmp_path, OfflinePolicy(redeem="limited"), balance=15000, clock=clock)
    calc = edge.calculate(calculate_request("R1", points_to_redeem=12000)).calculation
    edge.confirm(confirm_request("R1", calc.due))
    entries = edge.outbox.pending(10)
    clock.now += 5
    edge.outbox.record_acks(
        entries,
        [pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="rejected") for e in entries],
        version=7,
    )
    ref = CustomerRef("card", ANNA["cards"][0])
    # central is reachable: the customer's next sale goes there (the rejection is for review)
    assert not edge.holds_unsent(ref, [])
    sync = SyncClient(EdgeCache(edge.db), store=STORE, clock=clock)
    edge.db.set_meta(META_SYNC_VERSION, "9")  # a checkpoint beyond the acknowledgement
    clock.now += 5
    sync.finish(started_at=clock.now - 1, duration_s=0.1)
    # the store gave those 12 000 points: no synced balance holds them, so they still count
    assert _redeem_max(edge, "R2") == 3000

    requeued, _ = edge.outbox.requeue_rejected()
    assert {entry.receipt_id for entry in requeued} == {"R1"}
    assert edge.holds_unsent(ref, []), "waiting for central again"
    again = edge.outbox.pending(10)
    edge.outbox.record_acks(
        again,
        [pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="applied") for e in again],
        version=10,
    )
    assert not edge.holds_unsent(ref, [])
    edge.db.set_meta(META_SYNC_VERSION, "10")
    sync.finish(started_at=clock.now, duration_s=0.1)
    assert _redeem_max(edge, "R3") == 15000


def test_coupon_used_offline_is_not_accepted_twice(tmp_path: Path) -> None:
    edge = _edge(tmp_path, OfflinePolicy())
    first = edge.calculate(calculate_request("R1", coupons=("SPRING-7F3K",))).calculation
    assert "spring" in [p.id for p in first.promotions]
    assert list(first.effects.coupons) == ["SPRING-7F3K"]
    # not spent until confirmed: another receipt may still use it meanwhile
    assert "spring" in [
        p.id
        for p in edge.calculate(
            calculate_request("R2", coupons=("SPRING-7F3K",))
        ).calculation.promotions
    ]
    edge.confirm(confirm_request("R1", first.due))

    again = edge.calculate(calculate_request("R3", coupons=("spring-7f3k",))).calculation
    assert "spring" not in [p.id for p in again.promotions]
    assert again.discount == first.discount - 1000
    assert any("spring-7f3k" in m.text for m in again.messages if m.target == "cashier")
    # R2 was priced with the code before R1 spent it: its confirm is stale (the register
    # recalculates); the code stays recorded once, for the receipt that spent it
    stale = edge.confirm(confirm_request("R2", first.due))
    assert (stale.error.code, stale.error.reason) == ("conflict", "stale")
    rows = edge.db.query("SELECT code, receipt_id FROM offline_coupons")
    assert [(row["code"], row["receipt_id"]) for row in rows] == [("SPRING-7F3K", "R1")]


def test_coupon_spent_centrally_is_refused(tmp_path: Path) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    seed(db, [*DEFAULT_DOCS, ("coupon", {"id": "SPRING-0001"})])
    edge = OfflineProcessor(db, store=STORE, clock=Clock())
    calc = edge.calculate(calculate_request(coupons=("SPRING-0001",))).calculation
    assert "spring" not in [p.id for p in calc.promotions]


def test_full_outbox_refuses_new_calculations_but_keeps_confirms(tmp_path: Path) -> None:
    edge = _edge(tmp_path, OfflinePolicy(max_queued=3))
    dues = {}
    for receipt_id in ("R1", "R2", "R3"):
        dues[receipt_id] = edge.calculate(calculate_request(receipt_id)).calculation.due
    refused = edge.calculate(calculate_request("R4"))
    assert refused.error.code == "unavailable"
    assert refused.error.reason == "outbox_full"
    assert "offline.max_queued = 3" in refused.error.message
    # the receipts already priced can still be finished
    assert not edge.confirm(confirm_request("R1", dues["R1"])).HasField("error")
    assert not edge.cancel(
        pb.CancelRequest(context=calculate_request().context, receipt_id="R2")
    ).HasField("error")
    assert edge.outbox.depth() == 5


def test_cashier_is_warned_near_the_queue_cap(tmp_path: Path) -> None:
    edge = _edge(tmp_path, OfflinePolicy(max_queued=10))
    for n in range(8):
        texts = [m.text for m in edge.calculate(calculate_request(f"R{n}")).calculation.messages]
        assert not any(text.startswith("Очередь") for text in texts)
    calc = edge.calculate(calculate_request("R9")).calculation
    assert QUEUE_WARNING.format(depth=9, limit=10) in [m.text for m in calc.messages]


def test_cashier_is_warned_when_the_queue_is_old(tmp_path: Path) -> None:
    clock = Clock()
    edge = _edge(tmp_path, OfflinePolicy(max_age_hours=72), clock=clock)
    edge.calculate(calculate_request("R1"))
    clock.now += 72 * 3600
    assert AGE_WARNING.format(hours=72) not in [
        m.text for m in edge.calculate(calculate_request("R2")).calculation.messages
    ]
    clock.now += 1
    calc = edge.calculate(calculate_request("R3")).calculation
    assert AGE_WARNING.format(hours=72) in [m.text for m in calc.messages]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"redeem": "always"}, "offline.redeem"),
        ({"redeem_cap": -1}, "offline.redeem_cap"),
        ({"max_queued": 0}, "offline.max_queued"),
        ({"max_age_hours": 0}, "offline.max_age_hours"),
    ],
)
def test_policy_errors_name_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        OfflinePolicy(**kwargs)  # type: ignore[arg-type]  # wrong values on purpose


def test_a_rejected_confirm_settled_by_hand_is_dismissed_and_stops_counting_after_a_sync(
    tmp_path: Path,
) -> None:
    clock = Clock()
    edge = _edge(tmp_path, OfflinePolicy(redeem="limited"), balance=15000, clock=clock)
    for receipt_id in ("R1", "R2"):
        calc = edge.calculate(calculate_request(receipt_id, points_to_redeem=6000)).calculation
        edge.confirm(confirm_request(receipt_id, calc.due))
    sent = edge.outbox.pending(10)
    entries = [e for e in sent if e.WhichOneof("operation") == "confirm"]
    clock.now += 5
    edge.outbox.record_acks(
        sent,
        [pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="rejected",
                     message="customer unknown") if e in entries
         else pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="applied") for e in sent],
    )
    assert edge.outbox.depth() == 0
    first = next(e.seq for e in entries if e.receipt_id == "R1")
    assert {entry.receipt_id for entry in edge.outbox.rejected()} == {"R1", "R2"}

    dismissed = edge.outbox.dismiss_rejected([first, 999])
    assert [(entry.seq, entry.receipt_id, entry.message) for entry in dismissed] == [
        (first, "R1", "customer unknown")
    ]
    assert {entry.receipt_id for entry in edge.outbox.rejected()} == {"R2"}
    assert edge.outbox.depth() == 0, "a dismissed entry is never sent"
    assert edge.outbox.pending(10) == []
    assert edge.outbox.dismiss_rejected([first]) == [], "only a rejected entry is dismissed"
    # Until a sync that began after the dismissal brings central's adjustment, both sales count.
    sync = SyncClient(EdgeCache(edge.db), store=STORE, clock=clock)
    sync.finish(started_at=clock.now - 1, duration_s=0.1)
    assert _redeem_max(edge, "R3") == 3000
    clock.now += 5
    sync.finish(started_at=clock.now - 1, duration_s=0.1)
    # R1 is settled at central (its balance here stands for the adjustment); R2 still counts
    assert _redeem_max(edge, "R4") == 9000
