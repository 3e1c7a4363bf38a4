"""``probe printer``/``probe display`` as a field engineer runs them: the test page's ruler, the
codepage names they accept, and what a refused connection says. Real subprocesses, a real TCP
capture server, a real closed port."""

from __future__ import annotations

import asyncio
import socket

import pytest

from drivers.escpos_printer import WIDTHS, PrintItem, encode_receipt
from drivers.escpos_reader import TextLine, read_all
from tests.capture import CaptureServer
from tests.drivers.field_cli import run, tillgate


async def probe_printer(*options: str) -> tuple[tuple[int, str, str], list[bytes]]:
    """Run ``probe printer`` against a capture server; the result and the jobs it received."""
    capture = CaptureServer()
    url = await capture.start()
    result = await tillgate("probe", "printer", url, *options)
    if result[0] == 0:
        await asyncio.wait_for(capture.done.wait(), 10)
    await capture.stop()
    return result, capture.jobs


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("width", WIDTHS)
def test_the_ruler_is_exactly_one_paper_line(width: int) -> None:
    (code, _out, err), jobs = run(probe_printer("--width", str(width)))
    assert code == 0, err
    texts = [event.text for event in read_all(jobs[0], "cp866") if isinstance(event, TextLine)]
    rulers = [text for text in texts if text[:1].isdigit()]
    # One ruler line of the width, and no wrapped remainder under it.
    assert rulers == [("0123456789" * 5)[:width]]
    assert len(rulers[0]) == width


@pytest.mark.parametrize("spelling", ["CP866", "Cp866", "ibm866"])
def test_a_codepage_is_accepted_in_any_case_and_spelling(spelling: str) -> None:
    (code, out, err), jobs = run(probe_printer("--codepage", spelling))
    assert code == 0, err
    assert f"(42 columns, {spelling})" in out
    (code, _out, err), as_default = run(probe_printer("--codepage", "cp866"))
    assert code == 0, err
    assert jobs == as_default  # the very page cp866 prints: same table, same text bytes
    assert b"\x1bt\x11" in jobs[0]  # ESC t 17, PC866


def test_an_unavailable_codepage_hints_only_names_that_are_accepted() -> None:
    (code, _out, err), jobs = run(probe_printer("--codepage", "koi8r"))
    assert code == 2
    assert jobs == []
    assert err.count("\n") == 1
    assert err.startswith("tillgate: codepage: codepage 'koi8r' is not available")
    hinted = err.split("the profile has ", 1)[1].rstrip(")\n").split(", ")
    assert "cp866" in hinted
    assert "cp1251" in hinted
    for name in hinted:  # every name offered works, in the case offered and upper case
        encode_receipt([PrintItem("Ab")], codepage=name)
        encode_receipt([PrintItem("Ab")], codepage=name.upper())
    (code, _out, err), _jobs = run(probe_printer("--codepage", "CP1251"))
    assert code == 0, err


def test_a_codepage_python_escpos_cannot_encode_is_not_offered() -> None:
    # The default profile lists CP851, but python-escpos has no character data for it: the
    # first text line would fail. It must be refused up front, as an unknown one is.
    (code, _out, err), _jobs = run(probe_printer("--codepage", "cp851"))
    assert code == 2
    assert "codepage 'cp851' is not available" in err
    assert "cp851" not in err.split("(hint:", 1)[1]


@pytest.mark.parametrize("kind", ["printer", "display"])
def test_a_refused_connection_says_connection_refused_with_host_and_port(kind: str) -> None:
    port = closed_port()
    code, out, err = run(tillgate("probe", kind, f"tcp://127.0.0.1:{port}"))
    assert code == 1
    assert out == ""
    assert err == (
        f"tillgate: {kind}: device tcp://127.0.0.1:{port}: connection refused by 127.0.0.1:{port}\n"
    )
