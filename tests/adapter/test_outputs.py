"""A lane's own devices: a serial display or printer runs at the line speed configured for it."""

from __future__ import annotations

import asyncio
import os
import socket
import termios
import time

from adapter.config import LaneConfig
from adapter.outputs import LaneOutputs
from tests.capture import CaptureServer
from tests.drivers.ptys import pty_pair


def test_serial_devices_open_at_their_configured_baud() -> None:
    async def scenario() -> tuple[int, int, bytes, bytes]:
        with pty_pair() as display, pty_pair() as printer:
            # a pty starts at 38400 baud: both configured speeds differ from it
            outputs = LaneOutputs(
                (
                    LaneConfig(
                        id="05",
                        display=display.path,
                        display_baud=19200,
                        printer=printer.path,
                        printer_baud=57600,
                    ),
                )
            )
            calculation = {
                "type": "calculate.result",
                "receipt_id": "R1",
                "messages": [
                    {"target": "display", "text": "Скидка 47,97"},
                    {"target": "receipt", "text": "Масло -15%"},
                ],
            }
            await outputs.after_answer("05", "calculate", calculation)
            await outputs.after_answer(
                "05", "confirm", {"type": "confirm.result", "receipt_id": "R1", "messages": []}
            )
            await outputs.drain()
            shown = os.read(display.master_fd, 4096)
            printed = os.read(printer.master_fd, 65536)
            # termios requests on a pty's master end read its slave end, the opened "port"
            return (
                termios.tcgetattr(display.master_fd)[5],
                termios.tcgetattr(printer.master_fd)[5],
                shown,
                printed,
            )

    display_speed, printer_speed, shown, printed = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert display_speed == termios.B19200
    assert printer_speed == termios.B57600
    assert "Скидка 47,97".encode("cp866") in shown
    assert "Масло -15%".encode("cp866") in printed


def _calculated(receipt_id: str, *messages: dict[str, str]) -> dict[str, object]:
    return {"type": "calculate.result", "receipt_id": receipt_id, "messages": list(messages)}


def _confirmed(receipt_id: str) -> dict[str, object]:
    return {"type": "confirm.result", "receipt_id": receipt_id, "messages": []}


def test_a_busy_printer_is_tried_again_and_each_tail_waits_for_its_own_confirm() -> None:
    async def scenario() -> list[bytes]:
        # The printer refuses connections at first (busy with another register's job)...
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"tcp://127.0.0.1:{port}"
        outputs = LaneOutputs((LaneConfig(id="01", printer=url), LaneConfig(id="02", printer=url)))
        # lane 01 calculates its next receipt before it confirms this one
        await outputs.after_answer("01", "calculate", _calculated(
            "A", {"target": "receipt", "text": "Масло -15%"}))
        await outputs.after_answer("01", "calculate", _calculated(
            "B", {"target": "receipt", "text": "Хлеб"}))
        await outputs.after_answer("02", "calculate", _calculated(
            "C", {"target": "receipt", "text": "Кофе -20%"}))
        for lane, receipt_id in (("01", "A"), ("02", "C"), ("01", "B")):
            await outputs.after_answer(lane, "confirm", _confirmed(receipt_id))
        await asyncio.sleep(0.5)
        # ... and takes them once it is free.
        printer = CaptureServer()
        printer.server = await asyncio.start_server(printer._job, "127.0.0.1", port)
        await outputs.drain()
        await printer.stop()
        return printer.jobs

    jobs = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert len(jobs) == 3
    for job, text in zip(jobs, ["Масло -15%", "Кофе -20%", "Хлеб"], strict=True):
        assert text.encode("cp866") in job


def test_a_dead_printer_does_not_hold_up_the_display_which_clears_between_customers() -> None:
    async def scenario() -> tuple[list[float], list[bytes]]:
        # a printer whose port takes no more connections: connecting hangs until the timeout
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(0)
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(blocker.getsockname())
            fillers.append(filler)
        shown_at: list[float] = []
        shown: list[bytes] = []

        async def display(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            shown.append(await reader.read())
            shown_at.append(time.monotonic())
            writer.close()

        server = await asyncio.start_server(display, "127.0.0.1", 0)
        host, port = blocker.getsockname()
        outputs = LaneOutputs((LaneConfig(
            id="03", printer=f"tcp://{host}:{port}",
            display=f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"),))
        began = time.monotonic()
        await outputs.after_answer("03", "calculate", _calculated(
            "A", {"target": "display", "text": "Анна, скидка 1 049,38 руб."},
            {"target": "receipt", "text": "Спасибо"}))
        await outputs.after_answer("03", "confirm", _confirmed("A"))
        await outputs.after_answer("03", "calculate", _calculated("B"))
        while len(shown) < 3 and time.monotonic() - began < 5:
            await asyncio.sleep(0.05)
        await outputs.drain()
        server.close()
        blocker.close()
        for filler in fillers:
            filler.close()
        return [at - began for at in shown_at], shown

    shown_after, shown = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(shown) == 3
    assert max(shown_after) < 2.0  # not 10 s behind the printer's connect
    assert "Анна, скидка".encode("cp866") in shown[0]
    assert "1 049,38 руб.".encode("cp866") in shown[0]  # the amount is not cut in two
    assert "Анна".encode("cp866") not in shown[1] + shown[2]  # cleared after the sale
