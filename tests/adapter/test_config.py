"""Configuration: typed values from TOML, every problem reported with file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.config import InvalidConfigError, default_config, load_config
from tillgate.errors import ConfigError

FULL = """
store = "S042"
timezone = "Asia/Yekaterinburg"
[central]
url = "grpc://10.0.0.5:7443"
deadline_ms = 250
[cache]
db = "state/edge.db"
[[listener]]
address = "0.0.0.0:7171"
framing = "lines"
[[lane]]
id = "01"
token = "secret"
[[lane]]
id = "05"
serial = "/dev/ttyUSB0"
baud = 9600
framing = "link"
printer = "tcp://10.0.0.9:9100"
[offline]
redeem = "limited"
redeem_cap = 50000
[metrics]
address = "127.0.0.1:9464"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tillgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_full_config_is_typed_and_paths_resolve_against_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.store == "S042"
    assert config.timezone == "Asia/Yekaterinburg"
    assert config.central.target == "10.0.0.5:7443"
    assert not config.central.embedded
    assert config.central.deadline_ms == 250
    assert config.cache.db == tmp_path / "state" / "edge.db"
    assert [lane.id for lane in config.lanes] == ["01", "05"]
    assert config.lanes[0].token == "secret"
    assert config.lanes[0].serial is None
    assert config.lanes[1].serial == "/dev/ttyUSB0"
    assert config.lanes[1].baud == 9600
    assert config.lanes[1].framing == "link"
    assert config.offline.redeem == "limited"
    assert config.offline.redeem_cap == 50000
    assert config.metrics is not None
    assert config.metrics.address == "127.0.0.1:9464"
    assert not config.any_lane


def test_every_problem_is_reported_with_file_and_key(tmp_path: Path) -> None:
    text = """
timezone = "Mars/Olympus"
[central]
url = "http://x"
deadline_ms = "fast"
[[listener]]
address = "nowhere"
framing = "xml"
[[lane]]
id = "01"
baud = 1234
[[lane]]
id = "01"
colour = "red"
"""
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, text))
    messages = [str(p) for p in caught.value.problems]
    keys = [p.key for p in caught.value.problems]
    assert "timezone" in keys
    assert "central.url" in keys
    assert "central.deadline_ms" in keys
    assert "listener[0].address" in keys
    assert "listener[0].framing" in keys
    assert "lane[0].baud" in keys
    assert "lane[1].id" in keys
    assert "lane[1].colour" in keys
    assert all(m.startswith("tillgate.toml: ") for m in messages)
    baud = next(m for m in messages if "lane[0].baud" in m)
    assert baud == "tillgate.toml: lane[0].baud: must be one of 9600, 19200, 38400, 57600, 115200"


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tillgate.toml: not valid TOML"):
        load_config(write(tmp_path, "store = \n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_embedded_default_keeps_data_out_of_the_working_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    config = default_config()
    assert config.central.embedded
    assert config.listeners[0].address == "127.0.0.1:7171"
    assert config.listeners[0].framing == "lines"
    assert config.any_lane
    assert config.central.db == tmp_path / "xdg" / "tillgate" / "central.db"
    assert config.cache.db.parent == tmp_path / "xdg" / "tillgate"
    assert config.journal_db.parent == tmp_path / "xdg" / "tillgate"


def test_grpcs_needs_certificate_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, '[central]\nurl = "grpcs://central:7443"\n'))
    assert caught.value.problems[0].key == "central.tls_ca"


def test_a_missing_tls_file_is_reported_under_its_own_key(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "store.pem").write_text("x")
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, '[central]\nurl = "grpcs://central:7443"\n'
                                    'tls_ca = "ca.pem"\ntls_cert = "store.pem"\n'))  # fmt: skip
    assert [problem.key for problem in caught.value.problems] == ["central.tls_key"]
    assert str(caught.value.problems[0]).endswith(
        "central.tls_key: is required with grpcs:// (tls_ca, tls_cert and tls_key)"
    )


def test_with_a_tls_file_missing_the_files_named_are_still_checked(tmp_path: Path) -> None:
    # Every problem at once: a missing tls_key does not hide that the other two do not exist.
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, '[central]\nurl = "grpcs://central:7443"\n'
                                    'tls_ca = "nope/ca.crt"\ntls_cert = "nope/s.crt"\n'))
    assert [str(problem).removeprefix("tillgate.toml: ")
            for problem in caught.value.problems] == [
        f"central.tls_ca: no such file: {tmp_path / 'nope' / 'ca.crt'}",
        f"central.tls_cert: no such file: {tmp_path / 'nope' / 's.crt'}",
        "central.tls_key: is required with grpcs:// (tls_ca, tls_cert and tls_key)",
    ]


@pytest.mark.parametrize(("line", "said"), [
    ('tls_ca = ""', "central.tls_ca: must not be empty"),
    ("tls_ca = 5", "central.tls_ca: must be a string, not int"),
])
def test_a_tls_key_given_wrong_is_said_once(tmp_path: Path, line: str, said: str) -> None:
    (tmp_path / "store.pem").write_text("x")
    (tmp_path / "store.key").write_text("x")
    with pytest.raises(InvalidConfigError) as caught:
        load_config(write(tmp_path, f'[central]\nurl = "grpcs://central:7443"\n{line}\n'
                                    'tls_cert = "store.pem"\ntls_key = "store.key"\n'))
    problems = [str(problem).removeprefix("tillgate.toml: ") for problem in caught.value.problems]
    assert [problem for problem in problems if problem.startswith("central.tls_ca")] == [said]
