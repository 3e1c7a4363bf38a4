"""End to end: a real ``tillgate run`` process, real TCP registers, a real gRPC central."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.simulate import RegisterClient
from tests.integration.data import CARD, import_chain, oil_receipt
from tests.integration.harness import DaemonProcess, central_server, daemon_config, free_port

FISCAL = {"document": "1", "at": "2026-11-23T10:20:00+03:00"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DaemonProcess]:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    with central_server(db, demo=False) as central:
        port = free_port()
        config = daemon_config(
            tmp_path,
            central_url=f"grpc://{central.address}",
            port=port,
            extra='[[lane]]\nid = "01"\n[[lane]]\nid = "02"\ntoken = "s3cret"\n',
        )
        daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
        try:
            yield daemon
        finally:
            daemon.stop()


async def lane(daemon: DaemonProcess, lane_id: str = "01", token: str = "") -> RegisterClient:
    client = await RegisterClient.connect("127.0.0.1", daemon.port)
    hello = await client.request("hello", {"lane": lane_id, "token": token})
    assert hello["type"] == "hello.result", hello
    return client


def confirm_body(receipt_id: str, due: int, fiscal: dict[str, str] = FISCAL) -> dict[str, Any]:
    return {
        "receipt_id": receipt_id,
        "due": due,
        "fiscal": fiscal,
        "payments": [{"kind": "card", "amount": due}],
    }


def test_hello_identify_calculate_confirm_balance_cancel_refund(store: DaemonProcess) -> None:
    async def scenario() -> None:
        client = await RegisterClient.connect("127.0.0.1", store.port)
        hello = await client.request(
            "hello", {"lane": "01", "register": {"vendor": "V", "model": "M", "software": "S"}}
        )
        assert hello["type"] == "hello.result"
        assert hello["store"] == "S001"
        assert hello["lane"] == "01"
        assert hello["versions"] == [1]
        assert hello["mode"] == "online"

        ident = await client.request("identify", {"customer": {"card": CARD}})
        assert ident["type"] == "identify.result", ident
        assert ident["customer"]["id"] == "C1"
        assert ident["customer"]["balance"] == 340000
        before = ident["customer"]["balance"]

        calc = await client.request("calculate", {"receipt": oil_receipt("R-flow-1")})
        assert calc["type"] == "calculate.result", calc
        assert calc["mode"] == "online"
        assert calc["lines"][0]["discount"] == 4797
        assert calc["lines"][0]["amount"] == 27183
        assert calc["discount"] == 4797
        assert calc["due"] == 31683
        assert calc["points"]["accrue"] == 1359 + 225
        assert calc["customer"]["id"] == "C1"
        assert [p["id"] for p in calc["promotions"]] == ["oil-15", "base-points"]

        confirm = await client.request("confirm", confirm_body("R-flow-1", calc["due"]))
        assert confirm["type"] == "confirm.result", confirm
        assert confirm["points"]["accrued"] == 1584
        assert confirm["points"]["balance"] == before + 1584

        balance = await client.request("balance", {"customer": {"card": CARD}})
        assert balance["customer"]["balance"] == before + 1584

        calc2 = await client.request("calculate", {"receipt": oil_receipt("R-flow-2")})
        assert calc2["type"] == "calculate.result"
        cancel = await client.request("cancel", {"receipt_id": "R-flow-2"})
        assert cancel == {
            "v": 1,
            "type": "cancel.result",
            "id": cancel["id"],
            "receipt_id": "R-flow-2",
        }
        late = await client.request("confirm", confirm_body("R-flow-2", calc2["due"]))
        assert late["code"] == "conflict"
        assert late["reason"] == "cancelled"

        refund = await client.request("refund", {"refund_id": "F-flow-1", "receipt_id": "R-flow-1"})
        assert refund["type"] == "refund.result", refund
        assert refund["points"]["reversed"] == 1584
        assert refund["points"]["balance"] == before
        again = await client.request("balance", {"customer": {"card": CARD}})
        assert again["customer"]["balance"] == before
        await client.close()

    asyncio.run(scenario())


def test_repeated_id_returns_identical_answer_and_moves_balance_once(store: DaemonProcess) -> None:
    async def scenario() -> None:
        client = await lane(store)
        calc = await client.request(
            "calculate", {"receipt": oil_receipt("R-rep-1")}, request_id="rep-calc"
        )
        first = await client.request(
            "confirm", confirm_body("R-rep-1", calc["due"]), request_id="rep-conf"
        )
        second = await client.request(
            "confirm", confirm_body("R-rep-1", calc["due"]), request_id="rep-conf"
        )
        assert first == second
        reused = await client.request("cancel", {"receipt_id": "R-rep-1"}, request_id="rep-conf")
        assert reused["code"] == "conflict"
        assert reused["reason"] == "id_reused"
        balance = await client.request("balance", {"customer": {"card": CARD}})
        assert balance["customer"]["balance"] == 340000 + first["points"]["accrued"]
        await client.close()

    asyncio.run(scenario())
    store.stop()
    store.start()

    async def after_restart() -> None:
        client = await lane(store)
        calc = await client.request(
            "calculate", {"receipt": oil_receipt("R-rep-1")}, request_id="rep-calc"
        )
        assert calc["type"] == "calculate.result"
        kept = await client.request(
            "confirm", confirm_body("R-rep-1", calc["due"]), request_id="rep-conf"
        )
        assert kept["type"] == "confirm.result"
        assert kept["points"]["balance"] == 340000 + kept["points"]["accrued"]
        other_id = await client.request("confirm", confirm_body("R-rep-1", calc["due"]))
        assert other_id["type"] == "confirm.result"
        assert other_id["points"] == kept["points"]
        balance = await client.request("balance", {"customer": {"card": CARD}})
        assert balance["customer"]["balance"] == 340000 + kept["points"]["accrued"]
        await client.close()

    asyncio.run(after_restart())


async def raw_lines(port: int, payload: bytes, answers: int) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 * 1024 * 1024)
    writer.write(payload)
    await writer.drain()
    result = [json.loads(await asyncio.wait_for(reader.readline(), 15)) for _ in range(answers)]
    writer.close()
    return result


def test_every_error_code_and_the_connection_stays_usable(store: DaemonProcess) -> None:
    async def scenario() -> None:
        # unauthorized before hello, then malformed / too_large with id null, in order
        big = b'{"v":1,"type":"ping","id":"big","pad":"' + b"x" * (1024 * 1024 + 10) + b'"}\n'
        answers = await raw_lines(
            store.port,
            b'{"v":1,"type":"ping","id":"p0"}\nnot json\n'
            + big
            + b'{"v":1,"type":"hello","id":"h","lane":"01"}\n'
            b'{"v":1,"type":"ping","id":"p1"}\n',
            5,
        )
        assert answers[0]["code"] == "unauthorized"
        assert answers[0]["id"] == "p0"
        assert answers[1]["code"] == "malformed"
        assert answers[1]["id"] is None
        assert answers[2]["code"] == "too_large"
        assert answers[2]["id"] is None
        assert answers[3]["type"] == "hello.result"
        assert answers[4]["type"] == "ping.result"

        client = await RegisterClient.connect("127.0.0.1", store.port)
        wrong = await client.request("hello", {"lane": "02", "token": "nope"})
        assert wrong["code"] == "unauthorized"
        unknown = await client.request("hello", {"lane": "77"})
        assert unknown["code"] == "unauthorized"
        ok = await client.request("hello", {"lane": "02", "token": "s3cret"})
        assert ok["type"] == "hello.result"
        other = await client.request("hello", {"lane": "01"})
        assert other["code"] == "conflict"
        assert other["reason"] == "lane"

        version = await client.request("ping", {"v": 2})
        assert version["code"] == "unsupported_version"
        kind = await client.request("teleport")
        assert kind["code"] == "unknown_type"
        bad = oil_receipt("R-err-1")
        bad["lines"][1]["quantity"] = "-1"  # type: ignore[index]  # test data is a plain dict
        invalid = await client.request("calculate", {"receipt": bad})
        assert invalid["code"] == "invalid"
        assert invalid["field"] == "receipt.lines[1].quantity"
        missing = await client.request("confirm", confirm_body("R-never", 100))
        assert missing["code"] == "not_found"
        assert missing["field"] == "receipt_id"
        nobody = await client.request("identify", {"customer": {"card": "0000"}})
        assert nobody["code"] == "not_found"
        calc = await client.request("calculate", {"receipt": oil_receipt("R-err-2")})
        stale = await client.request("confirm", confirm_body("R-err-2", calc["due"] + 1))
        assert stale["code"] == "conflict"
        assert stale["reason"] == "stale"
        refund_open = await client.request(
            "refund", {"refund_id": "F-err", "receipt_id": "R-err-2"}
        )
        assert refund_open["code"] == "conflict"
        done = await client.request("confirm", confirm_body("R-err-2", calc["due"]))
        assert done["type"] == "confirm.result"
        over = await client.request(
            "refund",
            {"refund_id": "F-err-2", "receipt_id": "R-err-2", "lines": [{"n": 1, "quantity": "3"}]},
        )
        assert over["code"] == "conflict"
        assert over["reason"] == "over_refund"
        assert {"n": 1, "quantity": "2"} in over["remaining"]
        refiscal = await client.request(
            "confirm", confirm_body("R-err-2", calc["due"], {"document": "2", "at": FISCAL["at"]})
        )
        assert refiscal["code"] == "conflict"
        assert refiscal["reason"] == "confirmed"
        ping = await client.request("ping")
        assert ping["type"] == "ping.result"
        await client.close()

    asyncio.run(scenario())


def test_pipelined_requests_answer_in_order_and_ninth_is_busy(store: DaemonProcess) -> None:
    async def scenario() -> None:
        lines = [b'{"v":1,"type":"hello","id":"h","lane":"01"}\n']
        for i in range(12):
            body = {
                "v": 1,
                "type": "calculate",
                "id": f"pipe-{i}",
                "receipt": oil_receipt(f"R-pipe-{i}"),
            }
            lines.append(json.dumps(body).encode() + b"\n")
        answers = await raw_lines(store.port, b"".join(lines), 13)
        ids = [a["id"] for a in answers]
        busy = [a for a in answers if a.get("code") == "busy"]
        done = [a for a in answers if a["type"] == "calculate.result"]
        assert len(busy) + len(done) == 12
        # hello plus seven calculations fill the eight places; the rest cannot all fit
        assert len(done) >= 7
        assert busy
        assert ids.index(busy[0]["id"]) < ids.index(done[-1]["id"])
        assert all(b["retry_after_ms"] > 0 for b in busy)
        done_ids = [a["id"] for a in done]
        assert done_ids == sorted(done_ids, key=lambda x: int(x.split("-")[1]))
        assert ids[0] == "h"

    asyncio.run(scenario())


def test_takeover_closes_the_older_connection(store: DaemonProcess) -> None:
    async def scenario() -> None:
        old = await lane(store)
        new = await lane(store)
        with pytest.raises((ConnectionError, json.JSONDecodeError)):
            await old.request("ping")
        pong = await new.request("ping")
        assert pong["type"] == "ping.result"
        await new.close()
        await old.close()

    asyncio.run(scenario())
    assert "lane_takeover" in store.output()
    assert CARD not in store.output()


def test_idle_tcp_connection_is_closed(tmp_path: Path) -> None:
    """The rule is 120 s by default; the listener's ``idle_timeout_s`` makes it testable."""
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    with central_server(db, demo=False) as central:
        port = free_port()
        config = daemon_config(tmp_path, central_url=f"grpc://{central.address}", port=port)
        config.write_text(
            config.read_text().replace('framing = "lines"', 'framing = "lines"\nidle_timeout_s = 1')
        )
        daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
        try:

            async def scenario() -> bytes:
                client = await lane(daemon)
                pong = await client.request("ping")
                assert pong["type"] == "ping.result"
                return await asyncio.wait_for(client.read_rest(), 10)

            assert asyncio.run(scenario()) == b""
        finally:
            daemon.stop()
    assert "lane_idle_closed" in daemon.output()
