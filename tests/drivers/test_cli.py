"""Field-engineer commands as real subprocesses against ptys, a capture server and a trace hub."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from drivers.base import Received
from drivers.channel import FramedChannel
from drivers.escpos_reader import BarcodePrinted, Cut, QrPrinted, TextLine, read_all
from drivers.link import Link, encode_frame
from drivers.serial import open_serial_channel
from drivers.trace import TraceHub
from tests.drivers.field_cli import ROOT, run, tillgate
from tests.drivers.ptys import master_streams, pty_pair


def test_probe_serial_finds_a_link_peer() -> None:
    async def scenario() -> tuple[int, str, str]:
        with pty_pair() as pty:
            reader, writer = await master_streams(pty.master_fd)
            register = FramedChannel(reader, writer, Link(), peer="reg", transport="serial")
            result = await tillgate("probe", "serial", pty.path, "--baud", "9600")
            await register.close()
            return result

    code, out, err = run(scenario())
    assert code == 0, err
    assert "answered ENQ with ACK 0" in out
    assert "9600 8N1, no flow control" in out


def test_probe_serial_reports_silence_and_wrong_speed() -> None:
    async def scenario() -> list[tuple[int, str, str]]:
        with pty_pair() as pty:
            silent = await tillgate("probe", "serial", pty.path, "--timeout", "0.5")
            reader, writer = await master_streams(pty.master_fd)

            async def wrong_speed_peer() -> None:
                # What a link byte looks like at the wrong baud rate: something else.
                while await reader.read(100):
                    writer.write(b"\xff\xfe\x80garbage")

            peer = asyncio.create_task(wrong_speed_peer())
            noisy = await tillgate("probe", "serial", pty.path, "--timeout", "0.5")
            peer.cancel()
            writer.close()
            return [silent, noisy]

    (code, _out, err), (code2, _, err2) = run(scenario())
    assert code == 1
    assert "no answer to ENQ within 0.5 s" in err
    assert "check the cable" in err
    assert code2 == 1
    assert "wrong baud rate" in err2


def test_probe_serial_missing_port_is_one_line() -> None:
    code, _out, err = run(tillgate("probe", "serial", "/dev/ttyNOPE7"))
    assert code == 1
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith("tillgate: serial port /dev/ttyNOPE7: cannot open")


@pytest.mark.parametrize("device", ["serial", "printer", "display"])
def test_probes_take_only_the_baud_rates_the_configuration_takes(device: str) -> None:
    # 4800 would be proven by the probe, then refused by check-config.
    code, _out, err = run(tillgate("probe", device, "/dev/ttyNOPE7", "--baud", "4800"))
    assert code == 2
    assert "Traceback" not in err
    assert "invalid choice: 4800 (choose from 9600, 19200, 38400, 57600, 115200)" in err


def test_probe_printer_prints_a_readable_test_page() -> None:
    async def scenario() -> tuple[tuple[int, str, str], bytes]:
        jobs: list[bytes] = []

        async def job(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            jobs.append(await reader.read())
            writer.close()

        server = await asyncio.start_server(job, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        result = await tillgate("probe", "printer", f"tcp://127.0.0.1:{port}", "--width", "48")
        await asyncio.sleep(0.1)
        server.close()
        await server.wait_closed()
        return result, jobs[0]

    (code, out, err), job = run(scenario())
    assert code == 0, err
    assert "48 columns" in out
    events = read_all(job)
    texts = [e.text for e in events if isinstance(e, TextLine)]
    assert "tillgate: проверка принтера" in texts
    assert any("АБВГДЕЁЖЗ" in t for t in texts)
    assert BarcodePrinted("EAN13", "460000000001") in events
    assert BarcodePrinted("CODE128", "TILLGATE-PROBE") in events
    assert QrPrinted("https://example.invalid/tillgate/probe") in events
    assert events[-1] == Cut(partial=False)


def test_probe_printer_unreachable() -> None:
    code, _, err = run(tillgate("probe", "printer", "tcp://127.0.0.1:1"))
    assert code == 1
    assert err.startswith("tillgate: printer: device tcp://127.0.0.1:1")


def test_probe_display_over_a_pty() -> None:
    async def scenario() -> tuple[tuple[int, str, str], bytes]:
        with pty_pair() as pty:
            result = await tillgate("probe", "display", pty.path, "--model", "epson")
            return result, os.read(pty.master_fd, 4096)

    (code, _out, err), data = run(scenario())
    assert code == 0, err
    assert "проверка".encode("cp866") in data
    assert data.startswith(b"\x1b@\x1bt\x11")


def test_sniff_prints_frames_acks_and_bad_frames(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, str, str]:
        hub = TraceHub(tmp_path / "sniff.sock")
        await hub.start()
        with pty_pair() as pty:
            tap = hub.tap(f"serial:{pty.path}", "link", lane="03")
            lane = await open_serial_channel(
                pty.path, 9600, Link(), trace=tap.trace, on_notice=tap.on_notice
            )
            sniffer = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "drivers.cli", "sniff", "03",
                "--socket", str(tmp_path / "sniff.sock"),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert sniffer.stdout is not None
            first = await sniffer.stdout.readline()
            assert b"sniffing lane 03" in first
            reader, writer = await master_streams(pty.master_fd)
            register = FramedChannel(reader, writer, Link(), peer="reg", transport="serial")
            await register.send({"v": 1, "type": "ping", "id": "p-1"})
            assert await lane.receive() == Received({"v": 1, "type": "ping", "id": "p-1"})
            await lane.send({"v": 1, "type": "ping.result", "id": "p-1", "mode": "online"})
            await register.receive()
            broken = bytearray(encode_frame(9, b'{"v":1}'))
            broken[5] ^= 0x40
            os.write(pty.master_fd, bytes(broken))
            await asyncio.sleep(0.5)
            await hub.close()
            out, err = await sniffer.communicate()
            await register.close()
            await lane.close()
            assert sniffer.returncode is not None
            return sniffer.returncode, first.decode() + out.decode(), err.decode()

    code, out, err = run(scenario())
    assert code == 0, err
    assert 'reg> FRAME seq=1 len=32 {"v":1,"type":"ping","id":"p-1"}' in out
    assert "<tg  ACK 1" in out
    assert "<tg  FRAME seq=1" in out
    assert "reg> ACK 1" in out
    assert "reg> BAD bad_crc seq=9 | 02 00 07 09" in out
    assert "<tg  NAK 9" in out
    assert "!! nak_sent bad_crc" in out


def test_sniff_without_a_daemon(tmp_path: Path) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text('store = "S001"\ndata_dir = "state"\n')
    code, _, err = run(tillgate("sniff", "03", "--config", str(config)))
    assert code == 1
    assert f"no daemon is listening on {tmp_path / 'state' / 'sniff.sock'}" in err
    config.write_text("data_dir = [")
    code, _, err = run(tillgate("sniff", "03", "--config", str(config)))
    assert code == 2
    assert "not valid TOML" in err


@pytest.mark.parametrize("argv", [["probe"], ["probe", "serial"], ["sniff"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    code, _, err = run(tillgate(*argv))
    assert code == 2
    assert "usage:" in err


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "soon"])
def test_probe_serial_refuses_a_timeout_that_waits_for_nothing(seconds: str) -> None:
    code, _, err = run(tillgate("probe", "serial", "/dev/null", "--timeout", seconds))
    assert code == 2
    assert "argument --timeout: " in err
    assert repr(seconds) in err
