"""A printer that cannot be reached for a while still prints the receipt tail, in order; one
that stays away longer than ``printer_retry_s`` after the confirm prints no tail late."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from structlog.testing import capture_logs

from adapter.config import LaneConfig
from adapter.outputs import LaneOutputs
from tests.capture import CaptureServer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _calculated(receipt_id: str, text: str) -> dict[str, object]:
    return {
        "type": "calculate.result",
        "receipt_id": receipt_id,
        "messages": [{"target": "receipt", "text": text}],
    }


def _confirmed(receipt_id: str) -> dict[str, object]:
    return {"type": "confirm.result", "receipt_id": receipt_id, "messages": []}


async def _sell(outputs: LaneOutputs, lane: str, receipt_id: str, text: str) -> float:
    """Calculate and confirm a receipt; returns how long the two output calls took."""
    began = time.monotonic()
    await outputs.after_answer(lane, "calculate", _calculated(receipt_id, text))
    await outputs.after_answer(lane, "confirm", _confirmed(receipt_id))
    return time.monotonic() - began


async def _listen(printer: CaptureServer, port: int) -> None:
    printer.server = await asyncio.start_server(printer._job, "127.0.0.1", port)


def test_a_printer_off_for_seconds_prints_the_tail_when_it_is_back() -> None:
    async def scenario() -> tuple[float, list[bytes]]:
        port = _free_port()
        outputs = LaneOutputs((LaneConfig(id="01", printer=f"tcp://127.0.0.1:{port}"),))
        took = await _sell(outputs, "01", "R1", "Купон -10%")
        took += await _sell(outputs, "01", "R2", "Кофе -20%")
        await asyncio.sleep(3.5)  # longer than the old three tries a second apart
        printer = CaptureServer()
        await _listen(printer, port)
        await outputs.drain()
        await printer.stop()
        return took, printer.jobs

    took, jobs = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert took < 0.5  # the register's answers never wait for the printer
    assert len(jobs) == 2
    assert "Купон -10%".encode("cp866") in jobs[0]
    assert "Кофе -20%".encode("cp866") in jobs[1]


def test_a_printer_stopped_and_restarted_between_receipts_misses_none() -> None:
    async def scenario() -> list[bytes]:
        printer = CaptureServer()
        url = await printer.start()
        port = int(url.rsplit(":", 1)[1])
        outputs = LaneOutputs((LaneConfig(id="01", printer=url),))
        await _sell(outputs, "01", "R1", "Первый")
        await asyncio.wait_for(printer.done.wait(), 10)
        await printer.stop()  # power-cycled
        await _sell(outputs, "01", "R2", "Второй")
        await asyncio.sleep(2.5)
        again = CaptureServer()
        await _listen(again, port)
        await outputs.drain()
        await again.stop()
        return printer.jobs + again.jobs

    jobs = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(jobs) == 2
    assert "Первый".encode("cp866") in jobs[0]
    assert "Второй".encode("cp866") in jobs[1]


def test_a_tail_given_up_is_logged_with_lane_receipt_and_device() -> None:
    async def scenario() -> tuple[float, list[dict[str, Any]]]:
        url = f"tcp://127.0.0.1:{_free_port()}"  # nobody listens, ever
        outputs = LaneOutputs((LaneConfig(id="07", printer=url, printer_retry_s=2),))
        with capture_logs() as logs:
            began = time.monotonic()
            await _sell(outputs, "07", "R-77", "Купон")
            await outputs.drain()
            took = time.monotonic() - began
        return took, logs

    took, logs = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert 1.5 < took < 8  # tried again for the configured 2 s, then given up
    given_up = [entry for entry in logs if entry["event"] == "receipt_not_printed"]
    assert len(given_up) == 1
    assert given_up[0]["log_level"] == "error"
    assert given_up[0]["lane"] == "07"
    assert given_up[0]["receipt_id"] == "R-77"
    assert given_up[0]["device"].startswith("tcp://127.0.0.1:")
    assert given_up[0]["attempts"] > 2
    assert "refused" in given_up[0]["error"]


def test_tails_queued_in_an_outage_are_given_up_from_their_confirm_not_printed_late() -> None:
    async def scenario() -> tuple[list[float], float, list[bytes], list[dict[str, Any]]]:
        port = _free_port()
        outputs = LaneOutputs(
            (LaneConfig(id="01", printer=f"tcp://127.0.0.1:{port}", printer_retry_s=2),)
        )
        began = time.monotonic()
        with capture_logs() as logs:
            confirmed = []
            for n in range(1, 6):
                await _sell(outputs, "01", f"R{n}", f"TAIL-R{n}")
                confirmed.append(time.monotonic() - began)
            await asyncio.sleep(5 - (time.monotonic() - began))
            printer = CaptureServer()
            await _listen(printer, port)  # back at 5 s, well after every tail's window
            await outputs.drain()
            await printer.stop()
        return confirmed, time.monotonic() - began, printer.jobs, logs

    confirmed, took, jobs, logs = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert confirmed[-1] < 1  # all five confirmed at once, each waiting its own window
    assert jobs == []  # none printed onto a later customer's receipt
    given_up = [entry for entry in logs if entry["event"] == "receipt_not_printed"]
    assert [entry["receipt_id"] for entry in given_up] == ["R1", "R2", "R3", "R4", "R5"]
    for entry in given_up:
        assert 1.9 <= entry["waited_s"] <= 3.0, entry  # from its confirm, not its turn
    assert given_up[0]["attempts"] > 1
    assert took < 7
