"""A sans-I/O ESC/POS reader: printer bytes in, what the paper would show out.

Theory of operation: :meth:`EscposReader.receive_data` buffers bytes; :meth:`next_event` parses
as far as complete commands allow and returns events: :class:`TextLine` (a printed line,
decoded with the active codepage, with the style it started in), :class:`BarcodePrinted`,
:class:`QrPrinted` and :class:`Cut`. Commands are recognised from one table (``_FIXED_ARGS``:
command → number of argument bytes) plus a few with their own length rules (barcodes, 2D codes,
raster and bit images, NV graphics). Binary payloads such as images are skipped by their
declared length without being buffered. A command it does not know is skipped as its prefix
and one command byte, so unknown input never stops the reader and nothing ever raises: this is
the same reader a printer-tap driver for legacy registers needs, where the bytes come from a
register we do not control.

Codepages: ``ESC t n`` selects table ``n``; numbers follow the Epson table as python-escpos's
default profile lists them (17 = CP866, 46 = CP1251, 0 = CP437). An unknown table decodes as
CP437 with replacement characters, never failing.
"""

from __future__ import annotations

import codecs
import contextlib
from collections import deque
from dataclasses import dataclass

from escpos.capabilities import get_profile

__all__ = [
    "BarcodePrinted",
    "Cut",
    "EscposEvent",
    "EscposReader",
    "QrPrinted",
    "TextLine",
    "read_all",
]

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, CR, HT, FF = 0x0A, 0x0D, 0x09, 0x0C


@dataclass(frozen=True, slots=True)
class TextLine:
    """A printed line of text (empty for a bare line feed) and the style it started in."""

    text: str
    bold: bool = False
    double_height: bool = False
    double_width: bool = False


@dataclass(frozen=True, slots=True)
class BarcodePrinted:
    """A 1D barcode: ``kind`` like ``EAN13`` or ``CODE128`` and its data (code set removed)."""

    kind: str
    data: str


@dataclass(frozen=True, slots=True)
class QrPrinted:
    """A QR code printed natively (``GS ( k``)."""

    data: str


@dataclass(frozen=True, slots=True)
class Cut:
    """A paper cut."""

    partial: bool


EscposEvent = TextLine | BarcodePrinted | QrPrinted | Cut

#: (prefix, command byte) → number of argument bytes, for commands that are just skipped or
#: only change state (state changes are handled in ``_apply``).
_FIXED_ARGS: dict[tuple[int, int], int] = {
    # ESC
    (ESC, 0x20): 1,  # ESC SP n  right-side character spacing
    (ESC, 0x21): 1,  # ESC ! n   print mode (bold, double height/width)
    (ESC, 0x24): 2,  # ESC $     absolute position
    (ESC, 0x25): 1,  # ESC %     user-defined charset on/off
    (ESC, 0x2D): 1,  # ESC -     underline
    (ESC, 0x32): 0,  # ESC 2     default line spacing
    (ESC, 0x33): 1,  # ESC 3 n   line spacing
    (ESC, 0x3C): 0,  # ESC <     return home
    (ESC, 0x3D): 1,  # ESC =     select peripheral
    (ESC, 0x3F): 1,  # ESC ?     cancel user-defined char
    (ESC, 0x40): 0,  # ESC @     initialise
    (ESC, 0x44): 0,  # ESC D     tab stops: NUL-terminated, handled specially
    (ESC, 0x45): 1,  # ESC E n   bold
    (ESC, 0x47): 1,  # ESC G n   double strike
    (ESC, 0x4A): 1,  # ESC J n   feed
    (ESC, 0x4B): 1,
    (ESC, 0x4C): 0,  # ESC L     page mode
    (ESC, 0x4D): 1,  # ESC M n   font
    (ESC, 0x52): 1,  # ESC R n   international charset
    (ESC, 0x53): 0,  # ESC S     standard mode
    (ESC, 0x54): 1,  # ESC T n   print direction
    (ESC, 0x55): 1,  # ESC U n   unidirectional
    (ESC, 0x56): 1,  # ESC V n   rotate
    (ESC, 0x57): 8,  # ESC W     print area
    (ESC, 0x5C): 2,  # ESC \     relative position
    (ESC, 0x61): 1,  # ESC a n   justification
    (ESC, 0x63): 2,  # ESC c 3 n / ESC c 4 n / ESC c 5 n (second byte is the argument)
    (ESC, 0x64): 1,  # ESC d n   print and feed n lines
    (ESC, 0x65): 1,  # ESC e n   reverse feed
    (ESC, 0x69): 0,  # ESC i     full cut (legacy)
    (ESC, 0x6D): 0,  # ESC m     partial cut (legacy)
    (ESC, 0x70): 3,  # ESC p m t1 t2  cash drawer pulse
    (ESC, 0x72): 1,  # ESC r n   colour
    (ESC, 0x74): 1,  # ESC t n   code table
    (ESC, 0x75): 1,  # ESC u n   peripheral status
    (ESC, 0x76): 0,  # ESC v     paper status
    (ESC, 0x7B): 1,  # ESC { n   upside down
    # GS
    (GS, 0x21): 1,  # GS ! n    character size
    (GS, 0x23): 1,
    (GS, 0x2F): 1,  # GS / m    print downloaded image
    (GS, 0x3A): 0,  # GS :      macro
    (GS, 0x42): 1,  # GS B n    reverse
    (GS, 0x45): 1,
    (GS, 0x48): 1,  # GS H n    HRI position
    (GS, 0x49): 1,  # GS I n    printer ID
    (GS, 0x4C): 2,  # GS L      left margin
    (GS, 0x50): 2,  # GS P      motion units
    (GS, 0x54): 1,
    (GS, 0x57): 2,  # GS W      print area width
    (GS, 0x5C): 2,
    (GS, 0x5E): 3,
    (GS, 0x61): 1,  # GS a n    automatic status back
    (GS, 0x62): 1,  # GS b n    smoothing
    (GS, 0x66): 1,  # GS f n    HRI font
    (GS, 0x67): 2,
    (GS, 0x68): 1,  # GS h n    barcode height
    (GS, 0x72): 1,  # GS r n    status
    (GS, 0x77): 1,  # GS w n    barcode width
    # FS
    (FS, 0x21): 1,  # FS ! n
    (FS, 0x26): 0,  # FS &      kanji on
    (FS, 0x2D): 1,  # FS - n
    (FS, 0x2E): 0,  # FS .      kanji off
    (FS, 0x43): 1,  # FS C n
    (FS, 0x53): 2,  # FS S
    (FS, 0x57): 1,  # FS W n
    (FS, 0x70): 2,  # FS p n m  print NV bit image
    # DLE
    (DLE, 0x04): 1,  # DLE EOT n  real-time status
    (DLE, 0x05): 1,  # DLE ENQ n
    (DLE, 0x14): 3,  # DLE DC4 fn m t
}

#: ``GS k m`` barcode systems: function A (NUL-terminated) m 0..6, function B (length) 65..79
_BARCODE_KINDS = {
    0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR",
    65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "CODABAR",
    72: "CODE93", 73: "CODE128", 74: "GS1-128", 75: "GS1-DATABAR", 76: "GS1-DATABAR-TRUNCATED",
    77: "GS1-DATABAR-LIMITED", 78: "GS1-DATABAR-EXPANDED", 79: "CODE128-AUTO",
}  # fmt: skip


def _codepage_table() -> dict[int, str]:
    table: dict[int, str] = {}
    with contextlib.suppress(Exception):  # a profile file we cannot read: fall back below
        for number, name in get_profile("default").profile_data["codePages"].items():
            python_name = name.lower().replace("_", "-")
            with contextlib.suppress(LookupError):
                codecs.lookup(python_name)
                table[int(number)] = python_name
    table.setdefault(0, "cp437")
    table.setdefault(17, "cp866")
    table.setdefault(46, "cp1251")
    return table


_CODEPAGES = _codepage_table()


class _Incomplete(Exception):  # noqa: N818 - internal control flow, never escapes the reader
    """More bytes are needed to finish the command at the front of the buffer."""


class EscposReader:
    """Bytes in (:meth:`receive_data`), events out (:meth:`next_event`); never raises."""

    def __init__(self, codepage: str = "cp437") -> None:
        self._default_codepage = codepage
        self._buffer = bytearray()
        self._skip = 0  # bytes of a binary payload still to be skipped
        self._events: deque[EscposEvent] = deque()
        self._line = bytearray()
        self._line_style: tuple[bool, bool, bool] | None = None
        self._qr_data = b""
        self._reset()

    def _reset(self) -> None:
        self.codepage = self._default_codepage
        self.bold = False
        self.double_height = False
        self.double_width = False

    def receive_data(self, data: bytes) -> None:
        """Feed printer bytes; ``b""`` marks the end (flushes an unterminated line)."""
        if not data:
            self._parse()
            self._end_line(force=False)
            return
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        self._buffer += data

    def next_event(self) -> EscposEvent | None:
        """The next event, or None until more bytes come."""
        if not self._events:
            self._parse()
        return self._events.popleft() if self._events else None

    # -- parsing ------------------------------------------------------------------------------

    def _parse(self) -> None:
        while self._buffer and not self._skip:
            try:
                used = self._command(self._buffer)
            except _Incomplete:
                return
            del self._buffer[:used]
            self._consume_skip()

    def _consume_skip(self) -> None:
        """Drop buffered bytes of a binary payload being skipped."""
        taken = min(self._skip, len(self._buffer))
        self._skip -= taken
        del self._buffer[:taken]

    def _need(self, buf: bytearray, count: int) -> None:
        if len(buf) < count:
            raise _Incomplete

    def _command(self, buf: bytearray) -> int:
        """Handle the command at the front of ``buf``; returns how many bytes it used."""
        first = buf[0]
        if first == LF:
            self._end_line(force=True)
            return 1
        if first == CR:
            return 1
        if first == HT:
            self._text(b" ")
            return 1
        if first == FF:
            self._end_line(force=False)
            return 1
        if first in (ESC, GS, FS, DLE):
            self._need(buf, 2)
            return self._escape(buf, first, buf[1])
        if first < 0x20:
            return 1  # other control bytes print nothing
        end = 1
        while end < len(buf) and buf[end] >= 0x20:
            end += 1
        self._text(bytes(buf[:end]))
        return end

    def _escape(self, buf: bytearray, prefix: int, cmd: int) -> int:
        special = self._special(buf, prefix, cmd)
        if special is not None:
            return special
        count = _FIXED_ARGS.get((prefix, cmd))
        if count is None:
            return 2  # unknown: skip the prefix and the command byte
        self._need(buf, 2 + count)
        self._apply(prefix, cmd, bytes(buf[2 : 2 + count]))
        return 2 + count

    def _special(self, buf: bytearray, prefix: int, cmd: int) -> int | None:
        """Commands whose length depends on their arguments."""
        if (prefix, cmd) == (GS, 0x6B):  # GS k m ...  barcode
            self._need(buf, 3)
            m = buf[2]
            kind = _BARCODE_KINDS.get(m, f"type{m}")
            if m <= 6:
                end = buf.find(b"\x00", 3)
                if end < 0:
                    if len(buf) > 260:
                        return 3  # no terminator in sight: not a barcode after all
                    raise _Incomplete
                self._barcode(kind, bytes(buf[3:end]))
                return end + 1
            self._need(buf, 4)
            n = buf[3]
            self._need(buf, 4 + n)
            self._barcode(kind, bytes(buf[4 : 4 + n]))
            return 4 + n
        if (prefix, cmd) == (GS, 0x56):  # GS V m [n]  cut
            self._need(buf, 3)
            m = buf[2]
            used = 4 if m >= 65 else 3
            self._need(buf, used)
            self._end_line(force=False)
            self._events.append(Cut(partial=m in (1, 49, 66, 98)))
            return used
        if prefix == ESC and cmd in (0x69, 0x6D):  # ESC i / ESC m  legacy cuts
            self._end_line(force=False)
            self._events.append(Cut(partial=cmd == 0x6D))
            return 2
        if (prefix, cmd) == (GS, 0x28):  # GS ( X pL pH ...  functions with a 2-byte length
            self._need(buf, 5)
            length = buf[3] | (buf[4] << 8)
            if buf[2] == 0x6B:  # GS ( k: 2D codes
                self._need(buf, 5 + length)
                self._two_d(bytes(buf[5 : 5 + length]))
                return 5 + length
            return self._skip_payload(buf, 5, length)
        if (prefix, cmd) == (GS, 0x38):  # GS 8 L p1..p4 ...  graphics with a 4-byte length
            self._need(buf, 7)
            length = int.from_bytes(buf[3:7], "little")
            return self._skip_payload(buf, 7, length)
        if (prefix, cmd) == (GS, 0x76):  # GS v 0 m xL xH yL yH data  raster image
            self._need(buf, 8)
            width = buf[4] | (buf[5] << 8)
            height = buf[6] | (buf[7] << 8)
            return self._skip_payload(buf, 8, width * height)
        if (prefix, cmd) == (ESC, 0x2A):  # ESC * m nL nH data  bit image
            self._need(buf, 5)
            columns = buf[3] | (buf[4] << 8)
            return self._skip_payload(buf, 5, columns * (3 if buf[2] in (32, 33) else 1))
        if (prefix, cmd) == (GS, 0x2A):  # GS * x y data  define downloaded image
            self._need(buf, 4)
            return self._skip_payload(buf, 4, buf[2] * buf[3] * 8)
        if (prefix, cmd) == (ESC, 0x44):  # ESC D n1 .. NUL  tab positions
            end = buf.find(b"\x00", 2)
            if end < 0:
                if len(buf) > 40:
                    return 2
                raise _Incomplete
            return end + 1
        return None

    def _skip_payload(self, buf: bytearray, header: int, length: int) -> int:
        """Use the header and what is buffered of the payload; skip the rest as it comes."""
        available = min(length, len(buf) - header)
        self._skip = length - available
        return header + available

    # -- effects ------------------------------------------------------------------------------

    def _apply(self, prefix: int, cmd: int, args: bytes) -> None:
        if (prefix, cmd) == (ESC, 0x40):
            self._end_line(force=False)
            self._reset()
        elif (prefix, cmd) == (ESC, 0x21):
            mode = args[0]
            self.bold = bool(mode & 0x08)
            self.double_height = bool(mode & 0x10)
            self.double_width = bool(mode & 0x20)
        elif (prefix, cmd) == (ESC, 0x45):
            self.bold = bool(args[0] & 1)
        elif (prefix, cmd) == (GS, 0x21):
            self.double_width = (args[0] >> 4) > 0
            self.double_height = (args[0] & 0x0F) > 0
        elif (prefix, cmd) == (ESC, 0x74):
            self.codepage = _CODEPAGES.get(args[0], "cp437")
        elif (prefix, cmd) in ((ESC, 0x64), (ESC, 0x4A)):
            self._end_line(force=False)

    def _text(self, raw: bytes) -> None:
        if self._line_style is None:
            self._line_style = (self.bold, self.double_height, self.double_width)
        self._line += raw.decode(self.codepage, errors="replace").encode("utf-8")

    def _end_line(self, *, force: bool) -> None:
        """Emit the pending line (a bare LF emits an empty line when ``force``)."""
        if not self._line and not force:
            return
        bold, tall, wide = self._line_style or (self.bold, self.double_height, self.double_width)
        self._events.append(TextLine(self._line.decode("utf-8"), bold, tall, wide))
        self._line.clear()
        self._line_style = None

    def _barcode(self, kind: str, data: bytes) -> None:
        self._end_line(force=False)
        text = data.decode("latin-1")
        if kind.startswith("CODE128") and len(text) >= 2 and text[0] == "{" and text[1] in "ABC":
            text = text[2:].replace("{{", "{")
        self._events.append(BarcodePrinted(kind, text))

    def _two_d(self, body: bytes) -> None:
        # body = cn fn [m] data; cn 0x31 is QR: fn 0x50 stores data, fn 0x51 prints it.
        if len(body) < 2 or body[0] != 0x31:
            return
        if body[1] == 0x50:
            self._qr_data = body[3:]
        elif body[1] == 0x51:
            self._end_line(force=False)
            self._events.append(QrPrinted(self._qr_data.decode("utf-8", errors="replace")))


def read_all(data: bytes, codepage: str = "cp437") -> list[EscposEvent]:
    """Every event in ``data`` (a whole print job)."""
    reader = EscposReader(codepage)
    reader.receive_data(data)
    reader.receive_data(b"")
    events: list[EscposEvent] = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    return events
