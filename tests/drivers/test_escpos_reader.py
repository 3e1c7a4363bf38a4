"""The sans-I/O ESC/POS reader: splits, binary payloads, codepages, arbitrary bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.escpos_printer import BarcodeSpec, PrintItem, encode_receipt
from drivers.escpos_reader import (
    BarcodePrinted,
    Cut,
    EscposEvent,
    EscposReader,
    QrPrinted,
    TextLine,
    read_all,
)

JOB = encode_receipt(
    [
        PrintItem("Чек № 123", bold=True),
        PrintItem("Хлеб бородинский", large=True),
        PrintItem("", barcode=BarcodeSpec("code128", "A{B}")),
        PrintItem("", barcode=BarcodeSpec("qr", "QR-данные")),
    ]
)


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[EscposEvent]:
    reader = EscposReader()
    events: list[EscposEvent] = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        if cut > last:  # b"" would mean "end of job"
            reader.receive_data(data[last:cut])
        last = max(last, cut)
        while (event := reader.next_event()) is not None:
            events.append(event)
    reader.receive_data(b"")
    while (event := reader.next_event()) is not None:
        events.append(event)
    return events


def test_a_job_reads_back() -> None:
    events = [e for e in read_all(JOB) if not (isinstance(e, TextLine) and not e.text)]
    assert events == [
        TextLine("Чек № 123", bold=True),
        TextLine("Хлеб бородинский", double_height=True, double_width=True),
        BarcodePrinted("CODE128", "A{B}"),
        QrPrinted("QR-данные"),
        Cut(partial=False),
    ]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, len(JOB)), max_size=15))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    assert feed_in_pieces(JOB, cuts) == read_all(JOB)


def test_raster_image_is_skipped_by_its_length() -> None:
    # GS v 0: 3 bytes wide x 4 rows = 12 bytes of image that contain LF, ESC and GS bytes.
    image = bytes([0x0A, 0x1B, 0x1D, 0x56] * 3)
    data = b"before\n" + b"\x1dv0\x00\x03\x00\x04\x00" + image + b"after\n"
    assert read_all(data) == [TextLine("before"), TextLine("after")]
    assert feed_in_pieces(data, [9, 12, 15]) == [TextLine("before"), TextLine("after")]


def test_bit_image_and_graphics_are_skipped() -> None:
    bit_image = b"\x1b*\x21\x02\x00" + b"\x0a" * 6  # 24-dot double density: 3 bytes/column
    graphics = b"\x1d(L\x04\x000p\x0a\x0a"
    big = b"\x1d8L\x03\x00\x00\x000\x0a\x0a"
    assert read_all(bit_image + graphics + big + b"ok\n") == [TextLine("ok")]


def test_codepage_switch_mid_job() -> None:
    data = (
        b"\x1bt\x11" + "Привет".encode("cp866") + b"\n\x1bt\x2e" + "Пока".encode("cp1251") + b"\n"
    )
    assert read_all(data) == [TextLine("Привет"), TextLine("Пока")]


def test_styles_and_cuts() -> None:
    data = b"\x1b!\x38" + b"BIG\n" + b"\x1b@" + b"plain\n" + b"\x1dV\x42\x00" + b"\x1bm"
    assert read_all(data) == [
        TextLine("BIG", bold=True, double_height=True, double_width=True),
        TextLine("plain"),
        Cut(partial=True),
        Cut(partial=True),
    ]


def test_ean13_function_a_and_unknown_commands() -> None:
    data = b"\x1b\x99" + b"\x1dk\x024600000000015\x00" + b"\x10\x04\x01" + b"x\n"
    assert read_all(data) == [BarcodePrinted("EAN13", "4600000000015"), TextLine("x")]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    events = feed_in_pieces(data, [c for c in cuts if c <= len(data)])
    assert all(isinstance(e, TextLine | BarcodePrinted | QrPrinted | Cut) for e in events)
