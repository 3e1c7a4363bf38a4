"""The ``lines`` framing: one JSON object per LF-terminated line (register protocol §1.1).

Theory of operation: bytes accumulate in a buffer; every LF closes a line. A trailing CR is
dropped (registers may send CR LF), a leading UTF-8 byte-order mark is dropped, and lines that
are empty or only white space are skipped. A line longer than :data:`MAX_LINE` is reported once
as :class:`PayloadTooLarge` and everything up to the next LF is discarded, so one bad line never
costs the lane its following requests. At end of input an unterminated last line still counts
(``printf '{...}' | nc`` works). There are no timers.
"""

from __future__ import annotations

from collections import deque

from drivers.base import FramingEvent, PayloadReceived, PayloadTooLarge

#: The largest line, without its LF, that is accepted: 1 MiB.
MAX_LINE = 1024 * 1024
BOM = b"\xef\xbb\xbf"


class LinesFraming:
    """Sans-I/O core of the ``lines`` framing."""

    name = "lines"

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  #: bytes of the buffer already known to hold no LF
        self._discarding = False
        self._events: deque[FramingEvent] = deque()
        self._outgoing = bytearray()

    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        if not data:
            self._finish()
            return
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline < 0:
                self._scanned = len(self._buffer)
                if len(self._buffer) > self._max_line + 1 and not self._discarding:
                    # +1 leaves room for the CR of a CR LF that is still on its way.
                    self._events.append(PayloadTooLarge(self._max_line))
                    self._discarding = True
                if self._discarding:
                    self._buffer.clear()
                    self._scanned = 0
                return
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            self._scanned = 0
            if self._discarding:
                self._discarding = False
                continue
            self._emit(line)

    def _finish(self) -> None:
        if self._buffer and not self._discarding:
            self._emit(bytes(self._buffer))
        self._buffer.clear()
        self._scanned = 0
        self._discarding = False

    def _emit(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(BOM):
            line = line[len(BOM) :]
        if len(line) > self._max_line:
            self._events.append(PayloadTooLarge(self._max_line))
            return
        if line.strip():
            self._events.append(PayloadReceived(line))

    def next_event(self) -> FramingEvent | None:
        return self._events.popleft() if self._events else None

    def send_payload(self, payload: bytes, now: float = 0.0) -> None:
        if b"\n" in payload:
            raise ValueError("a lines payload must not contain LF")
        self._outgoing += payload + b"\n"

    def data_to_send(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None
