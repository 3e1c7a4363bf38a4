"""Field-engineer commands: ``tillgate probe serial|printer|display`` and ``tillgate sniff``.

:func:`add_commands` adds them to the ``tillgate`` parser; each sets ``handler`` to a function
``(args) -> int``. Every failure is one clear line on stderr and a non-zero exit, never a
traceback: 1 when the device or daemon did not answer, 2 for bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.base import LinkNotice
from drivers.display import MODELS, PoleDisplay
from drivers.escpos_printer import WIDTHS, BarcodeSpec, PrintItem, ReceiptPrinter
from drivers.link import Link
from drivers.serial import BAUD_RATES, open_serial_connection
from drivers.trace import SOCKET_NAME, sniff
from tillgate.errors import ConfigError, TillgateError

__all__ = ["add_commands", "main", "probe_page", "probe_serial"]

DataDirForConfig = Callable[[Path | None], Path]


def add_commands(subparsers: Any, *, data_dir_for_config: DataDirForConfig | None = None) -> None:
    """Add ``probe`` and ``sniff`` to a ``parser.add_subparsers()`` object.

    ``data_dir_for_config`` maps ``--config PATH`` (or None) to the daemon's data directory,
    where its trace socket lives; without it a minimal reader takes ``data_dir`` from the TOML.
    """
    probe = subparsers.add_parser("probe", help="check a serial port, printer or display")
    kinds = probe.add_subparsers(dest="probe_kind", metavar="DEVICE", required=True)

    serial_p = kinds.add_parser("serial", help="send ENQ on a serial port and wait for ACK 0")
    serial_p.add_argument("port", help="/dev/ttyUSB0, /dev/pts/N, socket://host:port ...")
    # The speeds the daemon's configuration accepts: a probe at any other speed would prove a
    # setting the daemon then refuses.
    serial_p.add_argument("--baud", type=int, default=115200, choices=BAUD_RATES)
    serial_p.add_argument("--timeout", type=_seconds, default=2.0,
                          help="seconds, more than 0 (default 2)")
    serial_p.set_defaults(handler=_handle_probe_serial)

    printer_p = kinds.add_parser("printer", help="print a test page (Cyrillic, EAN-13, QR)")
    printer_p.add_argument("url", help="tcp://host:9100 or a serial device/URL")
    printer_p.add_argument("--width", type=int, default=42, choices=WIDTHS)
    printer_p.add_argument("--codepage", default="cp866")
    printer_p.add_argument("--baud", type=int, default=9600, choices=BAUD_RATES)
    printer_p.set_defaults(handler=_handle_probe_printer)

    display_p = kinds.add_parser("display", help="show a test text on a pole display")
    display_p.add_argument("url", help="a serial device/URL or tcp://host:port")
    display_p.add_argument("--model", default="cd5220", choices=sorted(MODELS))
    display_p.add_argument("--codepage", default="cp866")
    display_p.add_argument("--baud", type=int, default=9600, choices=BAUD_RATES)
    display_p.set_defaults(handler=_handle_probe_display)

    sniff_p = subparsers.add_parser("sniff", help="print a lane's traffic from the running daemon")
    sniff_p.add_argument("lane", help="lane id (or * for every lane)")
    sniff_p.add_argument("--config", type=Path, default=None, help="the daemon's tillgate.toml")
    sniff_p.add_argument("--socket", type=Path, default=None, help="trace socket (overrides)")
    sniff_p.add_argument("--full", action="store_true", help="do not shorten payloads")
    sniff_p.set_defaults(
        handler=lambda args: _handle_sniff(args, data_dir_for_config or _data_dir_from_toml)
    )


def _seconds(text: str) -> float:
    """``--timeout``: a number of seconds more than 0 (a wait of none proves nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds more than 0, not {text!r}")
    return value


def _fail(message: str, code: int = 1) -> int:
    print(f"tillgate: {message}", file=sys.stderr)
    return code


def _run(coro: Any) -> int:
    try:
        result: int = asyncio.run(coro)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except TillgateError as exc:
        return _fail(str(exc), 1)
    return result


# --- probe serial ------------------------------------------------------------------------------


async def probe_serial(port: str, baud: int, timeout: float) -> tuple[bool, str]:
    """Send ENQ on ``port``; (answered, one-line report). Raises DeviceError if it cannot open."""
    reader, writer = await open_serial_connection(port, baud)
    settings = f"{baud} 8N1, no flow control"
    link = Link(baud=baud)
    other = 0
    started = time.monotonic()
    sent = b""  #: every byte we wrote
    received = b""  #: every byte that came back
    try:
        link.send_enq(started)
        sent = link.data_to_send()
        writer.write(sent)
        await writer.drain()
        deadline = started + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(4096), left)
            except TimeoutError:
                break
            if not data:
                return False, f"{port}: the port closed while waiting ({settings})"
            received += data
            link.receive_data(data, time.monotonic())
            kinds = set()
            while (event := link.next_event()) is not None:
                if isinstance(event, LinkNotice):
                    kinds.add(event.kind)
            reply = link.data_to_send()
            if sent.startswith(received):
                # Only our own bytes came back: an echo, not a peer. Answering what reads as
                # the peer's ENQ would echo back as ACK 0 too, and pass for a register.
                continue
            if "peer_alive" in kinds:
                ms = (time.monotonic() - started) * 1000
                return True, f"{port}: answered ENQ with ACK 0 in {ms:.0f} ms ({settings})"
            if kinds & {"noise", "nak_sent"}:
                other += len(data)
            sent += reply
            writer.write(reply)  # e.g. ACK for a frame the register was sending
    finally:
        writer.close()
    if received and sent.startswith(received):
        return False, (
            f"{port}: only our own ENQ came back ({settings}): the line echoes what is sent "
            "(a loopback plug, a modem or terminal server with echo on), no register answers"
        )
    hint = (
        f"; received {other} byte(s) of something else: wrong baud rate or not a link peer?"
        if other
        else "; check the cable (null-modem?), the register's port settings and that it runs"
    )
    return False, f"{port}: no answer to ENQ within {timeout:g} s ({settings}){hint}"


def _handle_probe_serial(args: argparse.Namespace) -> int:
    async def go() -> int:
        ok, report = await probe_serial(args.port, args.baud, args.timeout)
        if ok:
            print(f"OK {report}")
            return 0
        return _fail(report)

    return _run(go())


# --- probe printer / display -------------------------------------------------------------------


def _columns_word(count: int) -> str:
    """"колонка" agreeing with ``count`` (1 колонка, 32 колонки, 48 колонок)."""
    if count % 10 == 1 and count % 100 != 11:
        return "колонка"
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return "колонки"
    return "колонок"


def probe_page(width: int) -> list[PrintItem]:
    """The probe's test page: every feature a receipt uses."""
    return [
        PrintItem("tillgate: проверка принтера", bold=True, center=True),
        PrintItem(f"Ширина: {width} {_columns_word(width)}".ljust(width, ".")),
        PrintItem(("0123456789" * (width // 10 + 1))[:width]),  # exactly one line when right
        PrintItem("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ абвгдеёжзийклмнопрстуфхцчшщъыьэюя"),
        PrintItem("ИТОГО 1 234,56", large=True),
        PrintItem("EAN-13:", barcode=BarcodeSpec("ean13", "460000000001")),
        PrintItem("Code128:", barcode=BarcodeSpec("code128", "TILLGATE-PROBE")),
        PrintItem("QR:", barcode=BarcodeSpec("qr", "https://example.invalid/tillgate/probe")),
    ]


def _handle_probe_printer(args: argparse.Namespace) -> int:
    async def go() -> int:
        printer = ReceiptPrinter(args.url, args.width, args.codepage, baud=args.baud)
        await printer.print_items(probe_page(args.width))
        print(f"OK test page sent to {args.url} ({args.width} columns, {args.codepage})")
        print("   check: Cyrillic readable, barcodes scan, paper cut")
        return 0

    return _run(go())


def _handle_probe_display(args: argparse.Namespace) -> int:
    async def go() -> int:
        display = PoleDisplay(args.url, args.model, codepage=args.codepage, baud=args.baud)
        await display.show("tillgate: проверка", "АБВГДЕЁЖЗ 0123456789")
        print(f"OK test text sent to {args.url} ({args.model}, {args.codepage})")
        print("   check: line 1 'tillgate: проверка', line 2 'АБВГДЕЁЖЗ 0123456789'")
        return 0

    return _run(go())


# --- sniff -------------------------------------------------------------------------------------


def _data_dir_from_toml(config: Path | None) -> Path:
    """``data_dir`` from a tillgate.toml (relative to its folder), else the user data dir."""
    if config is None:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "tillgate"
    try:
        doc = tomllib.loads(config.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(config)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(config)) from exc
    value = doc.get("data_dir", ".")
    if not isinstance(value, str):
        raise ConfigError("must be a string", file=str(config), key="data_dir")
    return (config.resolve().parent / value).resolve()


def _handle_sniff(args: argparse.Namespace, data_dir_for_config: DataDirForConfig) -> int:
    async def go() -> int:
        socket = args.socket or data_dir_for_config(args.config) / SOCKET_NAME
        await sniff(socket, args.lane, sys.stdout, full=args.full)
        print("# the daemon closed the trace", file=sys.stderr)
        return 0

    return _run(go())


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.cli ...``: these commands without the rest of ``tillgate``."""
    parser = argparse.ArgumentParser(prog="tillgate", description=__doc__)
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
