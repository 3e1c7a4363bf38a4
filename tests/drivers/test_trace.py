"""Trace records, the sniff formatter and the hub's subscriber handling."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from pathlib import Path

import pytest

from drivers.base import LinkNotice
from drivers.link import ACK, NAK, encode_control, encode_frame
from drivers.trace import RECORD_BYTES, SniffPrinter, TraceHub, TraceRecord, sniff


async def subscribe(socket: Path, lane: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A sniff client of ``lane`` on the hub at ``socket``, past the hub's hello."""
    reader, writer = await asyncio.open_unix_connection(socket)
    writer.write(json.dumps({"lane": lane}).encode() + b"\n")
    await reader.readline()
    return reader, writer


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


def test_a_long_read_reaches_sniff_in_records_it_can_read(tmp_path: Path) -> None:
    # A 70 KB request line arrives in reads of up to 64 KiB: each traced read used to be one
    # record line of twice its size in hex, past what sniff reads as a line.
    line = b'{"v":1,"type":"ping","id":"p","pad":"' + b"x" * 70_000 + b'"}\n'

    async def scenario() -> list[bytes]:
        hub = TraceHub(tmp_path / "t.sock")
        await hub.start()
        tap = hub.tap("tcp:127.0.0.1:5000", "lines", lane="01")
        reader, writer = await subscribe(tmp_path / "t.sock", "01")  # reads lines of 64 KiB
        tap.trace("in", line[:65536], 1.0)
        tap.trace("in", line[65536:], 1.1)
        records: list[bytes] = []
        while sum(len(record) for record in records) < len(line):
            records.append(TraceRecord.from_json(await reader.readline()).data)
        writer.close()
        await hub.close()
        return records

    records = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert b"".join(records) == line
    assert max(len(record) for record in records) <= RECORD_BYTES
    printer = SniffPrinter()
    printed = [text for data in records
               for text in printer.lines(TraceRecord("01", "lines", "in", 1.0, data))]
    assert len(printed) == 1
    assert printed[0].endswith(f"… ({len(line) - 1} bytes)")


def test_closing_the_hub_under_its_clients_logs_no_asyncio_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The daemon closes the hub and then its loop ends: a sniff client's handler still running
    # then was cancelled, and Python 3.11 logged that as an error with a traceback.
    async def scenario() -> int:
        hub = TraceHub(tmp_path / "t.sock")
        await hub.start()
        for _ in range(3):
            await subscribe(tmp_path / "t.sock", "*")
        await hub.close()
        return len(asyncio.all_tasks())  # the loop ends now, cancelling what is left

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert asyncio.run(scenario()) == 1  # this one
    assert [record.getMessage() for record in caplog.records] == []


def test_a_frame_cut_off_shows_before_the_nak_it_caused() -> None:
    # The register stops 4 bytes into a frame and sends nothing more; the daemon's 200 ms
    # timer NAKs it. The bad frame is printed at the instant the gap ended, before the NAK.
    # (Before, it showed only once the register sent again, stamped then, after the NAK.)
    printer = SniffPrinter()
    cut = encode_frame(7, b'{"v":1}')[:4]
    out = list(printer.lines(TraceRecord("03", "link", "in", 100.0, cut)))
    out += printer.lines(TraceRecord("03", "link", "notice", 100.25, b"", "nak_sent", "gap seq=7"))
    out += printer.lines(TraceRecord("03", "link", "out", 100.25, encode_control(NAK, 7)))
    assert [text.split(" ", 2)[2] for text in out] == [
        f"reg> BAD gap seq=7 | {cut.hex(' ')}",
        f"reg> NOISE | {cut[1:].hex(' ')}",  # re-read from the byte after the STX (§5)
        "  !! nak_sent gap seq=7",
        "<tg  NAK 7",
    ]
    assert out[0].split(" ")[0].endswith(".200")


def test_closing_the_hub_does_not_wait_on_a_client_that_stopped_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # `sniff '*' | less`, paused: the hub's writes to it fill every buffer and its handler
    # waits in drain(). A close that waited to send that backlog would never finish.
    async def scenario() -> int:
        hub = TraceHub(tmp_path / "t.sock")
        await hub.start()
        await subscribe(tmp_path / "t.sock", "*")
        tap = hub.tap("serial:/dev/pts/1", "link", lane="03")
        for n in range(400):  # some 13 MB of hex, never read
            tap.trace("in", bytes([n % 256]) * RECORD_BYTES, float(n))
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)
        await asyncio.wait_for(hub.close(), 1.0)
        return len(asyncio.all_tasks())

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert asyncio.run(scenario()) == 1
    assert [record.getMessage() for record in caplog.records] == []


def test_notices_are_stamped_on_the_clock_of_the_bytes(tmp_path: Path) -> None:
    # The wall clock stepped by a day since the hub started (NTP after boot): a notice stamped
    # with time.time() would land a day away from the bytes sniff orders it against.
    async def scenario() -> list[TraceRecord]:
        hub = TraceHub(tmp_path / "t.sock")
        hub.wall_offset -= 86_400
        await hub.start()
        reader, writer = await subscribe(tmp_path / "t.sock", "03")
        tap = hub.tap("serial:/dev/pts/1", "link", lane="03")
        tap.trace("in", b"\x05", time.monotonic())
        tap.on_notice(LinkNotice("peer_alive"))
        got = [TraceRecord.from_json(await reader.readline()) for _ in range(2)]
        writer.close()
        await hub.close()
        return got

    data, notice = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert notice.kind == "peer_alive"
    assert 0 <= notice.at - data.at < 1.0


def test_sniff_ends_quietly_on_a_record_cut_by_the_daemon_stopping(tmp_path: Path) -> None:
    # A daemon stopping aborts its sniff clients, perhaps in the middle of a record line.
    record = TraceRecord("03", "link", "in", 1.0, encode_control(ACK, 1)).to_json().encode()

    async def daemon(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"ok": true, "lane": "03", "lanes": ["03"]}\n' + record + b"\n"
                     + record[:20])
        await writer.drain()
        writer.transport.abort()

    async def scenario() -> tuple[int, str]:
        server = await asyncio.start_unix_server(daemon, path=tmp_path / "t.sock")
        out = io.StringIO()
        count = await sniff(tmp_path / "t.sock", "03", out)
        server.close()
        await server.wait_closed()
        return count, out.getvalue()

    count, printed = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert count == 1
    assert printed.splitlines()[1].endswith(" 03 reg> ACK 1")
    assert "unreadable" not in printed
