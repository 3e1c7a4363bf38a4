"""Code128 on 58 mm paper: the symbol must fit the 384 printable dots, its quiet zones are the
paper's margins, so up to 14 characters print as a barcode at 2 dots a module."""

from __future__ import annotations

from drivers.escpos_printer import BarcodeSpec, PrintItem, encode_receipt
from drivers.escpos_reader import BarcodePrinted, TextLine, read_all


def _printed(data: str, width: int) -> tuple[list[BarcodePrinted], list[str]]:
    events = read_all(encode_receipt([PrintItem("", barcode=BarcodeSpec("code128", data))],
                                     width=width))  # fmt: skip
    return (
        [e for e in events if isinstance(e, BarcodePrinted)],
        [e.text for e in events if isinstance(e, TextLine) and e.text],
    )


def test_code128_of_13_and_14_characters_is_a_barcode_on_58_mm() -> None:
    for data in ("SPRING-7F3K-1", "SPRING-7F3K-12"):  # 178 and 189 modules x 2 dots <= 384
        barcodes, lines = _printed(data, 32)
        assert barcodes == [BarcodePrinted("CODE128", data)], data
        assert data not in lines


def test_code128_of_15_characters_is_its_text_on_58_mm_and_a_barcode_on_80_mm() -> None:
    data = "SPRING-7F3K-123"  # 200 modules: 400 dots at the narrowest module
    barcodes, lines = _printed(data, 32)
    assert barcodes == []
    assert lines == [data]
    barcodes, _ = _printed(data, 48)
    assert barcodes == [BarcodePrinted("CODE128", data)]
