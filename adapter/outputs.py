"""A lane's own output devices: its receipt messages printed, its display messages shown.

For registers that cannot print loyalty messages or drive the customer display themselves, a
lane may name a printer and a display in the configuration. After ``confirm`` the receipt tail
is printed and cut: the ``receipt`` messages of the receipt's last calculation (the applied
promotions' texts) followed by the confirm's own (the personal offers it advertises), barcodes
included; ``cashier`` messages such as the balance line are not printed.
After ``calculate`` and ``confirm`` the first ``display`` message is shown. Output never
delays or fails the register's answer: it runs as its own task, one job at a time per lane,
and a device failure is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from adapter.config import LaneConfig
from drivers.escpos_printer import BarcodeSpec, PrintItem
from drivers.output import parse_tcp_url
from drivers.registry import make_output
from tillgate.errors import TillgateError

log = structlog.get_logger("tillgate.outputs")

DISPLAY_WIDTH = 20


def print_items(messages: list[dict[str, Any]]) -> list[PrintItem]:
    """The ``receipt`` messages of an answer as printer items (unknown barcode formats skipped)."""
    items: list[PrintItem] = []
    for message in messages:
        if message.get("target") != "receipt":
            continue
        barcode = message.get("barcode")
        spec = None
        if isinstance(barcode, dict) and barcode.get("format") in ("ean13", "code128", "qr"):
            with contextlib.suppress(Exception):  # a barcode the printer cannot draw is left out
                spec = BarcodeSpec(barcode["format"], str(barcode.get("data", "")))
        items.append(PrintItem(text=str(message.get("text", "")), barcode=spec))
    return items


def display_lines(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The first ``display`` message wrapped onto the pole display's two 20-column lines."""
    for message in messages:
        if message.get("target") == "display":
            text = " ".join(str(message.get("text", "")).split())
            return text[:DISPLAY_WIDTH], text[DISPLAY_WIDTH : 2 * DISPLAY_WIDTH]
    return None


def _line_speed(url: str, baud: int) -> dict[str, int]:
    """``baud`` for a device on a serial line; nothing for one on the network (a plug-in
    driver for network devices need not take it)."""
    return {} if parse_tcp_url(url) is not None else {"baud": baud}


class LaneOutputs:
    """The printer and display of every lane that has them."""

    def __init__(self, lanes: tuple[LaneConfig, ...]) -> None:
        self._printers: dict[str, Any] = {}
        self._displays: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        #: lane → (receipt id, receipt messages of its last calculation), printed on confirm
        self._pending_tail: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        for lane in lanes:
            if lane.printer:
                self._printers[lane.id] = make_output(
                    lane.printer_driver,
                    url=lane.printer,
                    width=lane.printer_width,
                    codepage=lane.printer_codepage,
                    **_line_speed(lane.printer, lane.printer_baud),
                )
            if lane.display:
                self._displays[lane.id] = make_output(
                    lane.display_model,
                    url=lane.display,
                    **_line_speed(lane.display, lane.display_baud),
                )

    def __bool__(self) -> bool:
        return bool(self._printers or self._displays)

    async def after_answer(self, lane: str, kind: str, answer: dict[str, Any]) -> None:
        """Queue the lane's output for this answer; returns at once."""
        if lane not in self._printers and lane not in self._displays:
            return
        if answer.get("type") == "calculate.result":
            tail = [m for m in answer.get("messages") or [] if m.get("target") == "receipt"]
            self._pending_tail[lane] = (str(answer.get("receipt_id")), tail)
        elif answer.get("type") == "confirm.result":
            receipt_id, tail = self._pending_tail.pop(lane, ("", []))
            if receipt_id == answer.get("receipt_id"):
                answer = {**answer, "messages": tail + list(answer.get("messages") or [])}
        else:
            return
        job = asyncio.create_task(self._run(lane, kind, answer), name=f"output {lane}")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _run(self, lane: str, kind: str, answer: dict[str, Any]) -> None:
        messages = answer.get("messages") or []
        lock = self._locks.setdefault(lane, asyncio.Lock())
        async with lock:
            display = self._displays.get(lane)
            lines = display_lines(messages)
            if display is not None and lines is not None:
                try:
                    await display.show(*lines)
                except TillgateError as exc:  # a dead display must not stop the lane
                    log.warning("display_failed", lane=lane, error=str(exc))
            printer = self._printers.get(lane)
            items = print_items(messages) if kind == "confirm" else []
            if printer is not None and items:
                try:
                    await printer.print_items(items)
                    log.info("receipt_printed", lane=lane, items=len(items))
                except TillgateError as exc:  # a jammed printer must not stop the lane
                    log.warning("printer_failed", lane=lane, error=str(exc))

    async def drain(self) -> None:
        """Wait for queued output (at shutdown)."""
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=10)
