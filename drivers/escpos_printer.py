"""ESC/POS receipt printers: what to print (:class:`PrintItem`), how it is encoded, where it goes.

Theory of operation: :func:`encode_receipt` is the sans-I/O encoder. It drives python-escpos's
``Dummy`` printer (an in-memory ESC/POS generator that knows printer profiles and codepage
numbers) and returns the bytes; nothing is sent. :class:`ReceiptPrinter` adds the transport: it
sends those bytes to ``tcp://host:9100`` or a serial port through :mod:`drivers.output`.

Layout rules: text is wrapped to the paper width in columns (32, 42 or 48); a ``large`` line
is double width and height, so it wraps at half the width. Text is encoded in the printer's
codepage (CP866 by default, for Cyrillic); a character the codepage lacks prints as ``?``.
A codepage is named in any case and spelling python-escpos or Python knows it by (``cp866``,
``CP866``, ``ibm866``; ``iso8859-2`` for ``ISO_8859-2``), among the tables the printer profile
has and python-escpos can encode to.
Barcodes are printed by the printer itself: EAN-13 (12 digits, or 13 with a correct check
digit), Code128 (printable ASCII, code set B) and QR (native, model 2). Their module size is
chosen to fit the paper (384 dots across 58 mm, 576 across 80 mm): a printer skips a barcode
wider than that without a word, so a Code128 too long even at the narrowest module is printed
as its text instead. The symbol itself must fit the printable dots; its quiet zones need not:
they are the blank paper beside the printable area (about 5 mm each side of 58 mm paper, 4 mm
of 80 mm) plus what centring leaves, and 10 modules of at most 3 dots are 3.75 mm. A receipt
ends with a feed and a full cut.

Text is made safe to print: a control character in a message (ESC, GS, DLE: a cut, a drawer
kick) prints as a space, and the spaces inside an amount (``1 234,56``) never break a line.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from escpos.codepages import CodePages
from escpos.exceptions import Error as EscposError
from escpos.printer import Dummy

from drivers.output import send_to_device
from tillgate.errors import ConfigError, DeviceError, ValidationError

__all__ = [
    "WIDTHS",
    "BarcodeFormat",
    "BarcodeSpec",
    "PrintItem",
    "ReceiptPrinter",
    "ean13_check_digit",
    "encode_receipt",
    "wrap_text",
]

#: paper widths in columns of font A: 58 mm, 76/80 mm narrow font, 80 mm
WIDTHS = (32, 42, 48)
#: printable dots across the paper at each width
DOTS = {32: 384, 42: 576, 48: 576}
BarcodeFormat = Literal["ean13", "code128", "qr"]
QR_MAX_BYTES = 2953  # model 2, error correction L, binary mode
#: bytes a QR code of each version (1..40) holds at error correction L, binary mode
_QR_CAPACITY = (
    17, 32, 53, 78, 106, 134, 154, 192, 230, 271, 321, 367, 425, 458, 520, 586, 644, 718, 792,
    858, 929, 1003, 1091, 1171, 1273, 1367, 1465, 1528, 1628, 1732, 1840, 1952, 2068, 2188,
    2303, 2431, 2563, 2699, 2809, 2953,
)
#: module widths (dots) ESC/POS GS w takes for 1D barcodes
_MODULE_DOTS = range(2, 4)
_GROUP_SPACE = re.compile(r"(?<=[0-9]) (?=[0-9]{3}(?![0-9]))")
_NO_BREAK_SPACE = "\xa0"


def ean13_check_digit(first12: str) -> str:
    """The EAN-13 check digit for 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class BarcodeSpec:
    """A barcode to print: ``format`` is ``ean13``, ``code128`` or ``qr``."""

    format: BarcodeFormat
    data: str

    def __post_init__(self) -> None:
        if self.format == "ean13":
            if not (self.data.isascii() and self.data.isdigit() and len(self.data) in (12, 13)):
                raise ValidationError("barcode.data", "EAN-13 needs 12 or 13 digits")
            if len(self.data) == 13 and self.data[12] != ean13_check_digit(self.data[:12]):
                raise ValidationError("barcode.data", "EAN-13 check digit is wrong")
        elif self.format == "code128":
            if not self.data or not all(" " <= c <= "~" for c in self.data) or len(self.data) > 80:
                raise ValidationError("barcode.data", "Code128 needs 1..80 printable ASCII chars")
        elif self.format == "qr":
            if not self.data or len(self.data.encode()) > QR_MAX_BYTES:
                raise ValidationError("barcode.data", f"QR needs 1..{QR_MAX_BYTES} bytes")
        else:
            raise ValidationError("barcode.format", f"unknown barcode format {self.format!r}")


@dataclass(frozen=True, slots=True)
class PrintItem:
    """One block of a receipt: text (wrapped to the paper), optionally bold/large, a barcode."""

    text: str = ""
    bold: bool = False
    large: bool = False
    center: bool = False
    barcode: BarcodeSpec | None = None


def _spelling(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


@functools.cache
def _codepages(profile: str | None) -> dict[str, str]:
    """Spelling → python-escpos name of each table the profile has and python-escpos encodes."""
    printer = Dummy(profile=profile) if profile else Dummy()
    # Some tables of the profiles (CP851, RK1048 ...) have no character data in python-escpos:
    # selecting them works, and the first text line then fails. Offer only the usable ones.
    return {
        _spelling(name): name
        for name in printer.profile.get_code_pages()
        if {"data", "python_encode"} & set(CodePages.data.get(name, {}))
    }


def _codepage_name(codepage: str, profile: str | None) -> str | None:
    """The python-escpos name of ``codepage`` for ``profile``, in any case or Python spelling."""
    known = _codepages(profile)
    found = known.get(_spelling(codepage))
    if found is None:
        with contextlib.suppress(LookupError):
            found = known.get(_spelling(codecs.lookup(codepage).name))
    return found


def _printer(codepage: str, profile: str | None) -> Dummy:
    try:
        printer = Dummy(profile=profile) if profile else Dummy()
    except (EscposError, ValueError, KeyError) as exc:
        raise ConfigError(f"unknown printer profile {profile!r}", key="profile") from exc
    name = _codepage_name(codepage, profile)
    if name is None:
        known = [known_name.lower() for known_name in _codepages(profile).values()]
        cyrillic = "cp866 for Cyrillic; " if "cp866" in known else ""
        raise ConfigError(
            f"codepage {codepage!r} is not available for printer profile {profile or 'default'}",
            key="codepage",
            hint=f"{cyrillic}the profile has {', '.join(known)}",
        )
    printer.hw("INIT")  # ESC @ first: it resets the code table, so select ours after it
    printer.charcode(name)
    return printer


def encode_receipt(
    items: Sequence[PrintItem],
    *,
    width: int = 42,
    codepage: str = "cp866",
    profile: str | None = None,
    cut: bool = True,
) -> bytes:
    """ESC/POS bytes that print ``items`` (and cut, unless ``cut=False``)."""
    if width not in WIDTHS:
        raise ConfigError(f"printer width must be one of {WIDTHS}, got {width}", key="width")
    printer = _printer(codepage, profile)
    for item in items:
        printer.set(
            align="center" if item.center else "left",
            bold=item.bold,
            double_width=item.large,
            double_height=item.large,
            normal_textsize=not item.large,
        )
        columns = width // 2 if item.large else width
        lines = wrap_text(item.text, columns)
        if not lines and item.barcode is None:
            lines = [""]
        for line in lines:
            printer.textln(line)
        if item.barcode is not None:
            _barcode(printer, item.barcode, DOTS[width])
    printer.set(align="left", bold=False, normal_textsize=True)
    if cut:
        printer.cut()
    output: bytes = printer.output
    return output


def wrap_text(text: str, columns: int) -> list[str]:
    """``text`` in lines of at most ``columns``, broken between words but never inside an
    amount (``1 234,56``); every control character becomes a space. No lines for blank text."""
    clean = _GROUP_SPACE.sub(
        _NO_BREAK_SPACE, "".join(c if c.isprintable() else " " for c in text)
    )
    return [line.replace(_NO_BREAK_SPACE, " ") for line in textwrap.wrap(clean, columns)]


def _module_dots(modules: int, dots: int) -> int | None:
    """The widest module (in dots) at which a symbol of ``modules`` fits ``dots`` (its quiet
    zones fall in the paper's unprintable margins, see the module docstring)."""
    fitting = [size for size in _MODULE_DOTS if modules * size <= dots]
    return max(fitting) if fitting else None


def _qr_module_dots(data: str, dots: int) -> int:
    """The QR module size (dots, at most 6) at which ``data`` fits ``dots`` across."""
    size = len(data.encode())
    version = next(number for number, held in enumerate(_QR_CAPACITY, 1) if held >= size)
    return max(1, min(6, dots // (17 + 4 * version + 8)))  # + a quiet zone of 4 on each side


def _barcode(printer: Dummy, spec: BarcodeSpec, dots: int) -> None:
    try:
        if spec.format == "qr":
            printer.qr(spec.data, size=_qr_module_dots(spec.data, dots), native=True)
            printer.ln()
            return
        if spec.format == "ean13":
            module = _module_dots(95, dots)
        else:  # start, data, check (11 modules each), stop (13)
            module = _module_dots(11 * (len(spec.data) + 2) + 13, dots)
        if module is None:
            printer.textln(spec.data)  # a cashier can still key it in
            return
        # python-escpos announces which renderer it chose on stdout; keep the CLI clean.
        with contextlib.redirect_stdout(io.StringIO()):
            if spec.format == "ean13":
                printer.barcode(spec.data, "EAN13", width=module, function_type="A")
            else:
                # Code set B; a literal "{" is written "{{" inside Code128 data.
                printer.barcode("{B" + spec.data.replace("{", "{{"), "CODE128", width=module,
                                function_type="B")
        printer.set(align="left")
    except EscposError as exc:
        raise ValidationError("barcode.data", f"{spec.format}: {exc}") from exc


class ReceiptPrinter:
    """An ESC/POS printer at ``url`` (``tcp://host:9100`` or a serial device/URL).

    ``width`` is the paper width in columns (32, 42, 48); ``codepage`` the printer's text
    codepage (``cp866`` for Cyrillic); ``profile`` a python-escpos printer profile name (it
    decides the codepage numbers); ``baud`` applies to serial printers.
    """

    def __init__(
        self,
        url: str,
        width: int = 42,
        codepage: str = "cp866",
        *,
        profile: str | None = None,
        baud: int = 9600,
        timeout: float = 10.0,
    ) -> None:
        if width not in WIDTHS:
            raise ConfigError(f"printer width must be one of {WIDTHS}, got {width}", key="width")
        _printer(codepage, profile)  # fail at configuration time, not at the first receipt
        self.url = url
        self.width = width
        self.codepage = codepage
        self.profile = profile
        self.baud = baud
        self.timeout = timeout

    def encode(self, items: Sequence[PrintItem]) -> bytes:
        """The bytes :meth:`print_items` would send."""
        return encode_receipt(items, width=self.width, codepage=self.codepage, profile=self.profile)

    async def print_items(self, items: Sequence[PrintItem]) -> None:
        """Print ``items`` and cut; raises DeviceError if the printer cannot be reached."""
        data = self.encode(items)
        try:
            await send_to_device(self.url, data, baud=self.baud, timeout=self.timeout)
        except DeviceError as exc:
            raise type(exc)(f"printer: {exc}") from exc

