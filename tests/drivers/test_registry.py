"""The driver registry: built-in names, unknown names, plug-ins through entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from drivers.display import PoleDisplay
from drivers.escpos_printer import ReceiptPrinter
from drivers.lines import LinesFraming
from drivers.link import Link
from drivers.registry import framing_names, make_framing, make_output, output_names
from tillgate.errors import ConfigError


def test_builtin_framings() -> None:
    assert {"lines", "link"} <= set(framing_names())
    assert isinstance(make_framing("lines"), LinesFraming)
    link = make_framing("link", baud=9600)
    assert isinstance(link, Link)
    assert link.name == "link"


def test_builtin_outputs() -> None:
    assert {"escpos", "cd5220", "epson_display"} <= set(output_names())
    printer = make_output("escpos", url="tcp://127.0.0.1:9100", width=32)
    assert isinstance(printer, ReceiptPrinter)
    assert printer.width == 32
    display = make_output("epson_display", url="/dev/ttyS1")
    assert isinstance(display, PoleDisplay)
    assert display.model == "epson"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown framing 'modbus'.*known: .*lines, link"):
        make_framing("modbus")
    with pytest.raises(ConfigError, match=r"unknown output 'laser'.*cd5220.*escpos"):
        make_output("laser", url="x")
    with pytest.raises(ConfigError, match="framing 'link'"):
        make_framing("link", parity="E")


def test_plugins_come_from_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tg_plugin_demo.py").write_text(
        "class Echo:\n"
        "    name = 'echo'\n"
        "    def __init__(self, **options):\n"
        "        self.options = options\n"
        "def star(url, **options):\n"
        "    return ('star', url)\n"
    )
    dist = tmp_path / "tg_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tg-plugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tillgate.drivers]\n"
        "framing.echo = tg_plugin_demo:Echo\n"
        "output.star = tg_plugin_demo:star\n"
        "framing.link = tg_plugin_demo:Echo\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tg_plugin_demo" not in sys.modules  # imported lazily, on first use
    assert "echo" in framing_names()
    assert "star" in output_names()
    assert "tg_plugin_demo" not in sys.modules
    assert make_framing("echo", depth=2).options == {"depth": 2}  # type: ignore[attr-defined]  # plug-in class, not a Framing attribute
    assert make_output("star", url="tcp://p") == ("star", "tcp://p")
    assert isinstance(make_framing("link"), Link)  # built-ins cannot be replaced
    monkeypatch.delitem(sys.modules, "tg_plugin_demo")
