"""The outbox and its upload worker: durability under SIGKILL, exactly-once delivery to a real
gRPC server that fails, loses acknowledgements and flaps behind a fault proxy."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offline.db import EdgeDatabase
from offline.outbox import Outbox
from offline.uploader import Uploader
from protos import tillgate_pb2 as pb
from tests.faultproxy import FaultProxy
from tests.offline.fakecentral import FakeCentral
from tillgate.errors import UpstreamUnavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def central() -> Iterator[FakeCentral]:
    server = FakeCentral()
    yield server
    server.stop()


def _cancel(receipt_id: str) -> pb.CancelRequest:
    return pb.CancelRequest(context=pb.Context(store="S001"), receipt_id=receipt_id)


def _fill(outbox: Outbox, count: int) -> list[tuple[str, str, int]]:
    keys = []
    for i in range(count):
        entry = outbox.append(f"R{i % 97}", "cancel", _cancel(f"R{i % 97}"))
        keys.append((entry.store, entry.receipt_id, entry.seq))
    return keys


def _drain(outbox: Outbox, address: str) -> int:
    async def main() -> int:
        uploader = Uploader(outbox, batch_size=100, backoff_initial_s=0.01, backoff_max_s=0.05)
        async with grpc.aio.insecure_channel(address) as channel:
            return await uploader.drain(channel)

    return asyncio.run(main())


def test_entries_get_increasing_seqs_and_age(tmp_path: Path) -> None:
    now = [1000.0]
    outbox = Outbox(EdgeDatabase(tmp_path / "cache.db"), store="S001", clock=lambda: now[0])
    assert outbox.depth() == 0
    assert outbox.oldest_age_s() is None
    first = outbox.append("R1", "cancel", _cancel("R1"))
    now[0] += 30
    second = outbox.append("R2", "cancel", _cancel("R2"))
    now[0] += 12
    assert (first.seq, second.seq) == (1, 2)
    assert first.at == "1970-01-01T00:16:40+00:00"
    assert first.WhichOneof("operation") == "cancel"
    assert outbox.depth() == 2
    assert outbox.oldest_age_s() == 42.0
    assert outbox.has_pending("R2")
    assert [e.seq for e in outbox.pending(10)] == [1, 2]


def test_seq_is_never_reused_after_a_purge(tmp_path: Path, central: FakeCentral) -> None:
    outbox = Outbox(EdgeDatabase(tmp_path / "cache.db"), store="S001")
    _fill(outbox, 3)
    _drain(outbox, central.address)
    assert outbox.purge_done(older_than_s=-1) == 3
    assert outbox.append("R9", "cancel", _cancel("R9")).seq == 4


def test_outbox_survives_sigkill_of_the_writer(tmp_path: Path, central: FakeCentral) -> None:
    db_path = tmp_path / "cache.db"
    EdgeDatabase(db_path).close()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.offline.outbox_child", str(db_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acknowledged: list[tuple[int, str]] = []
    for line in child.stdout:
        seq_text, reported_id = line.split()
        acknowledged.append((int(seq_text), reported_id))
        if len(acknowledged) == 300:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(30)
    child.stdout.close()

    outbox = Outbox(EdgeDatabase(db_path), store="S001")
    entries = outbox.pending(100_000)
    seqs = [entry.seq for entry in entries]
    # nothing the writer reported is lost; nothing is there twice; no gaps
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 300
    by_seq = {entry.seq: entry.receipt_id for entry in entries}
    for seq, reported_id in acknowledged:
        assert by_seq[seq] == reported_id
    assert all(entry.cancel.receipt_id == entry.receipt_id for entry in entries)

    _drain(outbox, central.address)
    assert sorted(central.processing.applied) == sorted(
        ("S001", entry.receipt_id, entry.seq) for entry in entries
    )
    assert outbox.depth() == 0


def test_exactly_once_when_calls_fail_and_acks_are_lost(
    tmp_path: Path, central: FakeCentral
) -> None:
    outbox = Outbox(EdgeDatabase(tmp_path / "cache.db"), store="S001")
    keys = _fill(outbox, 1000)
    central.processing.control.fail_next = 3
    central.processing.control.lose_acks_next = 2
    settled = _drain(outbox, central.address)
    assert settled == 1000
    assert sorted(central.processing.applied) == sorted(keys)
    # the two batches whose acks were lost went twice: repeats reached central, once applied
    assert len(central.processing.received) == 1200
    assert outbox.depth() == 0
    assert outbox.oldest_age_s() is None


def test_rejected_entries_are_kept_and_never_block(tmp_path: Path, central: FakeCentral) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    outbox = Outbox(db, store="S001")
    keys = _fill(outbox, 200)
    central.processing.control.reject_receipts = {"R5"}
    _drain(outbox, central.address)
    rejected = db.query("SELECT receipt_id, ack_status FROM outbox WHERE status = 'rejected'")
    assert {row["receipt_id"] for row in rejected} == {"R5"}
    assert len(rejected) == sum(1 for key in keys if key[1] == "R5")
    assert len(central.processing.applied) == 200 - len(rejected)
    assert outbox.depth() == 0


def test_rejected_entries_requeued_are_sent_again_and_applied_once(
    tmp_path: Path, central: FakeCentral
) -> None:
    db = EdgeDatabase(tmp_path / "cache.db")
    outbox = Outbox(db, store="S001")
    _fill(outbox, 300)
    central.processing.control.reject_receipts = {"R5", "R6"}
    _drain(outbox, central.address)
    rejected = [int(row["seq"]) for row in db.query(
        "SELECT seq FROM outbox WHERE status = 'rejected' ORDER BY seq")]
    assert len(rejected) == 8  # R5 and R6 are seqs 6, 7, 103, 104, 200, 201, 297, 298
    central.processing.control.reject_receipts = set()  # the cause is fixed at central

    one, foreign = outbox.requeue_rejected([rejected[0]])
    assert [(e.seq, e.receipt_id, e.operation) for e in one] == [(rejected[0], "R5", "cancel")]
    assert foreign == []
    assert outbox.depth() == 1
    assert _drain(outbox, central.address) == 1
    rest, _ = outbox.requeue_rejected()
    assert [entry.seq for entry in rest] == rejected[1:]
    assert outbox.depth() == 7
    assert _drain(outbox, central.address) == 7
    assert outbox.depth() == 0
    assert db.query("SELECT count(*) AS n FROM outbox WHERE status = 'rejected'")[0]["n"] == 0
    assert len(central.processing.applied) == 300  # every entry once
    assert outbox.requeue_rejected() == ([], [])


def test_unreachable_central_raises_upstream_unavailable(tmp_path: Path) -> None:
    outbox = Outbox(EdgeDatabase(tmp_path / "cache.db"), store="S001")
    _fill(outbox, 2)

    async def main() -> None:
        uploader = Uploader(outbox, call_timeout_s=2)
        async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
            await uploader.upload_batch(channel)

    with pytest.raises(UpstreamUnavailable, match="upload of 2 entries from seq 1"):
        asyncio.run(main())
    assert outbox.depth() == 2


def test_exactly_once_through_a_flapping_network(tmp_path: Path, central: FakeCentral) -> None:
    outbox = Outbox(EdgeDatabase(tmp_path / "cache.db"), store="S001")
    keys = _fill(outbox, 3000)
    rng = random.Random(7)

    async def main() -> tuple[int, int]:
        async with FaultProxy(central.port) as proxy:
            uploader = Uploader(
                outbox,
                batch_size=50,
                backoff_initial_s=0.01,
                backoff_max_s=0.1,
                call_timeout_s=0.5,
            )

            async def flap() -> None:
                while True:
                    await asyncio.sleep(rng.uniform(0.005, 0.05))
                    proxy.set_mode(rng.choice(["reset", "stall", "drop"]))
                    await asyncio.sleep(rng.uniform(0.005, 0.05))
                    proxy.set_mode("pass")

            flapper = asyncio.create_task(flap())
            try:
                async with grpc.aio.insecure_channel(proxy.address) as channel:
                    return await uploader.drain(channel), proxy.accepted
            finally:
                flapper.cancel()
                await asyncio.gather(flapper, return_exceptions=True)

    settled, connections = asyncio.run(main())
    assert settled == 3000
    assert connections > 1, "the network never broke a connection"
    assert sorted(central.processing.applied) == sorted(keys)
    assert outbox.depth() == 0


def test_upload_worker_runs_until_stopped(tmp_path: Path, central: FakeCentral) -> None:
    outbox = Outbox(EdgeDatabase(tmp_path / "cache.db"), store="S001")
    _fill(outbox, 5)

    async def main() -> None:
        uploader = Uploader(outbox, idle_s=30, backoff_initial_s=0.01, backoff_max_s=0.05)
        stop = asyncio.Event()
        async with grpc.aio.insecure_channel(central.address) as channel:
            worker = asyncio.create_task(uploader.run(channel, stop))
            while outbox.depth():
                await asyncio.sleep(0.01)
            # new work is picked up at once when the worker is woken, not after idle_s
            outbox.append("R-late", "cancel", _cancel("R-late"))
            uploader.wake()
            while outbox.depth():
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(worker, 10)

    asyncio.run(main())
    assert len(central.processing.applied) == 6
    assert ("S001", "R-late", 6) in central.processing.applied


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 5)),
            st.tuples(
                st.just("ack"),
                st.lists(
                    st.sampled_from(["applied", "duplicate", "rejected", "lost", "bogus"]),
                    max_size=6,
                ),
            ),
        ),
        max_size=25,
    )
)
def test_depth_counter_always_matches_the_rows(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any]]
) -> None:
    db = EdgeDatabase(tmp_path_factory.mktemp("outbox") / "cache.db")
    outbox = Outbox(db, store="S001")
    for action, arg in steps:
        if action == "append":
            outbox.append(f"R{arg}", "cancel", _cancel(f"R{arg}"))
        else:
            batch = outbox.pending(len(arg))
            acks = [
                pb.EntryAck(receipt_id=entry.receipt_id, seq=entry.seq, status=status)
                for entry, status in zip(batch, arg, strict=False)
                if status != "lost"
            ]
            # an ack repeated (a retried batch) must not count twice
            outbox.record_acks(batch, acks + acks)
        rows = db.query("SELECT count(*) AS n FROM outbox WHERE status = 'pending'")
        assert outbox.depth() == rows[0]["n"]
        assert (outbox.oldest_age_s() is None) == (outbox.depth() == 0)
        assert [e.seq for e in outbox.pending(1000)] == sorted(e.seq for e in outbox.pending(1000))
    db.close()
