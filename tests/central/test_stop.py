"""Stopping central never closes its database under a call still inside it.

gRPC counts a call done once it is cancelled, while the handler's thread may still be in
the database: closing the connection under it crashed the daemon with SIGSEGV at stop
(embedded central, an edge's Pull cancelled by the stop). A real server on loopback; the
sync feed is replaced by one that holds its read open for a while.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import central.server
from central.server import start_server
from central.storage import SQLiteRepository
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc

HELD_S = 0.5


def test_stop_waits_for_a_cancelled_pull_to_leave_the_database(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, left = threading.Event(), threading.Event()
    outcome: list[str] = []

    def slow_pull(repository: SQLiteRepository, request: pb.PullRequest) -> Iterator[pb.SyncPage]:
        try:
            with repository.read() as tx:
                inside.set()
                time.sleep(HELD_S)
                tx.setting("central.id")  # the connection, used after the pause
            outcome.append("read")
        except Exception as exc:
            outcome.append(type(exc).__name__)
        finally:
            left.set()
        yield pb.SyncPage(last=True)

    monkeypatch.setattr(central.server, "pull", slow_pull)
    server = start_server(db, demo=True, workers=4)
    try:
        with grpc.insecure_channel(server.address) as channel:
            call = pb_grpc.SyncStub(channel).Pull(pb.PullRequest(store="S001"))

            def read_all() -> None:
                with contextlib.suppress(grpc.RpcError):  # cancelled below
                    list(call)

            reader = threading.Thread(target=read_all, daemon=True)
            reader.start()
            assert inside.wait(10)
            call.cancel()
            server.stop(0)
            assert left.is_set()  # stop returned only once the handler had left
    finally:
        server.stop(0)
    assert outcome == ["read"]
