"""Plug-in drivers: one that cannot be imported is a configuration error naming its key, and a
lane whose driver breaks while serving (receiving or sending) is logged loudly and served again."""

from __future__ import annotations

import json
import os
import select
import socket
import time
from pathlib import Path

import pytest

from adapter.config import InvalidConfigError, load_config
from tests.drivers.ptys import pty_pair
from tests.integration.harness import DaemonProcess, daemon_config, free_port

BOOM = '''
class Boom:
    """A framing that breaks on the first byte it is given."""
    name = "boom"
    def receive_data(self, data, now):
        raise RuntimeError("boom: the plug-in broke")
    def next_event(self):
        return None
    def send_payload(self, payload, now):
        pass
    def data_to_send(self):
        return b""
    def next_deadline(self):
        return None
    def handle_timer(self, now):
        pass
'''

FRAGILE = """
from drivers.lines import LinesFraming

class Fragile(LinesFraming):
    \"\"\"``lines``, but breaks while sending any answer that mentions boom.\"\"\"
    name = "fragile"
    def send_payload(self, payload, now=0.0):
        if b"boom" in payload:
            raise ValueError("fragile: the plug-in broke while sending")
        super().send_payload(payload, now)
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plug-in package whose ``stx`` framing and ``star`` output name a module that is not
    installed, whose ``boom`` framing imports but breaks, and whose ``fragile`` framing breaks
    while sending an answer that mentions boom."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "tg_boom_plugin.py").write_text(BOOM)
    (folder / "tg_fragile_plugin.py").write_text(FRAGILE)
    dist = folder / "tg_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tg-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tillgate.drivers]\n"
        "framing.stx = tg_missing_module:Framing\n"
        "output.star = tg_missing_module:Printer\n"
        "framing.boom = tg_boom_plugin:Boom\n"
        "framing.fragile = tg_fragile_plugin:Fragile\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return folder


def test_a_plugin_that_cannot_be_imported_fails_check_config_by_key(
    tmp_path: Path, plugins: Path
) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text(
        '[[listener]]\naddress = "127.0.0.1:7171"\nframing = "stx"\n'
        '[[lane]]\nid = "07"\nserial = "/dev/ttyUSB7"\nframing = "stx"\n'
        'printer = "tcp://10.0.0.5"\nprinter_driver = "star"\n'
        'display = "/dev/ttyUSB8"\ndisplay_model = "star"\n'
    )
    with pytest.raises(InvalidConfigError) as caught:
        load_config(config)
    found = {problem.key: str(problem) for problem in caught.value.problems}
    for key in ("listener[0].framing", "lane[0].framing", "lane[0].printer_driver",
                "lane[0].display_model"):  # fmt: skip
        assert key in found, found
        assert "tg_missing_module" in found[key]
        assert "cannot be loaded" in found[key]
    assert found["lane[0].printer_driver"].startswith("tillgate.toml: lane[0].printer_driver: ")


def _events(log: Path) -> list[dict[str, object]]:
    events = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def test_a_serial_lane_whose_framing_breaks_is_logged_with_its_lane_and_served_again(
    tmp_path: Path, plugins: Path
) -> None:
    with pty_pair() as lane:
        port = free_port()
        config = daemon_config(
            tmp_path,
            central_url="embedded",
            port=port,
            extra=f'[[lane]]\nid = "07"\nserial = "{lane.path}"\nframing = "boom"\n',
        )
        log = tmp_path / "daemon.log"
        daemon = DaemonProcess(config, port, log).start()
        try:
            opened = 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                events = _events(log)
                failed = [e for e in events if e["event"] == "lane_failed"]
                opened = sum(1 for e in events if e["event"] == "serial_lane_open")
                if failed and opened >= 2:
                    break
                if opened:
                    os.write(lane.master_fd, b"\x05")
                time.sleep(0.2)
            alive = daemon.process is not None and daemon.process.poll() is None
        finally:
            daemon.stop()
    assert alive
    assert failed, log.read_text()
    assert failed[0]["lane"] == "07"
    assert failed[0]["level"] == "error"
    assert "boom: the plug-in broke" in str(failed[0].get("exception"))
    assert opened >= 2  # the lane was served again


def test_a_tcp_connection_whose_framing_breaks_is_logged_by_the_daemon_not_asyncio(
    tmp_path: Path, plugins: Path
) -> None:
    port = free_port()
    config = daemon_config(tmp_path, central_url="embedded", port=port)
    config.write_text(config.read_text().replace('framing = "lines"', 'framing = "boom"'))
    log = tmp_path / "daemon.log"
    daemon = DaemonProcess(config, port, log).start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as register:
            register.sendall(b'{"v":1,"type":"ping","id":"p1"}\n')
            assert register.recv(100) == b""  # closed, no traceback on the wire
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(e["event"] == "connection_failed" for e in _events(log)):
                break
            time.sleep(0.1)
        alive = daemon.process is not None and daemon.process.poll() is None
    finally:
        daemon.stop()
    assert alive
    failed = [e for e in _events(log) if e["event"] == "connection_failed"]
    assert failed, log.read_text()
    assert failed[0]["peer"].startswith("tcp:127.0.0.1:")  # type: ignore[union-attr]
    assert "boom: the plug-in broke" in str(failed[0].get("exception"))
    assert "Unhandled exception" not in log.read_text()


def _pty_answer(fd: int, timeout: float) -> bytes:
    """Bytes from a pty master up to the first LF (b"" when none came in ``timeout``)."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data += os.read(fd, 4096)
    return data if b"\n" in data else b""


def test_a_serial_lane_whose_framing_breaks_while_sending_is_logged_and_served_again(
    tmp_path: Path, plugins: Path
) -> None:
    with pty_pair() as lane:
        port = free_port()
        config = daemon_config(
            tmp_path,
            central_url="embedded",
            port=port,
            extra=f'[[lane]]\nid = "07"\nserial = "{lane.path}"\nframing = "fragile"\n',
        )
        log = tmp_path / "daemon.log"
        daemon = DaemonProcess(config, port, log).start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                e["event"] == "serial_lane_open" for e in _events(log)
            ):
                time.sleep(0.1)
            os.write(lane.master_fd, b'{"v":1,"type":"ping","id":"boom"}\n')
            while time.monotonic() < deadline:
                events = _events(log)
                failed = [e for e in events if e["event"] == "lane_failed"]
                opened = sum(1 for e in events if e["event"] == "serial_lane_open")
                if failed and opened >= 2:
                    break
                time.sleep(0.1)
            os.write(lane.master_fd, b'{"v":1,"type":"ping","id":"p1"}\n')
            again = _pty_answer(lane.master_fd, 10)
            alive = daemon.process is not None and daemon.process.poll() is None
        finally:
            daemon.stop()
    assert alive
    assert failed, log.read_text()
    assert failed[0]["lane"] == "07"
    assert failed[0]["level"] == "error"
    assert "fragile: the plug-in broke while sending" in str(failed[0].get("exception"))
    assert opened >= 2  # the lane was served again
    assert json.loads(again)["id"] == "p1"  # and answers again


def test_a_tcp_connection_whose_framing_breaks_while_sending_is_closed_and_logged(
    tmp_path: Path, plugins: Path
) -> None:
    port = free_port()
    config = daemon_config(tmp_path, central_url="embedded", port=port)
    config.write_text(config.read_text().replace('framing = "lines"', 'framing = "fragile"'))
    log = tmp_path / "daemon.log"
    daemon = DaemonProcess(config, port, log).start()
    hello = b'{"v":1,"type":"hello","id":"h","lane":"01"}\n'
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as register:
            stream = register.makefile("rb")
            register.sendall(hello)
            assert json.loads(stream.readline())["type"] == "hello.result"
            register.sendall(b'{"v":1,"type":"ping","id":"boom"}\n')
            assert stream.readline() == b""  # closed, not left reading with nobody answering
        with socket.create_connection(("127.0.0.1", port), timeout=5) as register:
            stream = register.makefile("rb")
            register.sendall(hello + b'{"v":1,"type":"ping","id":"p1"}\n')
            stream.readline()
            assert json.loads(stream.readline())["id"] == "p1"  # other connections go on
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(e["event"] == "connection_failed" for e in _events(log)):
                break
            time.sleep(0.1)
        alive = daemon.process is not None and daemon.process.poll() is None
    finally:
        daemon.stop()
    assert alive
    failed = [e for e in _events(log) if e["event"] == "connection_failed"]
    assert failed, log.read_text()
    assert "fragile: the plug-in broke while sending" in str(failed[0].get("exception"))
    assert "Unhandled exception" not in log.read_text()
