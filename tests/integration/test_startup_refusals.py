"""A daemon that cannot start says why in one line naming the key or file, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import DaemonProcess, daemon_config, free_port


def run_briefly(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tillgate", "run", "--config", str(config)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_names_the_listener(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = daemon_config(tmp_path, central_url="embedded", port=port)
        result = run_briefly(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"listener[0].address 127.0.0.1:{port}: cannot listen: " in result.stderr
    # The ports are bound first: before the embedded central could take one of them for its
    # own ephemeral port, and before it opened (and created) its database.
    assert "embedded_central" not in result.stdout + result.stderr
    assert not list(tmp_path.rglob("central.db"))


def test_an_address_not_of_this_host_names_the_listener(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, central_url="embedded", port=free_port())
    config.write_text(
        config.read_text().replace('address = "127.0.0.1:', 'address = "192.0.2.1:'),
        encoding="utf-8",
    )
    result = run_briefly(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "listener[0].address 192.0.2.1:" in result.stderr


def test_a_second_daemon_on_the_same_data_dir_leaves_the_first_alone(tmp_path: Path) -> None:
    port = free_port()
    config = daemon_config(tmp_path, central_url="embedded", port=port)
    first = DaemonProcess(config, port, tmp_path / "first.log").start()
    try:
        sniff_socket = tmp_path / "data" / "sniff.sock"
        inode_before = sniff_socket.stat().st_ino if sniff_socket.exists() else None
        other = tmp_path / "other.toml"
        other.write_text(
            config.read_text().replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"),
            encoding="utf-8",
        )
        result = run_briefly(other)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "another tillgate is running with it (pid " in result.stderr
        assert str(first.process.pid if first.process else "") in result.stderr
        if inode_before is not None:  # the first daemon's trace socket was not taken over
            assert sniff_socket.stat().st_ino == inode_before
        with socket.create_connection(("127.0.0.1", port), timeout=5) as register:
            register.sendall(b'{"v":1,"type":"hello","id":"h1","lane":"01"}\n')
            assert b'"hello.result"' in register.makefile("rb").readline()
    finally:
        assert first.stop() == 0
    # the lock goes with the process: the same data_dir starts again
    again = DaemonProcess(config, port, tmp_path / "again.log").start()
    assert again.stop() == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any file")
def test_a_database_the_daemon_cannot_write_is_named_at_start(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, central_url="embedded", port=free_port())
    data = tmp_path / "data"
    data.mkdir()
    edge = data / "edge.db"
    edge.write_bytes(b"")
    edge.chmod(0o444)  # as if `sudo tillgate sync` had created it
    result = run_briefly(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cache.db {edge}: cannot be written by " in result.stderr
    sync = subprocess.run(
        [sys.executable, "-m", "tillgate", "sync", "--config", str(config)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert sync.returncode == 1
    assert f"cache.db {edge}: cannot be written by " in sync.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be the wrong user for a data_dir")
def test_root_is_sent_to_the_owner_of_the_data_dir(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, central_url="embedded", port=free_port())
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)  # the service user's folder, as the package makes it
    for command in ("run", "sync"):
        result = subprocess.run(
            [sys.executable, "-m", "tillgate", command, "--config", str(config)],
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, command
        assert "Traceback" not in result.stderr
        assert f"data_dir {data} belongs to " in result.stderr
        assert "run this as that user (sudo -u " in result.stderr
    assert list(data.iterdir()) == []  # nothing root-owned was left behind


def test_database_folders_are_made_for_the_central_as_for_the_cache(tmp_path: Path) -> None:
    port = free_port()
    config = daemon_config(tmp_path, central_url="embedded", port=port)
    config.write_text(
        config.read_text().replace('db = "data/central.db"', 'db = "new/central.db"'),
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    assert daemon.stop() == 0
    assert (tmp_path / "new" / "central.db").is_file()


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, central_url="embedded", port=free_port())
    (tmp_path / "data").write_text("not a folder", encoding="utf-8")
    result = run_briefly(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'data'}" in result.stderr
