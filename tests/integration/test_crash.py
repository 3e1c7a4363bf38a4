"""SIGKILL the daemon at random moments while many lanes sell and central flaps.

Afterwards central must hold every receipt a register saw confirmed, exactly once: one
accrual per receipt in the ledger, and the customer's balance equal to the ledger's sum.
Registers behave as the protocol says: on a lost connection or ``busy`` / ``unavailable`` they
repeat the same request with the same ``id``.

CI runs 30 kills with 20 lanes; ``TILLGATE_CRASH_FULL=1`` runs 200 kills with 100 lanes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from offline.status import read_status
from tests.faultproxy import FaultProxy
from tests.integration.data import import_chain, oil_receipt
from tests.integration.harness import (
    CentralProcess,
    DaemonProcess,
    central_json,
    daemon_config,
    free_port,
    wait_until,
)

FULL = os.environ.get("TILLGATE_CRASH_FULL") == "1"
KILLS = 200 if FULL else 30
LANES = 100 if FULL else 20
REQUEST_TIMEOUT_S = 20.0
RETRYABLE = {"busy", "unavailable", "internal"}
SETTINGS = """
[offline]
breaker_failures = 2
breaker_cooldown_ms = 200
[sync]
interval_s = 1
"""


@dataclass
class Ledger:
    confirmed: dict[str, int] = field(default_factory=dict)  #: receipt id → points accrued as seen
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0


class Register:
    """One lane's register: reconnects, says hello, repeats unanswered requests by id."""

    def __init__(self, lane: str, port: int) -> None:
        self.lane = lane
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        while True:
            try:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.writer.write(
                    json.dumps(
                        {"v": 1, "type": "hello", "id": f"h-{self.lane}", "lane": self.lane}
                    ).encode()
                    + b"\n"
                )
                await self.writer.drain()
                line = await asyncio.wait_for(self.reader.readline(), REQUEST_TIMEOUT_S)
                if line and json.loads(line)["type"] == "hello.result":
                    return
            except (OSError, TimeoutError, ValueError):
                pass
            await self._drop()
            await asyncio.sleep(0.1)

    async def _drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def call(self, message: dict[str, Any], ledger: Ledger) -> dict[str, Any]:
        """Send until a definitive answer arrives (a result or a non-retryable error)."""
        while True:
            if self.writer is None:
                await self._connect()
            assert self.reader is not None
            assert self.writer is not None
            ledger.requests += 1
            try:
                self.writer.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
                await self.writer.drain()
                line = await asyncio.wait_for(self.reader.readline(), REQUEST_TIMEOUT_S)
            except (OSError, TimeoutError):
                line = b""
            if not line:
                await self._drop()
                continue
            answer: dict[str, Any] = json.loads(line)
            if answer.get("type") == "error" and answer.get("code") in RETRYABLE:
                await asyncio.sleep(answer.get("retry_after_ms", 200) / 1000)
                continue
            return answer


async def sell(register: Register, ledger: Ledger, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        receipt_id = f"K-{register.lane}-{n}"
        calc = await register.call(
            {
                "v": 1,
                "type": "calculate",
                "id": f"c-{receipt_id}",
                "receipt": oil_receipt(receipt_id),
            },
            ledger,
        )
        if calc["type"] != "calculate.result":
            ledger.unexpected.append(calc)
            continue
        confirm = await register.call(
            {
                "v": 1,
                "type": "confirm",
                "id": f"f-{receipt_id}",
                "receipt_id": receipt_id,
                "due": calc["due"],
                "fiscal": {"document": str(n), "at": "2026-11-23T10:20:00+03:00"},
                "payments": [{"kind": "card", "amount": calc["due"]}],
            },
            ledger,
        )
        if confirm["type"] == "confirm.result":
            ledger.confirmed[receipt_id] = confirm["points"]["accrued"]
        else:
            ledger.unexpected.append(confirm)


@pytest.mark.timeout(3600 if FULL else 600)
def test_sigkill_daemon_while_lanes_sell_and_central_flaps(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    rng = random.Random(20261123)
    ledger = Ledger()
    edge_db = tmp_path / "data" / "edge.db"
    central = CentralProcess(db, free_port(), tmp_path / "central.log").start()
    try:

        async def scenario() -> None:
            async with FaultProxy(central.port, max_connections=256) as proxy:
                port = free_port()
                config = daemon_config(
                    tmp_path,
                    central_url=f"grpc://{proxy.address}",
                    port=port,
                    deadline_ms=300,
                    extra=SETTINGS,
                )
                daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
                await asyncio.to_thread(daemon.start)
                await asyncio.to_thread(
                    wait_until, lambda: read_status(edge_db)["cache"]["version"] is not None
                )
                stop = asyncio.Event()
                lanes = [
                    asyncio.create_task(sell(Register(f"{i:03d}", port), ledger, stop))
                    for i in range(LANES)
                ]

                async def flap() -> None:
                    while not stop.is_set():
                        proxy.set_mode(rng.choice(["pass", "pass", "reset", "stall"]))
                        await asyncio.sleep(rng.uniform(0.2, 1.0))
                    proxy.set_mode("pass")

                flapper = asyncio.create_task(flap())
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.05, 0.6))
                    await asyncio.to_thread(daemon.kill)
                    await asyncio.to_thread(daemon.start)
                stop.set()
                await flapper
                proxy.set_mode("pass")
                await asyncio.wait_for(asyncio.gather(*lanes), 120)
                await asyncio.to_thread(
                    wait_until,
                    lambda: read_status(edge_db)["outbox"]["depth"] == 0,
                    120.0,
                    "outbox drained",
                )
                await asyncio.to_thread(daemon.stop)

        asyncio.run(scenario())
    finally:
        central.stop()

    assert ledger.unexpected == []
    assert len(ledger.confirmed) >= LANES
    receipts = {r["receipt_id"]: r for r in central_json(db, "receipts")}
    missing = [rid for rid in ledger.confirmed if receipts.get(rid, {}).get("state") != "confirmed"]
    assert missing == []
    customer = central_json(db, "customer", "C1")
    accruals = [row["receipt_id"] for row in customer["ledger"] if row["kind"] == "accrual"]
    assert len(accruals) == len(set(accruals)), "a receipt was counted twice"
    assert set(accruals) == set(ledger.confirmed)
    total = sum(row["points"] for row in customer["ledger"] if row["kind"] == "accrual")
    assert total == sum(ledger.confirmed.values())
    assert customer["balance"] == 340000 + total
    rejected = read_status(edge_db)["outbox"]["rejected"]
    assert rejected == 0
