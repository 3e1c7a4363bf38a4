"""Central dies or stalls: every request still gets an answer, from the edge, and nothing is lost.

Real parts only: central is a separate process (SIGKILLed) or sits behind an asyncio fault
proxy; the daemon is a ``tillgate run`` process; registers talk real TCP.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from adapter.simulate import RegisterClient
from offline.status import read_status
from tests.faultproxy import FaultProxy
from tests.integration.data import CARD, import_chain, oil_receipt
from tests.integration.harness import (
    CentralProcess,
    DaemonProcess,
    central_json,
    central_server,
    daemon_config,
    free_port,
    wait_until,
)

FISCAL = {"document": "7", "at": "2026-11-23T10:20:00+03:00"}
EDGE_SETTINGS = """
[offline]
breaker_failures = 2
breaker_cooldown_ms = 300
[sync]
interval_s = 1
"""


def confirm_body(receipt_id: str, due: int) -> dict[str, Any]:
    return {
        "receipt_id": receipt_id,
        "due": due,
        "fiscal": FISCAL,
        "payments": [{"kind": "cash", "amount": due}],
    }


def synced(edge_db: Path) -> bool:
    return read_status(edge_db)["cache"]["version"] is not None


def test_central_killed_then_back_every_answer_offline_then_uploaded_once(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    central = CentralProcess(db, free_port(), tmp_path / "central.log").start()
    port = free_port()
    config = daemon_config(
        tmp_path,
        central_url=f"grpc://{central.address}",
        port=port,
        deadline_ms=300,
        extra=EDGE_SETTINGS,
    )
    edge_db = tmp_path / "data" / "edge.db"
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        wait_until(lambda: synced(edge_db), what="first sync")

        async def while_down() -> dict[str, Any]:
            client = await RegisterClient.connect("127.0.0.1", port)
            await client.request("hello", {"lane": "01"})
            online = await client.request("calculate", {"receipt": oil_receipt("R-off-1")})
            assert online["mode"] == "online"
            sold = await client.request("calculate", {"receipt": oil_receipt("R-off-0")})
            kept = await client.request(
                "confirm", confirm_body("R-off-0", sold["due"]), request_id="conf-0"
            )
            assert kept["mode"] == "online"
            central.kill()
            # §2.3: the same fiscal under a new id returns the kept confirmation, as it was
            again = await client.request(
                "confirm", confirm_body("R-off-0", sold["due"]), request_id="conf-0-again"
            )
            assert again["type"] == "confirm.result", again
            assert (again["mode"], again["points"]) == (kept["mode"], kept["points"])
            calc = await client.request("calculate", {"receipt": oil_receipt("R-off-2")})
            assert calc["type"] == "calculate.result", calc
            assert calc["mode"] == "offline"
            assert calc["due"] == online["due"]
            assert calc["points"]["accrue"] == online["points"]["accrue"]
            assert calc["points"]["balance"] is None
            answers: dict[str, Any] = {"due": calc["due"], "c0": kept}
            answers["c2"] = await client.request(
                "confirm", confirm_body("R-off-2", calc["due"]), request_id="conf-2"
            )
            answers["c1"] = await client.request(
                "confirm", confirm_body("R-off-1", online["due"]), request_id="conf-1"
            )
            for key in ("c1", "c2"):
                assert answers[key]["type"] == "confirm.result", answers[key]
                assert answers[key]["mode"] == "offline"
                assert answers[key]["points"]["balance"] is None
            ident = await client.request("identify", {"customer": {"card": CARD}})
            assert ident["type"] == "identify.result", ident
            assert ident["customer"]["balance"] is None
            ping = await client.request("ping")
            assert ping["mode"] == "offline"
            await client.close()
            return answers

        answers = asyncio.run(while_down())
        wait_until(
            lambda: read_status(edge_db)["breaker"] != "closed", 5.0, "breaker state published"
        )
        status = read_status(edge_db)
        assert status["running"] is True
        assert status["breaker"] in ("open", "half_open")
        assert status["mode"] == "offline"
        assert status["outbox"]["depth"] >= 3

        central.start()
        wait_until(lambda: read_status(edge_db)["outbox"]["depth"] == 0, what="outbox drained")

        async def repeat() -> None:
            client = await RegisterClient.connect("127.0.0.1", port)
            await client.request("hello", {"lane": "01"})
            same = await client.request(
                "confirm", confirm_body("R-off-2", answers["due"]), request_id="conf-2"
            )
            assert same == answers["c2"]
            other = await client.request(
                "confirm", confirm_body("R-off-2", answers["due"] + 1), request_id="conf-2"
            )
            assert other["code"] == "conflict"
            assert other["reason"] == "id_reused"
            await client.close()

        asyncio.run(repeat())
    finally:
        daemon.stop()
        central.stop()
    stopped = read_status(edge_db)
    assert stopped["running"] is False
    assert stopped["mode"] == "offline"

    receipts = {r["receipt_id"]: r for r in central_json(db, "receipts")}
    assert receipts["R-off-1"]["state"] == "confirmed"
    assert receipts["R-off-2"]["state"] == "confirmed"
    assert receipts["R-off-2"]["mode"] == "offline"
    customer = central_json(db, "customer", "C1")
    accruals = [row for row in customer["ledger"] if row["kind"] == "accrual"]
    assert sorted(row["receipt_id"] for row in accruals) == ["R-off-0", "R-off-1", "R-off-2"]
    assert customer["balance"] == 340000 + sum(row["points"] for row in accruals)
    assert (
        sum(row["points"] for row in accruals)
        == sum(answers[key]["points"]["accrued"] for key in ("c0", "c1", "c2"))
    )


def test_stalled_central_opens_the_breaker_and_closes_again(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    with central_server(db, demo=False) as central:

        async def scenario() -> None:
            async with FaultProxy(int(str(central.address).rsplit(":", 1)[1])) as proxy:
                port = free_port()
                config = daemon_config(
                    tmp_path,
                    central_url=f"grpc://{proxy.address}",
                    port=port,
                    deadline_ms=300,
                    extra=EDGE_SETTINGS,
                )
                edge_db = tmp_path / "data" / "edge.db"
                daemon = await asyncio.to_thread(
                    DaemonProcess(config, port, tmp_path / "daemon.log").start
                )
                try:
                    await asyncio.to_thread(wait_until, lambda: synced(edge_db), 30.0, "first sync")
                    client = await RegisterClient.connect("127.0.0.1", port)
                    await client.request("hello", {"lane": "01"})
                    proxy.set_mode("stall")
                    modes = []
                    for i in range(6):
                        calc = await client.request(
                            "calculate", {"receipt": oil_receipt(f"R-stall-{i}")}
                        )
                        assert calc["type"] == "calculate.result", calc
                        modes.append(calc["mode"])
                    assert modes == ["offline"] * 6
                    await asyncio.to_thread(
                        wait_until,
                        lambda: read_status(edge_db)["breaker"] != "closed",
                        5.0,
                        "breaker open",
                    )
                    proxy.set_mode("pass")
                    for _ in range(200):
                        ping = await client.request("ping")
                        if ping["mode"] == "online":
                            break
                        await asyncio.sleep(0.1)
                    assert ping["mode"] == "online"
                    calc = await client.request(
                        "calculate", {"receipt": oil_receipt("R-stall-back")}
                    )
                    assert calc["mode"] == "online"
                    await client.close()
                finally:
                    await asyncio.to_thread(daemon.stop)

        asyncio.run(scenario())
