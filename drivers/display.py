"""Customer pole displays (2 lines × 20 characters): CD5220 and Epson-style command sets.

Theory of operation: :func:`encode_show` is the sans-I/O encoder: two lines of text in, the
bytes that put them on the display out. Each line is cut or padded to 20 characters and
encoded in the display's codepage (CP866 by default; a character it lacks shows as ``?``).
:class:`PoleDisplay` sends those bytes to the display's port through :mod:`drivers.output`.

Command sets:

* ``cd5220``: ``ESC Q A`` text ``CR`` writes the upper line, ``ESC Q B`` text ``CR`` the lower
  one, each whole. Every update starts with ``ESC @`` (the display may have been switched off
  and on since the last one), which blanks it for an instant. Russian-market CD5220 clones
  ship with a Cyrillic table active; ``charset`` (bytes sent after initialising, e.g. ``ESC t
  n``) is there for the ones that need a table selected.
* ``epson``: the ESC/POS display set (DM-D series and clones): ``ESC @``, ``ESC t n`` to select
  the character table of the codepage (:data:`EPSON_TABLES`: 17 for PC866, the default), ``FF``
  to clear, ``US $ 1 1`` / ``US $ 1 2`` to place the cursor at the start of a line. A codepage
  without an ESC/POS table number is a configuration error: the display would show its bytes
  in another table.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

from drivers.output import send_to_device
from tillgate.errors import ConfigError, DeviceError

__all__ = [
    "COLUMNS",
    "EPSON_TABLES",
    "MODELS",
    "PoleDisplay",
    "cd5220_display",
    "encode_show",
    "epson_display",
]

COLUMNS = 20
ESC, US, CR, FF = b"\x1b", b"\x1f", b"\x0d", b"\x0c"


@dataclass(frozen=True, slots=True)
class _CommandSet:
    init: bytes
    line1: bytes
    line2: bytes
    end: bytes


MODELS: dict[str, _CommandSet] = {
    "cd5220": _CommandSet(init=ESC + b"@", line1=ESC + b"QA", line2=ESC + b"QB", end=CR),
    "epson": _CommandSet(
        init=ESC + b"@",  # then ESC t n for the codepage, and FF
        line1=US + b"$\x01\x01",
        line2=US + b"$\x01\x02",
        end=b"",
    ),
}


#: ESC t n of the ESC/POS character tables, by Python codec name
EPSON_TABLES = {
    "cp437": 0,
    "cp850": 2,
    "cp860": 3,
    "cp863": 4,
    "cp865": 5,
    "cp1252": 16,
    "cp866": 17,
    "cp852": 18,
    "cp858": 19,
    "cp1251": 46,
}


def _codec(codepage: str) -> str:
    try:
        return codecs.lookup(codepage).name
    except LookupError as exc:
        raise ConfigError(f"unknown codepage {codepage!r}", key="codepage") from exc


def _epson_table(codepage: str) -> bytes:
    """``ESC t n`` selecting ``codepage`` on an ESC/POS display."""
    table = EPSON_TABLES.get(_codec(codepage))
    if table is None:
        raise ConfigError(
            f"codepage {codepage!r} has no ESC/POS character table number for an epson display",
            key="codepage",
            hint=f"one of {', '.join(EPSON_TABLES)}; cp866 for Cyrillic",
        )
    return ESC + b"t" + bytes([table]) + FF


def _fit(text: str, codepage: str) -> bytes:
    # Control characters would be taken as commands by the display.
    clean = "".join(c if c.isprintable() else " " for c in text)
    return clean[:COLUMNS].ljust(COLUMNS).encode(codepage, errors="replace")


def encode_show(
    line1: str, line2: str, *, model: str = "cd5220", codepage: str = "cp866", charset: bytes = b""
) -> bytes:
    """The bytes that show ``line1`` over ``line2`` on a ``model`` display."""
    commands = MODELS.get(model)
    if commands is None:
        raise ConfigError(
            f"unknown display model {model!r}", key="model", hint=f"known: {', '.join(MODELS)}"
        )
    _codec(codepage)
    return (
        commands.init
        + (_epson_table(codepage) if model == "epson" else b"")
        + charset
        + commands.line1
        + _fit(line1, codepage)
        + commands.end
        + commands.line2
        + _fit(line2, codepage)
        + commands.end
    )


class PoleDisplay:
    """A customer display at ``url`` (a serial device/URL, or ``tcp://host:port``).

    ``model`` is ``cd5220`` or ``epson``; ``codepage`` the display's text codepage; ``baud``
    the serial rate (9600 is the factory setting of both families); ``charset`` optional raw
    bytes that select the code table after initialising.
    """

    def __init__(
        self,
        url: str,
        model: str = "cd5220",
        *,
        codepage: str = "cp866",
        baud: int = 9600,
        charset: bytes = b"",
        timeout: float = 5.0,
    ) -> None:
        encode_show("", "", model=model, codepage=codepage)  # fail at configuration time
        self.url = url
        self.model = model
        self.codepage = codepage
        self.baud = baud
        self.charset = charset
        self.timeout = timeout

    def encode(self, line1: str, line2: str) -> bytes:
        """The bytes :meth:`show` would send."""
        return encode_show(
            line1, line2, model=self.model, codepage=self.codepage, charset=self.charset
        )

    async def show(self, line1: str, line2: str) -> None:
        """Show two lines (each cut/padded to 20 characters); raises DeviceError."""
        data = self.encode(line1, line2)
        try:
            await send_to_device(self.url, data, baud=self.baud, timeout=self.timeout)
        except DeviceError as exc:
            raise DeviceError(f"display: {exc}") from exc


def cd5220_display(url: str, **options: Any) -> PoleDisplay:
    """Registry factory for ``cd5220``: a :class:`PoleDisplay` speaking the CD5220 set."""
    return PoleDisplay(url, model="cd5220", **options)


def epson_display(url: str, **options: Any) -> PoleDisplay:
    """Registry factory for ``epson_display``: a :class:`PoleDisplay` speaking the Epson set."""
    return PoleDisplay(url, model="epson", **options)
