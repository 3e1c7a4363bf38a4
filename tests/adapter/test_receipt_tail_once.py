"""A receipt's tail is printed once, with its calculation's messages, across daemon restarts.

A real ``tillgate run`` process with a TCP lane whose printer is a capture server on 9100's
stead, a real central on loopback, a register over TCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.simulate import RegisterClient
from tests.capture import CaptureServer
from tests.integration.data import import_chain, oil_receipt
from tests.integration.harness import DaemonProcess, central_server, daemon_config, free_port

FISCAL = {"document": "1", "at": "2026-11-23T10:20:00+03:00"}
#: the oil promotion's receipt message, given by the calculation only
OIL = "Масло -15%".encode("cp866")
#: the personal offer confirm advertises (the customer's coffee offer)
COFFEE = "Ваш кофе со скидкой 20%".encode("cp866")


@pytest.fixture
def central(tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    with central_server(db, demo=False) as server:
        yield f"grpc://{server.address}"


def _daemon(tmp_path: Path, central: str, printer: str) -> DaemonProcess:
    port = free_port()
    config = daemon_config(
        tmp_path,
        central_url=central,
        port=port,
        extra=f'[[lane]]\nid = "01"\nprinter = "{printer}"\n',
    )
    return DaemonProcess(config, port, tmp_path / "daemon.log")


async def _lane(daemon: DaemonProcess) -> RegisterClient:
    client = await RegisterClient.connect("127.0.0.1", daemon.port)
    hello = await client.request("hello", {"lane": "01"})
    assert hello["type"] == "hello.result", hello
    return client


def _confirm(receipt_id: str, due: int) -> dict[str, Any]:
    return {
        "receipt_id": receipt_id,
        "due": due,
        "fiscal": FISCAL,
        "payments": [{"kind": "card", "amount": due}],
    }


async def _settle(printer: CaptureServer, jobs: int) -> None:
    """Wait for ``jobs`` print jobs, then a while longer for any that should not come."""
    for _ in range(100):
        if len(printer.jobs) >= jobs:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)


def test_a_restart_between_calculate_and_confirm_keeps_the_calculations_messages(
    tmp_path: Path, central: str
) -> None:
    async def scenario() -> list[bytes]:
        printer = CaptureServer()
        daemon = _daemon(tmp_path, central, await printer.start())
        try:
            daemon.start()
            client = await _lane(daemon)
            calc = await client.request("calculate", {"receipt": oil_receipt("R-restart-1")})
            assert calc["type"] == "calculate.result", calc
            await client.close()
            assert daemon.stop() == 0
            daemon.start()
            client = await _lane(daemon)
            done = await client.request("confirm", _confirm("R-restart-1", calc["due"]))
            assert done["type"] == "confirm.result", done
            await client.close()
            await _settle(printer, 1)
        finally:
            daemon.stop()
            await printer.stop()
        return printer.jobs

    jobs = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert len(jobs) == 1
    assert OIL in jobs[0]


def test_a_confirm_repeated_under_a_new_id_prints_no_second_tail_even_after_a_restart(
    tmp_path: Path, central: str
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[bytes]]:
        printer = CaptureServer()
        daemon = _daemon(tmp_path, central, await printer.start())
        answers = []
        try:
            daemon.start()
            client = await _lane(daemon)
            calc = await client.request("calculate", {"receipt": oil_receipt("R-again-1")})
            assert calc["type"] == "calculate.result", calc
            body = _confirm("R-again-1", calc["due"])
            answers.append(await client.request("confirm", body, request_id="f1"))
            await _settle(printer, 1)
            # the register lost the answer and confirms again under a new id
            answers.append(await client.request("confirm", body, request_id="f2"))
            await client.close()
            await _settle(printer, 2)
            assert daemon.stop() == 0
            daemon.start()
            client = await _lane(daemon)
            answers.append(await client.request("confirm", body, request_id="f3"))
            await client.close()
            await _settle(printer, 2)
        finally:
            daemon.stop()
            await printer.stop()
        return answers, printer.jobs

    answers, jobs = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert [answer["type"] for answer in answers] == ["confirm.result"] * 3, answers
    assert len(jobs) == 1
    assert OIL in jobs[0]
