"""Trace records, the sniff formatter and the hub's subscriber handling."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from drivers.base import LinkNotice
from drivers.link import ACK, encode_control, encode_frame
from drivers.trace import SniffPrinter, TraceHub, TraceRecord


def test_record_json_round_trip() -> None:
    record = TraceRecord("03", "link", "in", 1700000000.25, b"\x02\x00\xff")
    assert TraceRecord.from_json(record.to_json()) == record
    notice = TraceRecord("03", "link", "notice", 1.0, b"", "nak_sent", "bad_crc seq=4")
    assert TraceRecord.from_json(notice.to_json()) == notice


def test_link_records_split_anywhere_print_whole_frames() -> None:
    printer = SniffPrinter()
    stream = encode_frame(5, b'{"v":1}') + encode_control(ACK, 2)
    lines: list[str] = []
    for i in range(len(stream)):
        record = TraceRecord("07", "link", "in", 100.0 + i * 0.001, stream[i : i + 1])
        lines += printer.lines(record)
    assert [line.split(" ", 2)[2] for line in lines] == [
        'reg> FRAME seq=5 len=7 {"v":1}',
        "reg> ACK 2",
    ]


def test_lines_records_print_lines_and_hex_for_bad_utf8() -> None:
    printer = SniffPrinter()
    out = list(printer.lines(TraceRecord("tcp:1", "lines", "in", 0.0, b'{"a":1}\r\n{"b"')))
    out += printer.lines(TraceRecord("tcp:1", "lines", "in", 0.0, b":2}\n\xff\xfe\n"))
    out += printer.lines(TraceRecord("tcp:1", "lines", "out", 0.0, b"x" * 300 + b"\n"))
    tails = [line.split(" ", 2)[2] for line in out]
    assert tails[:3] == ['reg> {"a":1}', 'reg> {"b":2}', "reg> BAD not UTF-8 | ff fe"]
    assert tails[3].startswith("<tg  xxx")
    assert tails[3].endswith("… (300 bytes)")


def test_hub_serves_only_the_subscribed_lane(tmp_path: Path) -> None:
    async def scenario() -> list[dict[str, object]]:
        hub = TraceHub(tmp_path / "t.sock")
        await hub.start()
        lane3 = hub.tap("serial:/dev/pts/1", "link", lane="03")
        lane4 = hub.tap("tcp:127.0.0.1:5000", "lines")
        lane3.trace("in", b"before anyone listens", 1.0)  # costs nothing, goes nowhere
        reader, writer = await asyncio.open_unix_connection(tmp_path / "t.sock")
        writer.write(b'{"lane": "03"}\n')
        hello = json.loads(await reader.readline())
        assert hello == {"ok": True, "lane": "03", "lanes": ["03", "tcp:127.0.0.1:5000"]}
        lane4.trace("in", b"other lane", 2.0)
        lane3.trace("out", b"\x06\x01", 3.0)
        lane3.on_notice(LinkNotice("repeat_sent", "seq=1"))
        got = [json.loads(await reader.readline()) for _ in range(2)]
        writer.close()
        await hub.close()
        assert not (tmp_path / "t.sock").exists()
        return got

    got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert got[0]["hex"] == "0601"
    assert got[0]["dir"] == "out"
    assert got[1]["kind"] == "repeat_sent"


def test_one_tap_per_peer_named_by_hello_later(tmp_path: Path) -> None:
    hub = TraceHub(tmp_path / "t.sock")
    tap = hub.tap("tcp:127.0.0.1:5000", "lines")
    assert hub.tap("tcp:127.0.0.1:5000", lane="05") is tap
    assert (tap.framing, tap.name) == ("lines", "05")
    assert hub.lanes() == ["05"]
    hub.forget("tcp:127.0.0.1:5000")
    assert hub.lanes() == []


def test_hub_rejects_a_bad_request(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        hub = TraceHub(tmp_path / "t.sock")
        await hub.start()
        reader, writer = await asyncio.open_unix_connection(tmp_path / "t.sock")
        writer.write(b"hello\n")
        answer = await reader.readline()
        writer.close()
        await hub.close()
        return answer

    answer = json.loads(asyncio.run(asyncio.wait_for(scenario(), 10)))
    assert answer["ok"] is False
    assert "lane" in answer["error"]
