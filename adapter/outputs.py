"""A lane's own output devices: its receipt messages printed, its display messages shown.

For registers that cannot print loyalty messages or drive the customer display themselves, a
lane may name a printer and a display in the configuration. After ``confirm`` the receipt tail
is printed and cut: the ``receipt`` messages of the receipt's last calculation (the applied
promotions' texts) followed by the confirm's own (the personal offers it advertises), barcodes
included; ``cashier`` messages such as the balance line are not printed.
After ``calculate`` and ``confirm`` the first ``display`` message is shown, wrapped between
words onto the two lines; an answer without one clears the display, so that the last
customer's name and discount do not stay for the next. Output never delays or fails the
register's answer: it runs as its own task, one job at a time per device (two lanes may
share a printer, and a dead printer does not hold up a display), and a device failure, a
barcode left out and a job dropped at shutdown are logged.

The tail of a receipt is printed once: a confirm repeated under a new request id (the
register lost the first answer) gets the same answer but no second tail. With the answer
journal at hand both facts outlive a restart of the daemon: a confirm whose calculation was
answered before the restart takes its receipt messages from the kept calculation, and a
confirm already kept under another id is not printed again.

A printer that cannot be reached (off, power-cycling, busy with another register's job, a
network hiccup) is tried again with a growing pause until the lane's ``printer_retry_s`` after
the confirm; then the tail is given up, and that is logged as an error naming the lane, the
receipt, the device and how long the tail waited. The window counts from the confirm, not from
when the tail gets the printer: during an outage the tails queued behind the first would
otherwise each wait a whole window in turn, and come out minutes late on another customer's
receipt. So a tail whose window ran out while it waited behind one that found the printer
unreachable is given up without a try; the backlog of a dead printer is never older than
``printer_retry_s``. A display is not retried: the next answer shows something newer anyway.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, cast

import structlog

from adapter.config import LaneConfig
from adapter.journal import AnswerJournal
from drivers.escpos_printer import BarcodeFormat, BarcodeSpec, PrintItem, wrap_text
from drivers.output import parse_tcp_url
from drivers.registry import make_output
from tillgate.errors import DeviceError, StorageError, TillgateError, ValidationError

log = structlog.get_logger("tillgate.outputs")

DISPLAY_WIDTH = 20
#: receipts per lane whose receipt messages wait for their confirm (a register may calculate
#: the next receipt before it confirms this one)
KEPT_TAILS = 8
#: receipts per lane whose tail was printed, remembered to print none twice (without a journal)
KEPT_CONFIRMS = 256
#: how long a shutdown waits for queued output
DRAIN_S = 10.0
#: the pause after a print job's first failed try; it doubles up to RETRY_MAX_PAUSE_S
RETRY_FIRST_PAUSE_S = 0.5
RETRY_MAX_PAUSE_S = 10.0


#: the barcode formats of protocol version 1; a message with another is skipped whole (§4)
BARCODE_FORMATS = frozenset({"ean13", "code128", "qr"})


def _unknown_format(message: dict[str, Any], lane: str) -> bool:
    """Whether the message's barcode has a format we do not know: then the whole message is
    skipped, as a register skips it (register-protocol §4), and logged."""
    barcode = message.get("barcode")
    if not isinstance(barcode, dict) or barcode.get("format") in BARCODE_FORMATS:
        return False
    log.warning("message_skipped", lane=lane, target=message.get("target"),
                reason=f"unknown barcode format {str(barcode.get('format'))[:32]!r}")  # fmt: skip
    return True


def print_items(messages: list[dict[str, Any]], lane: str = "") -> list[PrintItem]:
    """The ``receipt`` messages of an answer as printer items. A message whose barcode has an
    unknown format is skipped whole (§4); a barcode of a known format the printer cannot draw
    (a wrong EAN-13 check digit) is left out, its text printed (and logged); a message with
    neither text nor barcode is left out too."""
    items: list[PrintItem] = []
    for message in messages:
        if message.get("target") != "receipt" or _unknown_format(message, lane):
            continue
        barcode = message.get("barcode")
        spec = None
        if isinstance(barcode, dict):
            try:
                spec = BarcodeSpec(
                    cast("BarcodeFormat", str(barcode.get("format"))),
                    str(barcode.get("data", "")),
                )
            except ValidationError as exc:
                log.warning("barcode_skipped", lane=lane, error=str(exc))
        text = str(message.get("text", ""))
        if text.strip() or spec is not None:
            items.append(PrintItem(text=text, barcode=spec))
    return items


def display_lines(messages: list[dict[str, Any]], lane: str = "") -> tuple[str, str]:
    """The first ``display`` message wrapped between words onto the pole display's two
    20-column lines (what does not fit is left out); blank lines when there is none. A message
    with an unknown barcode format is skipped (§4), as on the printer."""
    for message in messages:
        if message.get("target") == "display" and not _unknown_format(message, lane):
            lines = wrap_text(str(message.get("text", "")), DISPLAY_WIDTH)
            return (lines[0] if lines else ""), (lines[1] if len(lines) > 1 else "")
    return "", ""


def _line_speed(url: str, baud: int) -> dict[str, int]:
    """``baud`` for a device on a serial line; nothing for one on the network (a plug-in
    driver for network devices need not take it)."""
    return {} if parse_tcp_url(url) is not None else {"baud": baud}


class LaneOutputs:
    """The printer and display of every lane that has them."""

    def __init__(
        self, lanes: tuple[LaneConfig, ...], *, journal: AnswerJournal | None = None
    ) -> None:
        self._journal = journal
        #: lane → receipt id → the request id of the confirm whose tail was printed
        self._confirmed: dict[str, dict[str, str]] = {}
        #: lane → (device URL, device)
        self._printers: dict[str, tuple[str, Any]] = {}
        self._displays: dict[str, tuple[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}  #: device URL → one job at a time
        #: queued jobs → (lane, device URL, receipt id or "" for a display job)
        self._jobs: dict[asyncio.Task[None], tuple[str, str, str]] = {}
        self._retry_s: dict[str, float] = {}  #: lane → how long its printer is tried
        #: device URL → when a try last found it unreachable (gone once a tail prints)
        self._unreachable_at: dict[str, float] = {}
        #: lane → receipt id → the receipt messages of its last calculation, printed on confirm
        self._pending_tails: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for lane in lanes:
            if lane.printer:
                self._retry_s[lane.id] = lane.printer_retry_s
                self._printers[lane.id] = (lane.printer, make_output(
                    lane.printer_driver,
                    url=lane.printer,
                    width=lane.printer_width,
                    codepage=lane.printer_codepage,
                    **_line_speed(lane.printer, lane.printer_baud),
                ))
            if lane.display:
                codepage = {} if lane.display_codepage is None else {
                    "codepage": lane.display_codepage}  # fmt: skip
                self._displays[lane.id] = (lane.display, make_output(
                    lane.display_model,
                    url=lane.display,
                    **_line_speed(lane.display, lane.display_baud),
                    **codepage,
                ))

    def __bool__(self) -> bool:
        return bool(self._printers or self._displays)

    async def after_answer(self, lane: str, kind: str, answer: dict[str, Any]) -> None:
        """Queue the lane's output for this answer; returns at once."""
        if lane not in self._printers and lane not in self._displays:
            return
        messages = list(answer.get("messages") or [])
        receipt_id = str(answer.get("receipt_id"))
        tails = self._pending_tails.setdefault(lane, {})
        if answer.get("type") == "calculate.result":
            tails.pop(receipt_id, None)  # the last calculation counts, and moves to the end
            tails[receipt_id] = [m for m in messages if m.get("target") == "receipt"]
            while len(tails) > KEPT_TAILS:
                del tails[next(iter(tails))]
        elif answer.get("type") == "confirm.result":
            tail = tails.pop(receipt_id, None)
            if tail is None:
                tail = self._kept_tail(lane, receipt_id)
            messages = tail + messages
        else:
            return
        if lane in self._displays:
            url, display = self._displays[lane]
            self._queue(url, lane, "", self._show(lane, display, display_lines(messages, lane)))
        if (
            lane in self._printers
            and kind == "confirm"
            and self._first_confirm(lane, receipt_id, str(answer.get("id")))
        ):
            url, printer = self._printers[lane]
            items = print_items(messages, lane)
            if items:
                job = self._print(lane, receipt_id, url, printer, items, time.monotonic())
                self._queue(url, lane, receipt_id, job)

    def _kept_tail(self, lane: str, receipt_id: str) -> list[dict[str, Any]]:
        """The receipt messages of the receipt's last calculation kept in the journal (one
        answered before a restart); none without a journal or a kept calculation."""
        for _, answer in reversed(self._kept_answers(lane, "calculate", receipt_id)):
            if answer.get("type") == "calculate.result":
                messages = answer.get("messages") or []
                return [m for m in messages if isinstance(m, dict) and m.get("target") == "receipt"]
        return []

    def _kept_answers(
        self, lane: str, kind: str, receipt_id: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """The journal's kept answers of ``kind`` for the receipt; none without a journal or
        when it cannot be read (logged)."""
        if self._journal is None:
            return []
        try:
            return self._journal.receipt_answers(kind, receipt_id)
        except StorageError as exc:
            log.error("storage_failed", lane=lane, receipt_id=receipt_id, error=str(exc))
            return []

    def _first_confirm(self, lane: str, receipt_id: str, request_id: str) -> bool:
        """Whether the confirm answered under ``request_id`` is the receipt's first, whose
        tail is printed; a repeat under another id is not (it is logged)."""
        confirmed = self._confirmed.setdefault(lane, {})
        first = confirmed.get(receipt_id)
        if first is None:
            kept = self._kept_answers(lane, "confirm", receipt_id)
            first = next(
                (kept_id for kept_id, answer in kept if answer.get("type") == "confirm.result"),
                None,
            )
        if first is None:
            first = request_id
        confirmed.pop(receipt_id, None)
        confirmed[receipt_id] = first
        while len(confirmed) > KEPT_CONFIRMS:
            del confirmed[next(iter(confirmed))]
        if first != request_id:
            log.info("receipt_tail_already_printed", lane=lane, receipt_id=receipt_id,
                     request_id=request_id, first_request_id=first)  # fmt: skip
            return False
        return True

    def _queue(
        self, url: str, lane: str, receipt_id: str, work: Coroutine[Any, Any, None]
    ) -> None:
        lock = self._locks.setdefault(url, asyncio.Lock())

        async def one_at_a_time() -> None:
            try:
                async with lock:
                    await work
            finally:
                work.close()  # cancelled while waiting for the device: never started

        job = asyncio.create_task(one_at_a_time(), name=f"output {lane} {url}")
        self._jobs[job] = (lane, url, receipt_id)
        job.add_done_callback(lambda done: self._jobs.pop(done, None))

    async def _show(self, lane: str, display: Any, lines: tuple[str, str]) -> None:
        try:
            await display.show(*lines)
        except TillgateError as exc:  # a dead display must not stop the lane
            log.warning("display_failed", lane=lane, error=str(exc))

    async def _print(
        self,
        lane: str,
        receipt_id: str,
        url: str,
        printer: Any,
        items: list[PrintItem],
        queued: float,
    ) -> None:
        """Print one tail confirmed at ``queued``, trying again while the printer cannot be
        reached until ``printer_retry_s`` after that (holding the device, so that tails come
        out in the order of their confirms)."""
        deadline = queued + self._retry_s.get(lane, 0.0)
        # Only a failure seen while this tail waited says the printer is down: behind a slow
        # but working printer (or after an old failure) the tail is still tried once.
        unreachable_at = self._unreachable_at.get(url)
        if time.monotonic() > deadline and unreachable_at is not None and unreachable_at >= queued:
            log.error(
                "receipt_not_printed", lane=lane, receipt_id=receipt_id, device=url,
                error="the printer could not be reached while the tail waited for it",
                attempts=0, waited_s=round(time.monotonic() - queued, 1),
            )  # fmt: skip
            return
        pause = RETRY_FIRST_PAUSE_S
        attempt = 0
        while True:
            attempt += 1
            try:
                await printer.print_items(items)
            except DeviceError as exc:  # off, busy, unplugged, reset, no progress: try again
                self._unreachable_at[url] = time.monotonic()
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error(
                        "receipt_not_printed", lane=lane, receipt_id=receipt_id, device=url,
                        error=str(exc), attempts=attempt,
                        waited_s=round(time.monotonic() - queued, 1),
                    )  # fmt: skip
                    return
                if attempt == 1:
                    log.warning(
                        "printer_failed", lane=lane, receipt_id=receipt_id, device=url,
                        error=str(exc), retrying_s=round(left, 1),
                    )  # fmt: skip
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, RETRY_MAX_PAUSE_S)
            except TillgateError as exc:  # the tail cannot be encoded: no retry helps
                log.error(
                    "receipt_not_printed", lane=lane, receipt_id=receipt_id, device=url,
                    error=str(exc), attempts=attempt,
                )  # fmt: skip
                return
            else:
                self._unreachable_at.pop(url, None)
                log.info(
                    "receipt_printed", lane=lane, receipt_id=receipt_id, items=len(items),
                    attempts=attempt, waited_s=round(time.monotonic() - queued, 1),
                )  # fmt: skip
                return

    async def drain(self) -> None:
        """Wait for queued output (at shutdown); what is still waiting then is dropped, and
        said so, job by job."""
        if not self._jobs:
            return
        _, pending = await asyncio.wait(list(self._jobs), timeout=DRAIN_S)
        for job in pending:
            lane, url, receipt_id = self._jobs.get(job, ("", "", ""))
            if receipt_id:
                log.error(
                    "receipt_not_printed", lane=lane, receipt_id=receipt_id, device=url,
                    error=f"still waiting for the printer {DRAIN_S:g} s into the shutdown",
                )  # fmt: skip
            else:
                log.warning("output_dropped", lane=lane, device=url, waited_s=DRAIN_S)
            job.cancel()
        if pending:
            await asyncio.wait(pending)
