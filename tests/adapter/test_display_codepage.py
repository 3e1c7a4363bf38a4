"""An epson pole display selects the character table of its configured codepage; a plug-in
display given a codepage must take one, which ``check-config`` says under the lane's key."""

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


POLES = """
class Pole:
    \"\"\"A plug-in pole display that takes url and baud only.\"\"\"
    def __init__(self, url, baud=9600):
        self.url = url
    async def show(self, top, bottom):
        pass

class CodepagePole(Pole):
    \"\"\"One that takes a codepage too.\"\"\"
    def __init__(self, url, baud=9600, *, codepage="cp866"):
        super().__init__(url, baud)
        self.codepage = codepage

def any_options_pole(url, **options):
    return CodepagePole(url, **options)
"""


@pytest.fixture
def poles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plug-in displays: ``pole`` takes no codepage, ``cp_pole`` and ``kw_pole`` do."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "tg_poles.py").write_text(POLES)
    dist = folder / "tg_poles-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tg-poles\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tillgate.drivers]\n"
        "output.pole = tg_poles:Pole\n"
        "output.cp_pole = tg_poles:CodepagePole\n"
        "output.kw_pole = tg_poles:any_options_pole\n"
    )
    monkeypatch.syspath_prepend(str(folder))


def _plugin_config(tmp_path: Path, model: str, lines: str = "") -> Path:
    path = tmp_path / "tillgate.toml"
    path.write_text(
        f'[[lane]]\nid = "01"\ndisplay = "/dev/ttyUSB8"\ndisplay_model = "{model}"\n{lines}',
        encoding="utf-8",
    )
    return path


def test_a_codepage_for_a_plugin_display_that_takes_none_is_a_config_error_by_key(
    tmp_path: Path, poles: None
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        load_config(_plugin_config(tmp_path, "pole", 'display_codepage = "cp1251"\n'))
    assert [problem.key for problem in caught.value.problems] == ["lane[0].display_codepage"]
    assert "'pole' takes no codepage" in str(caught.value)


def test_a_plugin_display_is_given_a_codepage_only_when_one_is_set(
    tmp_path: Path, poles: None
) -> None:
    plain = load_config(_plugin_config(tmp_path, "pole"))
    assert LaneOutputs(plain.lanes)  # made without a codepage it would not take
    for model in ("cp_pole", "kw_pole"):
        config = load_config(_plugin_config(tmp_path, model, 'display_codepage = "cp1251"\n'))
        outputs = LaneOutputs(config.lanes)
        assert outputs._displays["01"][1].codepage == "cp1251"
