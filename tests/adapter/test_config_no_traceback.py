"""A bad configuration is one line per problem naming the file and the key, never a traceback:
values Python's own parsers choke on (``zoneinfo``, ``int("²")``, ``~nosuchuser``), values that
pass an equality test (``9600.0``), clashes only the bind would have found, and files behind a
folder the user cannot enter."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adapter.other_user import as_other_user, lock, shared_dir, tillgate


def check(tmp_path: Path, text: str) -> list[str]:
    """``check-config`` on ``text``: it must exit 2; its stderr lines."""
    config = tmp_path / "tillgate.toml"
    config.write_text(text, encoding="utf-8")
    result = tillgate("check-config", "--config", str(config))
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stdout
    return result.stderr.strip().splitlines()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('timezone = "Europe"\n', "tillgate.toml: timezone: unknown time zone 'Europe'"),
        (f'timezone = "{"a" * 300}"\n', "tillgate.toml: timezone: unknown time zone 'aaa"),
        (
            '[[listener]]\naddress = "127.0.0.1:²"\n',
            ("tillgate.toml: listener[0].address: must be HOST:PORT with a port 0..65535,"
            " not '127.0.0.1:²'"),
        ),
        (
            '[metrics]\naddress = "127.0.0.1:²"\n',
            ("tillgate.toml: metrics.address: must be HOST:PORT with a port 0..65535,"
            " not '127.0.0.1:²'"),
        ),
        (
            '[[lane]]\nid = "01"\nprinter = "tcp://printer:²"\n',
            "tillgate.toml: lane[0].printer: must be tcp://HOST[:PORT], not 'tcp://printer:²'",
        ),
        (
            '[central]\nurl = "grpc://central:١٢"\n',  # Arabic-Indic digits
            "tillgate.toml: central.url: must be ",
        ),
        (
            'data_dir = "~nosuchuser-tillgate/x"\n',
            "tillgate.toml: data_dir: unknown user in '~nosuchuser-tillgate/x'",
        ),
    ],
)
def test_a_value_python_chokes_on_is_one_line_with_its_key(
    tmp_path: Path, text: str, line: str
) -> None:
    lines = check(tmp_path, text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(line)


def test_floats_and_booleans_are_not_integers(tmp_path: Path) -> None:
    lines = check(
        tmp_path,
        '[[lane]]\nid = "01"\nprinter_width = 42.0\nbaud = 9600.0\nprinter_baud = 9600.0\n'
        "display_baud = true\n",
    )
    bauds = "must be an integer, one of 9600, 19200, 38400, 57600, 115200"
    assert sorted(lines) == sorted([
        f"tillgate.toml: lane[0].baud: {bauds}",
        f"tillgate.toml: lane[0].printer_baud: {bauds}",
        f"tillgate.toml: lane[0].display_baud: {bauds}",
        "tillgate.toml: lane[0].printer_width: must be an integer, one of 32, 42, 48",
    ])


def test_two_listeners_or_metrics_on_one_address_are_refused(tmp_path: Path) -> None:
    lines = check(
        tmp_path,
        '[[listener]]\naddress = "127.0.0.1:7300"\n'
        '[[listener]]\naddress = "0.0.0.0:7300"\n'  # takes 127.0.0.1:7300 as well
        '[[listener]]\naddress = "127.0.0.1:7301"\n'
        '[[listener]]\naddress = "127.0.0.1:0"\n'  # any free port: never a clash
        '[[listener]]\naddress = "127.0.0.1:0"\n'
        '[metrics]\naddress = "127.0.0.1:7301"\n',
    )
    assert lines == [
        ("tillgate.toml: listener[1].address: 0.0.0.0:7300 is also listener[0]'s "
         "(127.0.0.1:7300): only one can listen there"),
        ("tillgate.toml: metrics.address: 127.0.0.1:7301 is also listener[2]'s "
         "(127.0.0.1:7301): only one can listen there"),
    ]


def test_one_device_written_two_ways_or_used_twice_is_refused(tmp_path: Path) -> None:
    lines = check(
        tmp_path,
        '[[lane]]\nid = "01"\nserial = "/dev/ttyUSB0"\nprinter = "tcp://printer:9100"\n'
        '[[lane]]\nid = "02"\nserial = "/dev/../dev/ttyUSB0"\n'
        '[[lane]]\nid = "03"\nprinter = "/dev/ttyUSB0"\nprinter_baud = 19200\n'
        '[[lane]]\nid = "04"\nprinter = "tcp://printer:9100"\n'  # a network printer may be shared
        'display = "/dev/ttyS3"\n'
        '[[lane]]\nid = "05"\ndisplay = "/dev/./ttyS3"\n',
    )
    assert lines == [
        ("tillgate.toml: lane[1].serial: '/dev/../dev/ttyUSB0' is the device of lane[0].serial: "
         "one device, one use"),
        ("tillgate.toml: lane[2].printer: '/dev/ttyUSB0' is the device of lane[0].serial: "
         "one device, one use"),
        ("tillgate.toml: lane[4].display: '/dev/./ttyS3' is the device of lane[3].display: "
         "one device, one use"),
    ]


def test_run_refuses_a_bad_config_the_same_way(tmp_path: Path) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text('timezone = "Europe"\n[[lane]]\nid = "01"\nbaud = 9600.0\n')
    result = tillgate("run", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        ("tillgate.toml: timezone: unknown time zone 'Europe' "
         "(hint: an IANA name such as Europe/Moscow)"),
        ("tillgate.toml: lane[0].baud: must be an integer, one of 9600, 19200, 38400, 57600, "
         "115200"),
    ]


def test_tls_files_behind_a_closed_folder_or_too_long_a_name() -> None:
    with shared_dir() as folder:
        tls_behind_a_closed_folder(folder)


def tls_behind_a_closed_folder(folder: Path) -> None:
    (folder / "locked" / "ca.pem").write_text("x")
    lock(folder / "locked")
    config = folder / "tillgate.toml"
    config.write_text(
        '[central]\nurl = "grpcs://central:7443"\ntls_ca = "locked/ca.pem"\n'
        f'tls_cert = "{"c" * 300}.pem"\ntls_key = "locked/key.pem"\n'
    )
    config.chmod(0o644)
    result = tillgate("check-config", "--config", str(config), prefix=as_other_user())
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        (f"tillgate.toml: central.tls_ca: cannot be read by this user: {folder}/locked/ca.pem "
         "(hint: the key must be readable by the tillgate group (see docs/tls.md))"),
        (f"tillgate.toml: central.tls_cert: cannot be read: File name too long: "
         f"{folder}/{'c' * 300}.pem"),
        (f"tillgate.toml: central.tls_key: cannot be read by this user: {folder}/locked/key.pem"
         " (hint: the key must be readable by the tillgate group (see docs/tls.md))"),
    ]
