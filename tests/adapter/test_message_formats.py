"""register-protocol §4: a message with an unknown barcode format is skipped whole, on the
printer and on the display; a known format with bad data keeps the message's text."""

from __future__ import annotations

import asyncio

from adapter.config import LaneConfig
from adapter.outputs import LaneOutputs
from tests.capture import CaptureServer

BAD_EAN = "4600000000012"  # the check digit is 5
MESSAGES = [
    {"target": "display", "text": "Не показывать", "barcode": {"format": "aztec", "data": "A1"}},
    {"target": "display", "text": "Анна, скидка 10%"},
    {"target": "receipt", "text": "Скрытое", "barcode": {"format": "datamatrix", "data": "DM-77"}},
    {"target": "receipt", "text": "Видимое", "barcode": {"format": "code128", "data": "SPRING-7F"}},
    {"target": "receipt", "text": "Код EAN", "barcode": {"format": "ean13", "data": BAD_EAN}},
]


def test_unknown_barcode_formats_skip_their_message_and_bad_data_only_the_barcode() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        printer, display = CaptureServer(), CaptureServer()
        outputs = LaneOutputs(
            (LaneConfig(id="01", printer=await printer.start(), display=await display.start()),)
        )
        calculation = {"type": "calculate.result", "receipt_id": "R1", "messages": MESSAGES}
        await outputs.after_answer("01", "calculate", calculation)
        await outputs.after_answer(
            "01", "confirm", {"type": "confirm.result", "receipt_id": "R1", "messages": []}
        )
        await outputs.drain()
        await printer.stop()
        await display.stop()
        return printer.jobs, display.jobs

    printed, shown = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert len(printed) == 1
    job = printed[0]
    assert "Видимое".encode("cp866") in job
    assert b"SPRING-7F" in job
    assert "Код EAN".encode("cp866") in job  # a wrong check digit loses the barcode only
    assert BAD_EAN.encode() not in job
    assert "Скрытое".encode("cp866") not in job
    assert b"DM-77" not in job
    assert len(shown) == 2  # after calculate and after confirm
    assert "Анна, скидка 10%".encode("cp866") in shown[0]  # the next display message
    assert all("Не показывать".encode("cp866") not in each for each in shown)
