"""Printers and pole displays, captured on a real TCP 9100 server and over real ptys."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from drivers.display import PoleDisplay, encode_show
from drivers.escpos_printer import BarcodeSpec, PrintItem, ReceiptPrinter, encode_receipt
from drivers.escpos_reader import BarcodePrinted, Cut, QrPrinted, TextLine, read_all
from drivers.output import send_to_device
from tests.capture import CaptureServer
from tests.drivers.ptys import pty_pair
from tillgate.errors import ConfigError, DeviceError, ValidationError


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20.0))


COUPON = [
    PrintItem("ООО «Ромашка»", bold=True, center=True),
    PrintItem("Масло подсолнечное 1 л          2 x 159,90"),
    PrintItem("ИТОГО 271,83", large=True),
    PrintItem("Скидка на масло -15% до 28.02", barcode=BarcodeSpec("ean13", "4600000000015")),
    PrintItem("Купон", barcode=BarcodeSpec("code128", "SPRING-7F3K")),
    PrintItem("Приложение", barcode=BarcodeSpec("qr", "https://example.ru/c?id=7F3K&u=Анна")),
]


def content(events: list[Any]) -> list[Any]:
    """Everything but blank lines."""
    return [e for e in events if not (isinstance(e, TextLine) and not e.text)]


@pytest.mark.parametrize("width", [32, 42, 48])
def test_receipt_over_tcp_9100_reads_back(width: int) -> None:
    async def scenario() -> bytes:
        capture = CaptureServer()
        url = await capture.start()
        await ReceiptPrinter(url, width=width).print_items(COUPON)
        await asyncio.wait_for(capture.done.wait(), 5)
        await capture.stop()
        return capture.jobs[0]

    job = run(scenario())
    events = content(read_all(job))
    texts = [e.text for e in events if isinstance(e, TextLine)]
    assert all(len(t) <= width for t in texts)
    assert texts[0] == "ООО ?Ромашка?"  # CP866 has no guillemets: the printer shows "?"
    assert "ИТОГО 271,83" in texts
    big = next(e for e in events if isinstance(e, TextLine) and e.text == "ИТОГО 271,83")
    assert (big.double_height, big.double_width) == (True, True)
    assert next(e for e in events if isinstance(e, TextLine) and "Ромашка" in e.text).bold
    assert [e for e in events if not isinstance(e, TextLine)] == [
        BarcodePrinted("EAN13", "4600000000015"),
        BarcodePrinted("CODE128", "SPRING-7F3K"),
        QrPrinted("https://example.ru/c?id=7F3K&u=Анна"),
        Cut(partial=False),
    ]


def test_long_text_wraps_to_the_width_and_large_to_half() -> None:
    words = "Дисконтная карта покупателя даёт пять процентов баллами на всё"
    events = read_all(encode_receipt([PrintItem(words), PrintItem(words, large=True)], width=32))
    lines = [e for e in events if isinstance(e, TextLine) and e.text]
    normal = [e.text for e in lines if not e.double_width]
    large = [e.text for e in lines if e.double_width]
    assert " ".join(normal) == words
    assert " ".join(large) == words
    assert max(map(len, normal)) <= 32
    assert max(map(len, large)) <= 16


def test_message_text_cannot_command_the_printer_or_split_an_amount() -> None:
    # ESC i (cut), GS V 0 (cut), DLE DC4 1 0 5 (open the cash drawer), hidden in a message
    text = "Сыр\x1bi\x1dV\x00\x10\x14\x01\x00\x05 ctrl"
    job = encode_receipt([PrintItem(text)], width=32, cut=False)
    assert b"\x1bi" not in job
    assert b"\x1dV" not in job
    assert b"\x10\x14" not in job
    events = read_all(encode_receipt([PrintItem("Ваша скидка на масло составила 1 049,38 руб.")],
                                     width=32))
    lines = [e.text for e in events if isinstance(e, TextLine) and e.text]
    assert lines == ["Ваша скидка на масло составила", "1 049,38 руб."]


def test_barcodes_are_sized_to_the_paper() -> None:
    code = BarcodeSpec("code128", "SPRING-7F3K")
    narrow = encode_receipt([PrintItem("Купон", barcode=code)], width=32)
    wide = encode_receipt([PrintItem("Купон", barcode=code)], width=48)
    assert b"\x1dw\x02" in narrow  # 156 modules x 2 dots = 312 of 384 (x 3 = 468)
    assert b"\x1dw\x03" in wide  # x 3 = 468 of 576
    # too long for 58 mm even at 2 dots a module: its text, not a barcode the printer skips
    long_code = BarcodeSpec("code128", "LOYALTY-COUPON-2026-7F3K")
    events = read_all(encode_receipt([PrintItem("Купон", barcode=long_code)], width=32))
    assert TextLine("LOYALTY-COUPON-2026-7F3K") in events
    assert not [e for e in events if isinstance(e, BarcodePrinted)]
    big_qr = BarcodeSpec("qr", "x" * 2800)  # version 40: 177 modules
    assert b"\x1d(k\x03\x001C\x02" in encode_receipt([PrintItem("", barcode=big_qr)], width=32)


def test_cyrillic_is_sent_in_cp866() -> None:
    job = encode_receipt([PrintItem("Щука")])
    assert "Щука".encode("cp866") in job
    assert b"\x1bt\x11" in job  # ESC t 17 selects PC866


def test_serial_printer_over_a_pty() -> None:
    async def scenario() -> bytes:
        with pty_pair() as pty:
            printer = ReceiptPrinter(pty.path, width=42, baud=19200)
            await printer.print_items(
                [
                    PrintItem("Чек по карте"),
                    PrintItem("", barcode=BarcodeSpec("ean13", "460000000001")),
                ]
            )
            chunks = b""
            loop = asyncio.get_running_loop()
            while not chunks.endswith(b"\x1dV\x00"):
                chunks += await loop.run_in_executor(None, os.read, pty.master_fd, 4096)
            return chunks

    events = content(read_all(run(scenario())))
    assert events == [
        TextLine("Чек по карте"),
        BarcodePrinted("EAN13", "460000000001"),
        Cut(partial=False),
    ]


def test_unreachable_printer_is_a_device_error_naming_it() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(DeviceError, match=f"printer: device tcp://127.0.0.1:{port}"):
            await ReceiptPrinter(f"tcp://127.0.0.1:{port}").print_items([PrintItem("x")])

    run(scenario())


def test_a_printer_that_stops_reading_fails_the_job_within_its_timeout() -> None:
    async def scenario() -> float:
        held: list[asyncio.StreamWriter] = []

        async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # accept, then read nothing: the window closes

        server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        began = asyncio.get_running_loop().time()
        with pytest.raises(DeviceError, match="no progress within 1 s"):
            await send_to_device(f"tcp://127.0.0.1:{port}", b"x" * 20_000_000, timeout=1.0)
        took = asyncio.get_running_loop().time() - began
        for writer in held:
            writer.close()
        server.close()
        return took

    # Before, the close after the timeout waited for the unsent bytes for ever.
    assert run(scenario()) < 3.0


def test_bad_configuration_and_barcodes() -> None:
    with pytest.raises(ConfigError, match="width"):
        ReceiptPrinter("tcp://127.0.0.1:9100", width=40)
    with pytest.raises(ConfigError, match="codepage 'klingon' is not available"):
        ReceiptPrinter("tcp://127.0.0.1:9100", codepage="klingon")
    with pytest.raises(ConfigError, match="profile: unknown printer profile 'nope'"):
        ReceiptPrinter("tcp://127.0.0.1:9100", profile="nope")
    with pytest.raises(ValidationError, match="check digit"):
        BarcodeSpec("ean13", "4600000000012")
    with pytest.raises(ValidationError, match=r"barcode\.data"):
        BarcodeSpec("code128", "Купон")


def test_display_cd5220_over_a_pty() -> None:
    async def scenario() -> bytes:
        with pty_pair() as pty:
            await PoleDisplay(pty.path).show("Молоко 3,2%", "Итого:   271,83")
            expected = len(encode_show("", ""))
            data = b""
            loop = asyncio.get_running_loop()
            while len(data) < expected:
                data += await loop.run_in_executor(None, os.read, pty.master_fd, 4096)
            return data

    data = run(scenario())
    assert data == (
        b"\x1b@"
        b"\x1bQA"
        + "Молоко 3,2%".ljust(20).encode("cp866")
        + b"\r"
        + b"\x1bQB"
        + "Итого:   271,83".ljust(20).encode("cp866")
        + b"\r"
    )


def test_display_epson_cuts_long_lines_and_strips_controls() -> None:
    data = encode_show("A" * 30, "x\x1by", model="epson")
    assert data.startswith(b"\x1b@\x1bt\x11\x0c")
    assert b"\x1f$\x01\x01" + b"A" * 20 + b"\x1f$\x01\x02" + b"x y".ljust(20) == data[6:]


def test_unknown_display_model() -> None:
    with pytest.raises(ConfigError, match="known: cd5220, epson"):
        PoleDisplay("/dev/ttyS0", model="vfd9000")
