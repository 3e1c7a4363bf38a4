"""Lane sessions over real loopback TCP with an in-process daemon core (no central needed).

Central is a port nobody listens on and there is no edge: what remains observable is the lane
layer itself — a bug becomes ``internal`` with a log reference and the lane goes on; central
unreachable without a cache is ``unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from adapter import render
from adapter.config import CentralConfig
from adapter.journal import AnswerJournal
from adapter.lanes import LanePolicy, Lanes
from adapter.metrics import DaemonMetrics
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


class PricingRouter(Router):
    """A router that prices every receipt at its total, with no central behind it."""

    async def calculate(self, request_id: str, lane: str, req: Calculate) -> dict[str, Any]:
        total = req.receipt.total
        body = {"receipt_id": req.receipt.id, "total": total, "discount": 0, "due": total}
        return render.envelope("calculate.result", request_id, body)


async def exchange(port: int, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for message in messages:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        answers.append(json.loads(await asyncio.wait_for(reader.readline(), 10)))
    writer.close()
    return answers


@contextlib.asynccontextmanager
async def lanes_server(
    tmp_path: Path,
    router_class: type[Router],
    *,
    idle_timeout_s: float = 120.0,
    metrics: DaemonMetrics | None = None,
) -> AsyncIterator[int]:
    """Lanes on a loopback port (yielded); central is a port nobody listens on."""
    dead = f"127.0.0.1:{free_port()}"
    client = CentralClient(open_channel(dead, CentralConfig(url=f"grpc://{dead}")), deadline_ms=200)
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
        store="S001",
        router=router,
        journal=journal,
        policy=LanePolicy(any_lane=True),
        idle_timeout_s=idle_timeout_s,
        metrics=metrics,
    )
    server = await serve_tcp("127.0.0.1", 0, LinesFraming, lanes.serve)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await client.close()
        journal.close()


def run_lanes(
    tmp_path: Path, router_class: type[Router], messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    async def scenario() -> list[dict[str, Any]]:
        async with lanes_server(tmp_path, router_class) as port:
            return await exchange(port, messages)

    return asyncio.run(scenario())


def kept(tmp_path: Path, request_id: str) -> dict[str, Any] | None:
    journal = AnswerJournal(tmp_path / "answers.db", "S001")
    try:
        found = journal.lookup(request_id)
    finally:
        journal.close()
    return None if found is None else found.answer


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
    assert kept(tmp_path, "c1") is None


def calculate(request_id: str, receipt: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "type": "calculate", "id": request_id, "receipt": receipt}


def test_refusals_of_a_request_are_kept_and_its_id_cannot_be_reused(tmp_path: Path) -> None:
    answers = run_lanes(
        tmp_path,
        PricingRouter,
        [
            HELLO,
            calculate("bad", {}),
            calculate("bad", {}),
            calculate("bad", oil_receipt("R-1")),
            {"v": 2, "type": "cancel", "id": "v2", "receipt_id": "R-8"},
            {"v": 2, "type": "cancel", "id": "v2", "receipt_id": "R-8"},
            {"v": 1, "type": "cancel", "id": "v2", "receipt_id": "R-9"},
            {"v": 1, "type": "teleport", "id": "tp"},
            {"v": 1, "type": "teleport", "id": "tp"},
            calculate("tp", oil_receipt("R-2")),
            {"type": "cancel", "id": "nv", "receipt_id": "R-8"},
            {"type": "cancel", "id": "nv", "receipt_id": "R-8"},
            {"v": 1, "type": "cancel", "id": "nv", "receipt_id": "R-9"},
            calculate("c1", oil_receipt("R-3")),
            calculate("c1", {}),
            {"v": 1, "type": "calculate", "receipt": {}},
        ],
    )
    assert [(a["type"], a.get("code"), a.get("reason")) for a in answers[1:]] == [
        ("error", "invalid", None),
        ("error", "invalid", None),
        ("error", "conflict", "id_reused"),
        ("error", "unsupported_version", None),
        ("error", "unsupported_version", None),
        ("error", "conflict", "id_reused"),
        ("error", "unknown_type", None),
        ("error", "unknown_type", None),
        ("error", "conflict", "id_reused"),
        ("error", "invalid", None),
        ("error", "invalid", None),
        ("error", "conflict", "id_reused"),
        ("calculate.result", None, None),
        ("error", "conflict", "id_reused"),  # not `invalid`: c1 is taken
        ("error", "invalid", None),
    ]
    assert answers[1]["field"] == "receipt.id"
    assert answers[10]["field"] == "v"
    assert answers[15]["id"] is None
    for first, repeat, request_id in ((1, 2, "bad"), (4, 5, "v2"), (7, 8, "tp"), (10, 11, "nv")):
        assert answers[repeat] == answers[first]
        assert kept(tmp_path, request_id) == answers[first]
    assert kept(tmp_path, "c1") == answers[13]


def test_ping_and_hello_are_answered_afresh_and_their_ids_stay_theirs(tmp_path: Path) -> None:
    answers = run_lanes(
        tmp_path,
        PricingRouter,
        [
            HELLO,
            {"v": 1, "type": "ping", "id": "p1"},
            {"v": 1, "type": "ping", "id": "p1"},
            calculate("c1", oil_receipt("R-1")),
            {"v": 1, "type": "ping", "id": "c1"},
            {"v": 1, "type": "hello", "id": "c1", "lane": "01"},
            {**HELLO, "register": {"vendor": "V"}},
            calculate("c1", oil_receipt("R-1")),
            {"v": 1, "type": "balance", "id": "p1", "customer": {"card": "7700001234567"}},
            {"v": 1, "type": "balance", "id": "h", "customer": {"card": "7700001234567"}},
        ],
    )
    # every ping (or hello) under one id is answered afresh, with the mode of now
    assert [a["type"] for a in answers[:4]] == [
        "hello.result", "ping.result", "ping.result", "calculate.result"]
    # a ping cannot take a calculate's id (§2.3) ...
    assert (answers[4]["code"], answers[4]["reason"]) == ("conflict", "id_reused")
    # ... while a hello is answered before its id is looked at (it proves the lane), and one
    # fixed hello id serves every hello
    assert [a["type"] for a in answers[5:7]] == ["hello.result", "hello.result"]
    assert answers[7] == answers[3]  # the calculate's id stays its own
    # nor can another request take a ping's or a hello's id
    assert [(a["code"], a["reason"]) for a in answers[8:]] == [("conflict", "id_reused")] * 2
    assert kept(tmp_path, "p1") is not None
    assert kept(tmp_path, "h") is not None


def test_a_repeated_hello_binds_each_new_connection(tmp_path: Path) -> None:
    ping = {"v": 1, "type": "ping", "id": "p"}

    async def scenario() -> list[list[dict[str, Any]]]:
        async with lanes_server(tmp_path, PricingRouter) as port:
            first = await exchange(port, [HELLO, ping])
            again = await exchange(port, [HELLO, ping])
            other_lane = await exchange(port, [{**HELLO, "lane": "02"}, ping])
            return [first, again, other_lane]

    first, again, other_lane = asyncio.run(scenario())
    assert first[0]["type"] == "hello.result"
    assert again == first  # answered as before, and the new connection serves lane 01
    # one fixed hello id for every lane, as many registers do: each connection is bound
    assert other_lane[0]["type"] == "hello.result"
    assert other_lane[0]["lane"] == "02"
    assert other_lane[1]["type"] == "ping.result"


def test_nothing_is_kept_for_a_connection_without_a_lane(tmp_path: Path) -> None:
    answers = run_lanes(
        tmp_path,
        PricingRouter,
        [
            calculate("u1", {}),
            {"v": 2, "type": "ping", "id": "u2"},
            {"v": 1, "type": "teleport", "id": "u3"},
            {"v": 1, "type": "hello", "id": "u4"},
            HELLO,
            calculate("u2", oil_receipt("R-1")),
        ],
    )
    assert [a.get("code") for a in answers[:4]] == [
        "unauthorized",
        "unsupported_version",
        "unknown_type",
        "invalid",
    ]
    assert answers[5]["type"] == "calculate.result"
    assert all(kept(tmp_path, i) is None for i in ("u1", "u3", "u4"))


def test_a_lone_surrogate_is_malformed_and_the_lane_goes_on(tmp_path: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with lanes_server(tmp_path, PricingRouter) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(json.dumps(HELLO).encode() + b"\n")
            writer.write(b'{"v":1,"type":"ping","id":"ps4","x":"\\udc00"}\n')
            writer.write(b'{"v":1,"type":"ping","id":"ps4"}\n')
            answers = [json.loads(await asyncio.wait_for(reader.readline(), 10)) for _ in "123"]
            writer.close()
            return answers

    answers = asyncio.run(scenario())
    assert answers[1]["code"] == "malformed"
    assert answers[1]["id"] is None
    assert "Unicode" in answers[1]["message"]
    assert answers[2]["type"] == "ping.result"


def test_any_byte_in_counts_as_traffic_for_the_idle_close(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict[str, Any], bytes, float]:
        async with lanes_server(tmp_path, PricingRouter, idle_timeout_s=0.6) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(json.dumps(HELLO).encode() + b"\n")
            await asyncio.wait_for(reader.readline(), 10)
            # 2.4 s of bytes that make no message: blank lines, then a line in pieces.
            pieces = [b"\n", b"\r\n", b"  \n", b"\n", b"\n", b"\n"]
            pieces += [b'{"v":1,', b'"type":', b'"ping",', b'"id":', b'"late"', b"  "]
            for piece in pieces:
                writer.write(piece)
                await asyncio.sleep(0.2)
            writer.write(b"}\n")
            answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
            quiet_from = time.monotonic()
            end = await asyncio.wait_for(reader.read(), 10)  # idle again: closed
            writer.close()
            return answer, end, time.monotonic() - quiet_from

    answer, end, quiet = asyncio.run(scenario())
    assert answer["type"] == "ping.result"
    assert answer["id"] == "late"
    assert end == b""
    assert 0.5 < quiet < 3


class BrokenMetrics(DaemonMetrics):
    """Metrics that break on counting the answer to id ``boom``: a worker that dies."""

    def observe(self, lane: str, kind: str, answer: dict[str, object], seconds: float) -> None:
        if answer.get("id") == "boom":
            raise RuntimeError("metrics broke")
        super().observe(lane, kind, answer, seconds)


def test_a_session_whose_worker_dies_ends_and_raises_instead_of_reading_on(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[list[bytes], list[BaseException]]:
        raised: list[BaseException] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: raised.append(context["exception"])
        )
        async with lanes_server(tmp_path, PricingRouter, metrics=BrokenMetrics()) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for request_id in ("h", "boom", "p1"):
                message = HELLO if request_id == "h" else {"v": 1, "type": "ping", "id": request_id}
                writer.write(json.dumps(message).encode() + b"\n")
            lines = [await asyncio.wait_for(reader.readline(), 10) for _ in range(3)]
            writer.close()
            await asyncio.sleep(0.1)
        return lines, raised

    lines, raised = asyncio.run(scenario())
    assert [json.loads(line)["id"] for line in lines[:2]] == ["h", "boom"]
    assert lines[2] == b""  # the connection ended: p1 is not read into a dead queue
    assert [str(exc) for exc in raised] == ["metrics broke"]  # for the daemon to log


def test_a_refused_hello_or_ping_is_not_kept_either(tmp_path: Path) -> None:
    answers = run_lanes(
        tmp_path,
        PricingRouter,
        [
            HELLO,
            {"v": 1, "type": "hello", "id": "y", "lane": ""},
            calculate("y", oil_receipt("R-1")),
            calculate("k", oil_receipt("R-2")),
            {"v": 1, "type": "hello", "id": "k", "lane": 5},
            {"v": 2, "type": "ping", "id": "v"},
            calculate("v", oil_receipt("R-3")),
        ],
    )
    assert answers[1]["code"] == "invalid"
    assert answers[1]["field"] == "lane"
    assert answers[2]["type"] == "calculate.result"  # the refused hello did not take "y"
    assert answers[4]["code"] == "invalid"  # checked afresh, not against k's calculate
    assert answers[4]["field"] == "lane"
    assert answers[5]["code"] == "unsupported_version"
    assert answers[6]["type"] == "calculate.result"
    assert kept(tmp_path, "y")["type"] == "calculate.result"
    assert kept(tmp_path, "v")["type"] == "calculate.result"


class GatedRouter(PricingRouter):
    """Prices like PricingRouter once ``gate`` is set: requests pile up behind the first."""

    gate: asyncio.Event

    async def calculate(self, request_id: str, lane: str, req: Calculate) -> dict[str, Any]:
        await self.gate.wait()
        return await super().calculate(request_id, lane, req)


async def eight_waiting(
    port: int, prefix: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A lane said hello and sent 8 calculates ``{prefix}1..8``, held by GatedRouter's gate."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(json.dumps(HELLO).encode() + b"\n")
    assert json.loads(await reader.readline())["type"] == "hello.result"
    pipelined = [calculate(f"{prefix}{i}", oil_receipt(f"R-{prefix}{i}")) for i in range(1, 9)]
    writer.write(b"".join(json.dumps(m).encode() + b"\n" for m in pipelined))
    return reader, writer


def test_an_unreadable_line_past_the_limit_waits_in_line_for_its_id_null_answer(
    tmp_path: Path,
) -> None:
    # §1.1: an error with id null answers the oldest unanswered line, and a ninth request is
    # answered busy at once. A ninth *line* without an id cannot have both: a busy without
    # an id sent at once would read as c1's answer. It is answered in its place instead.
    async def scenario() -> None:
        GatedRouter.gate = asyncio.Event()
        async with lanes_server(tmp_path, GatedRouter) as port:
            reader, writer = await eight_waiting(port, "c")
            writer.write(b"not json\n")
            writer.write(json.dumps(calculate("c9", oil_receipt("R-gate-9"))).encode() + b"\n")
            await writer.drain()
            first = json.loads(await asyncio.wait_for(reader.readline(), 10))
            assert (first["id"], first["code"]) == ("c9", "busy")
            with contextlib.suppress(TimeoutError):
                early = await asyncio.wait_for(reader.readline(), 0.5)
                raise AssertionError(f"answered before the queued requests: {early!r}")
            GatedRouter.gate.set()
            rest = [json.loads(await asyncio.wait_for(reader.readline(), 10)) for _ in range(9)]
            assert [a["id"] for a in rest] == [f"c{i}" for i in range(1, 9)] + [None]
            assert rest[-1]["code"] == "malformed"
            writer.close()

    asyncio.run(scenario())


def test_a_flood_of_unreadable_lines_is_held_back_and_every_line_answered_in_order(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        GatedRouter.gate = asyncio.Event()
        async with lanes_server(tmp_path, GatedRouter) as port:
            reader, writer = await eight_waiting(port, "f")
            writer.write(b"[1]\n" * 40)  # more than the lines allowed to wait in line
            await writer.drain()
            await asyncio.sleep(0.3)
            GatedRouter.gate.set()
            answers = [json.loads(await asyncio.wait_for(reader.readline(), 10))
                       for _ in range(48)]
            assert [a["id"] for a in answers[:8]] == [f"f{i}" for i in range(1, 9)]
            assert {(a["id"], a["code"]) for a in answers[8:]} == {(None, "malformed")}
            writer.close()

    asyncio.run(scenario())


def test_an_integer_of_thousands_of_digits_is_json_and_refused_by_its_field(
    tmp_path: Path,
) -> None:
    # Python converts at most 4 300 digits; the line is still JSON, so not `malformed` (§3).
    async def scenario() -> list[dict[str, Any]]:
        async with lanes_server(tmp_path, PricingRouter) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            huge = b"1" + b"0" * 5000
            writer.write(json.dumps(HELLO).encode() + b"\n")
            writer.write(b'{"v":1,"type":"confirm","id":"c-big","receipt_id":"R1","due":' + huge
                         + b',"fiscal":{"document":"1","at":"2026-11-23T10:20:00Z"},'
                         b'"payments":[]}\n')
            writer.write(b'{"v":1,"type":"ping","id":"p-big","note":-' + huge + b"}\n")
            writer.write(b'{"v":1,"type":"ping","id":"p-bad","note":' + huge + b",}\n")
            await writer.drain()
            answers = [json.loads(await asyncio.wait_for(reader.readline(), 10))
                       for _ in range(4)]
            writer.close()
            return answers

    answers = asyncio.run(scenario())
    refused = answers[1]
    assert (refused["id"], refused["code"], refused["field"]) == ("c-big", "invalid", "due")
    assert (answers[2]["id"], answers[2]["type"]) == ("p-big", "ping.result")
    assert (answers[3]["id"], answers[3]["code"]) == (None, "malformed")
