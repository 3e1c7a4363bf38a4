"""Lane sessions over real loopback TCP with an in-process daemon core (no central needed).

Central is a port nobody listens on and there is no edge: what remains observable is the lane
layer itself — a bug becomes ``internal`` with a log reference and the lane goes on; central
unreachable without a cache is ``unavailable``.
"""

from __future__ import annotations

import asyncio
import json
import zoneinfo
from pathlib import Path
from typing import Any

from adapter.config import CentralConfig
from adapter.journal import AnswerJournal
from adapter.lanes import LanePolicy, Lanes
from adapter.requests import Calculate
from adapter.router import Router
from adapter.upstream import CentralClient, open_channel
from drivers.lines import LinesFraming
from drivers.tcp import serve_tcp
from offline.breaker import CircuitBreaker
from tests.integration.data import oil_receipt
from tests.integration.harness import free_port


class BuggyRouter(Router):
    """A router with a deliberate bug in calculate: what an unexpected exception looks like."""

    async def calculate(self, request_id: str, lane: str, req: Calculate) -> dict[str, Any]:
        raise ZeroDivisionError("a bug")


async def exchange(port: int, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for message in messages:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        answers.append(json.loads(await asyncio.wait_for(reader.readline(), 10)))
    writer.close()
    return answers


def run_lanes(
    tmp_path: Path, router_class: type[Router], messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    async def scenario() -> list[dict[str, Any]]:
        dead = f"127.0.0.1:{free_port()}"
        client = CentralClient(
            open_channel(dead, CentralConfig(url=f"grpc://{dead}")), deadline_ms=200
        )
        router = router_class(
            store="S001",
            timezone="Europe/Moscow",
            tz=zoneinfo.ZoneInfo("Europe/Moscow"),
            central=client,
            edge=None,
            breaker=CircuitBreaker(),
        )
        journal = AnswerJournal(tmp_path / "answers.db", "S001")
        lanes = Lanes(
            store="S001", router=router, journal=journal, policy=LanePolicy(any_lane=True)
        )
        server = await serve_tcp("127.0.0.1", 0, LinesFraming, lanes.serve)
        try:
            return await exchange(server.sockets[0].getsockname()[1], messages)
        finally:
            server.close()
            await client.close()
            journal.close()

    return asyncio.run(scenario())


HELLO = {"v": 1, "type": "hello", "id": "h", "lane": "01"}


def test_a_bug_is_internal_with_a_log_reference_and_the_lane_goes_on(tmp_path: Path) -> None:
    answers = run_lanes(
        tmp_path,
        BuggyRouter,
        [
            HELLO,
            {"v": 1, "type": "calculate", "id": "c1", "receipt": oil_receipt("R-bug")},
            {"v": 1, "type": "calculate", "id": "c1", "receipt": oil_receipt("R-bug")},
            {"v": 1, "type": "ping", "id": "p"},
        ],
    )
    assert answers[1]["code"] == "internal"
    assert answers[1]["id"] == "c1"
    assert "log reference" in answers[1]["message"]
    assert answers[2]["code"] == "internal"  # not kept: a repeat is a new attempt
    assert answers[2]["message"] != answers[1]["message"]  # each attempt has its own reference
    assert answers[3]["type"] == "ping.result"


def test_central_unreachable_without_an_edge_is_unavailable_and_not_kept(tmp_path: Path) -> None:
    answers = run_lanes(
        tmp_path,
        Router,
        [
            HELLO,
            {"v": 1, "type": "calculate", "id": "c1", "receipt": oil_receipt("R-down")},
            {"v": 1, "type": "ping", "id": "p"},
        ],
    )
    assert answers[1]["code"] == "unavailable"
    assert answers[1]["reason"] == "central_unreachable"
    assert answers[1]["retry_after_ms"] > 0
    assert answers[2]["mode"] == "offline"
    journal = AnswerJournal(tmp_path / "answers.db", "S001")
    assert journal.lookup("c1") is None
    journal.close()
