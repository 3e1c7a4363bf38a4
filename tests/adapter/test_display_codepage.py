"""An epson pole display selects the character table of its configured codepage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapter.config import InvalidConfigError, load_config
from adapter.outputs import LaneOutputs
from tests.capture import CaptureServer


def _config(tmp_path: Path, display: str, lines: str) -> Path:
    path = tmp_path / "tillgate.toml"
    path.write_text(
        f'[[lane]]\nid = "01"\ndisplay = "{display}"\ndisplay_model = "epson"\n{lines}',
        encoding="utf-8",
    )
    return path


def _shown(tmp_path: Path, lines: str, text: str) -> bytes:
    async def scenario() -> list[bytes]:
        display = CaptureServer()
        config = load_config(_config(tmp_path, await display.start(), lines))
        outputs = LaneOutputs(config.lanes)
        await outputs.after_answer("01", "calculate", {
            "type": "calculate.result", "receipt_id": "R1",
            "messages": [{"target": "display", "text": text}]})  # fmt: skip
        await outputs.drain()
        await display.stop()
        return display.jobs

    jobs = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert len(jobs) == 1
    return jobs[0]


def test_the_configured_codepage_is_selected_and_used(tmp_path: Path) -> None:
    shown = _shown(tmp_path, 'display_codepage = "cp1252"\n', "Café crème")
    assert shown.startswith(b"\x1b@\x1bt\x10\x0c")  # ESC t 16: WPC1252, not 17 (PC866)
    assert "Café crème".encode("cp1252") in shown


def test_without_the_key_it_is_pc866(tmp_path: Path) -> None:
    shown = _shown(tmp_path, "", "Скидка 10%")
    assert shown.startswith(b"\x1b@\x1bt\x11\x0c")
    assert "Скидка 10%".encode("cp866") in shown


def test_a_codepage_the_epson_display_has_no_table_for_is_a_config_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        load_config(_config(tmp_path, "/dev/ttyUSB1", 'display_codepage = "koi8_r"\n'))
    assert [problem.key for problem in caught.value.problems] == ["lane[0].display_codepage"]
    assert "koi8_r" in str(caught.value)
    assert "cp866" in str(caught.value)
