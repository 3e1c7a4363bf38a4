"""``central serve --listen`` takes HOST:PORT and nothing else.

Without a port gRPC would bind the scheme's default, 443, and say nothing; a store dialling
the documented port would then find no central.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from central import cli
from central.server import parse_listen, start_server
from tillgate.errors import ConfigError

REFUSED = ["127.0.0.1", "127.0.0.1:", ":7443", "::1:7443", "[::1", "[]:7443",
           "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1", "localhost:7 443"]


def test_listen_without_port_is_refused_before_anything_binds(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    result = subprocess.run(
        [sys.executable, "-m", "central", "serve", "--db", str(db), "--listen", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    expected = (
        "error: --listen: expected HOST:PORT such as 127.0.0.1:7443, 0.0.0.0:7443 or "
        "[::1]:7443, got '127.0.0.1'"
    )
    assert result.stderr.splitlines() == [expected]
    assert "central listening" not in result.stderr
    assert not db.exists()


@pytest.mark.parametrize("listen", REFUSED)
def test_serve_refuses_listen_that_is_not_host_port(
    listen: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "central.db"
    code = cli.main(["serve", "--db", str(db), "--listen", listen])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --listen: ")
    assert repr(listen) in err
    assert len(err.splitlines()) == 1
    assert not db.exists()


@pytest.mark.parametrize("listen", REFUSED)
def test_start_server_refuses_listen_that_is_not_host_port(listen: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        start_server(tmp_path / "central.db", listen)
    assert refused.value.key == "listen"
    assert not (tmp_path / "central.db").exists()


@pytest.mark.parametrize(
    ("listen", "parsed"),
    [
        ("127.0.0.1:7443", ("127.0.0.1", 7443)),
        ("0.0.0.0:7443", ("0.0.0.0", 7443)),
        ("central.example.net:443", ("central.example.net", 443)),
        ("[::1]:7443", ("[::1]", 7443)),
        ("[::]:0", ("[::]", 0)),
    ],
)
def test_host_port_forms_accepted(listen: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(listen) == parsed


def test_wildcard_host_is_reported_as_loopback_address(tmp_path: Path) -> None:
    server = start_server(tmp_path / "central.db", "0.0.0.0:0")
    try:
        assert server.address == f"127.0.0.1:{server.port}"
        assert server.port > 0
    finally:
        server.stop(1.0)
