"""The ``lines`` framing core, fed bytes directly: no sockets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import FramingEvent, PayloadReceived, PayloadTooLarge
from drivers.lines import LinesFraming


def feed(framing: LinesFraming, *chunks: bytes) -> list[FramingEvent]:
    events: list[FramingEvent] = []
    for chunk in chunks:
        framing.receive_data(chunk)
        while (event := framing.next_event()) is not None:
            events.append(event)
    return events


def test_lf_and_crlf_lines_and_blank_lines() -> None:
    events = feed(LinesFraming(), b'{"a":1}\r\n\n  \r\n{"b":2}\n')
    assert events == [PayloadReceived(b'{"a":1}'), PayloadReceived(b'{"b":2}')]


def test_leading_bom_is_dropped() -> None:
    assert feed(LinesFraming(), b'\xef\xbb\xbf{"a":1}\n') == [PayloadReceived(b'{"a":1}')]


def test_line_split_across_chunks() -> None:
    assert feed(LinesFraming(), b'{"a"', b":1", b"}\n") == [PayloadReceived(b'{"a":1}')]


def test_oversized_line_is_reported_once_and_skipped_to_next_lf() -> None:
    framing = LinesFraming(max_line=10)
    events = feed(framing, b"x" * 8, b"x" * 8, b"y" * 100, b'\n{"ok":1}\n')
    assert events == [PayloadTooLarge(10), PayloadReceived(b'{"ok":1}')]


def test_oversized_line_within_one_chunk() -> None:
    events = feed(LinesFraming(max_line=10), b"z" * 30 + b'\n{"ok":1}\n')
    assert events == [PayloadTooLarge(10), PayloadReceived(b'{"ok":1}')]


def test_line_of_exactly_the_limit_with_crlf_passes() -> None:
    line = b"q" * 10
    assert feed(LinesFraming(max_line=10), line + b"\r", b"\n") == [PayloadReceived(line)]


def test_unterminated_last_line_counts_at_end_of_input() -> None:
    assert feed(LinesFraming(), b'{"a":1}', b"") == [PayloadReceived(b'{"a":1}')]


def test_send_appends_lf() -> None:
    framing = LinesFraming()
    framing.send_payload(b'{"a":1}')
    framing.send_payload(b'{"b":2}')
    assert framing.data_to_send() == b'{"a":1}\n{"b":2}\n'
    assert framing.data_to_send() == b""


@settings(max_examples=300)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=1, max_value=50), max_size=20))
def test_parser_never_raises_and_splitting_does_not_matter(data: bytes, cuts: list[int]) -> None:
    whole = feed(LinesFraming(max_line=64), data, b"")
    chunks: list[bytes] = []
    rest = data
    for cut in cuts:
        chunks.append(rest[:cut])
        rest = rest[cut:]
    chunks.append(rest)
    split = feed(LinesFraming(max_line=64), *[c for c in chunks if c], b"")
    assert whole == split
    for event in whole:
        assert isinstance(event, PayloadReceived | PayloadTooLarge)
        if isinstance(event, PayloadReceived):
            assert b"\n" not in event.data
            assert len(event.data) <= 64
