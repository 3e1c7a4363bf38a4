"""Configuration mistakes an installer makes: each is a problem with its key, never a default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapter.config import InvalidConfigError, load_config


def problems(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "tillgate.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidConfigError) as caught:
        load_config(path)
    return {problem.key: problem.message for problem in caught.value.problems}


def test_blank_values_left_by_a_template_are_refused_not_defaulted(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
store = ""
timezone = " "
data_dir = ""
[central]
url = ""
db = ""
[cache]
db = ""
[[listener]]
address = ""
[[lane]]
id = "01"
token = ""
printer = ""
""",
    )
    for key in (
        "store",
        "timezone",
        "data_dir",
        "central.url",
        "central.db",
        "cache.db",
        "listener[0].address",
        "lane[0].printer",
    ):
        assert found.get(key) == "must not be empty", key
    assert "lane[0].token" not in found  # a TCP lane without a token is a real choice


def test_a_store_id_with_a_newline_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, 'store = "S001\\nS002"\n')
    assert "control characters" in found["store"]


def test_a_printer_driver_is_not_a_display_model_and_back(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[[lane]]
id = "01"
printer = "tcp://127.0.0.1:9100"
printer_driver = "cd5220"
display = "/dev/ttyUSB3"
display_model = "escpos"
""",
    )
    printers = found["lane[0].printer_driver"].removeprefix("must be one of ").split(", not ")
    assert printers[1] == "'cd5220'"
    assert "escpos" in printers[0]
    assert "cd5220" not in printers[0]
    displays = found["lane[0].display_model"].removeprefix("must be one of ").split(", not ")
    assert displays[1] == "'escpos'"
    assert "cd5220" in displays[0]
    assert "escpos" not in displays[0].split(", ")


def test_both_display_names_of_the_field_guide_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "tillgate.toml"
    for model in ("cd5220", "epson", "epson_display"):
        path.write_text(
            f'[[lane]]\nid = "01"\ndisplay = "/dev/ttyUSB3"\ndisplay_model = "{model}"\n',
            encoding="utf-8",
        )
        assert load_config(path).lanes[0].display_model == model


def test_device_urls_are_checked_before_the_first_receipt(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[[lane]]
id = "01"
printer = "lpt://foo"
display = "tcp://:99999"
[[lane]]
id = "02"
printer = "socket://10.0.0.9:9100"
display = "/dev/ttyUSB3"
""",
    )
    assert found["lane[0].printer"].startswith("unknown device URL scheme 'lpt'")
    assert found["lane[0].display"] == "must be tcp://HOST[:PORT], not 'tcp://:99999'"
    assert not any(key.startswith("lane[1]") for key in found)


def test_a_codepage_the_printer_lacks_is_caught_by_check_config(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[[lane]]
id = "01"
printer = "tcp://127.0.0.1:9100"
printer_codepage = "utf-8"
""",
    )
    assert found["lane[0].printer_codepage"] == "the printer has no codepage 'utf-8'"


def test_tls_files_must_be_readable_files(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    (tmp_path / "certs").mkdir()
    key = tmp_path / "key.pem"
    key.write_text("x", encoding="utf-8")
    key.chmod(0)
    found = problems(
        tmp_path,
        """
[central]
url = "grpcs://central.example:7443"
tls_ca = "ca.pem"
tls_cert = "certs"
tls_key = "key.pem"
""",
    )
    assert "central.tls_ca" not in found
    assert found["central.tls_cert"].startswith("is a directory, not a file: ")
    if os.geteuid() != 0:  # root reads any file
        assert found["central.tls_key"].startswith("cannot be read by this user: ")


def test_a_port_out_of_range_says_the_range(tmp_path: Path) -> None:
    path = tmp_path / "tillgate.toml"
    path.write_text('[[listener]]\naddress = "127.0.0.1:99999"\n', encoding="utf-8")
    with pytest.raises(InvalidConfigError) as caught:
        load_config(path)
    assert [str(problem) for problem in caught.value.problems] == [
        ("tillgate.toml: listener[0].address: must be HOST:PORT with a port 0..65535,"
        " not '127.0.0.1:99999'")
    ]


def test_a_misspelt_key_is_told_the_key_it_resembles(tmp_path: Path) -> None:
    path = tmp_path / "tillgate.toml"
    path.write_text('stroe = "S001"\n[[listener]]\nadress = "127.0.0.1:7171"\nzzz = 1\n',
                    encoding="utf-8")
    with pytest.raises(InvalidConfigError) as caught:
        load_config(path)
    said = [(problem.key, problem.message) for problem in caught.value.problems]
    assert said == [
        ("stroe", "unknown key; did you mean 'store'?"),
        ("listener[0].adress", "unknown key; did you mean 'address'?"),
        ("listener[0].zzz", "unknown key"),
    ]
