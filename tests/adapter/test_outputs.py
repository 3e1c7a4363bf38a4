"""A lane's own devices: a serial display or printer runs at the line speed configured for it."""

from __future__ import annotations

import asyncio
import os
import termios

from adapter.config import LaneConfig
from adapter.outputs import LaneOutputs
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
