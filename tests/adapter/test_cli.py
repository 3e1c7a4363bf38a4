"""The daemon's commands as an engineer runs them: exit codes, one line per problem, JSON shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from offline.db import EdgeDatabase
from offline.outbox import Outbox
from protos import tillgate_pb2 as pb
from tests.integration.data import import_chain
from tests.integration.harness import central_server


def tillgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tillgate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_version() -> None:
    result = tillgate("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("tillgate ")


def test_check_config_reports_every_problem_and_exits_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text('[[lane]]\nid = "01"\nbaud = 7\n[[lane]]\nid = "02"\nframing = "morse"\n')
    result = tillgate("check-config", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("tillgate.toml: lane[0].baud: must be one of 9600")
    assert lines[1].startswith("tillgate.toml: lane[1].framing: must be one of ")
    assert "link" in lines[1]
    assert "'morse'" in lines[1]
    assert "Traceback" not in result.stderr


def test_check_config_ok(tmp_path: Path) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text('store = "S777"\n')
    result = tillgate("check-config", "--config", str(config))
    assert result.returncode == 0
    assert "store S777" in result.stdout


def test_status_json_without_a_daemon_and_sync_on_demand(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    with central_server(db, demo=False) as central:
        config = tmp_path / "tillgate.toml"
        config.write_text(f'data_dir = "data"\n[central]\nurl = "grpc://{central.address}"\n')
        before = tillgate("status", "--config", str(config), "--json")
        # No daemon ever ran with it: not an "outbox depth 0" a mistyped --config could pass for.
        assert before.returncode == 1
        assert before.stdout == ""
        assert f"no edge database at {tmp_path / 'data' / 'edge.db'}" in before.stderr
        synced = tillgate("sync", "--config", str(config))
        assert synced.returncode == 0, synced.stderr
        assert "synced" in synced.stdout
        after = json.loads(tillgate("status", "--config", str(config), "--json").stdout)
        assert after["mode"] in ("online", "offline")
        assert after["breaker"] in ("closed", "open", "half_open")
        assert after["running"] is False
        assert after["cache"]["version"] > 0
        assert after["cache"]["age_s"] >= 0
        assert after["outbox"] == {"depth": 0, "oldest_age_s": None, "rejected": 0}
        text = tillgate("status", "--config", str(config)).stdout.splitlines()
        assert "running: false" in text  # as --json spells it, not Python's False
        assert f"cache.version: {after['cache']['version']}" in text
        assert "outbox.depth: 0" in text
        assert "outbox.oldest_age_s: -" in text


def test_retry_rejected_puts_rejected_entries_back_in_the_outbox(tmp_path: Path) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text('store = "S001"\ndata_dir = "data"\n')
    assert tillgate("retry-rejected", "--config", str(config)).returncode == 1  # no database
    (tmp_path / "data").mkdir()
    db = EdgeDatabase(tmp_path / "data" / "edge.db")
    outbox = Outbox(db, store="S001")
    sent = [outbox.append(f"R{i}", "cancel", pb.CancelRequest(receipt_id=f"R{i}"))
            for i in range(3)]
    acks = [pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq,
                        status="applied" if e.receipt_id == "R0" else "rejected",
                        message=f"receipt {e.receipt_id!r} is confirmed: cannot cancel")
            for e in sent]
    outbox.record_acks(sent, acks)
    assert outbox.depth() == 0
    db.close()

    listed = tillgate("retry-rejected", "--config", str(config), "--list")
    assert (listed.returncode, listed.stdout.splitlines()) == (0, [
        "seq 2: cancel of receipt R1: receipt 'R1' is confirmed: cannot cancel",
        "seq 3: cancel of receipt R2: receipt 'R2' is confirmed: cannot cancel",
    ])

    unknown = tillgate("retry-rejected", "--config", str(config), "--seq", "1", "--seq", "9")
    assert unknown.returncode == 1
    assert "no rejected entry with seq 1, 9" in unknown.stderr
    assert unknown.stdout == ""
    one = tillgate("retry-rejected", "--config", str(config), "--seq", "2")
    assert (one.returncode, one.stdout) == (
        0, "seq 2: cancel of receipt R1 waits for central again\n")
    status = json.loads(tillgate("status", "--config", str(config), "--json").stdout)
    assert (status["outbox"]["depth"], status["outbox"]["rejected"]) == (1, 1)
    rest = tillgate("retry-rejected", "--config", str(config))
    assert (rest.returncode, rest.stdout) == (
        0, "seq 3: cancel of receipt R2 waits for central again\n")
    again = tillgate("retry-rejected", "--config", str(config))
    assert (again.returncode, again.stdout) == (0, "no rejected entries\n")
    empty = tillgate("retry-rejected", "--config", str(config), "--list")
    assert (empty.returncode, empty.stdout) == (0, "no rejected entries\n")  # not silence
    status = json.loads(tillgate("status", "--config", str(config), "--json").stdout)
    assert (status["outbox"]["depth"], status["outbox"]["rejected"]) == (2, 0)


def test_dismiss_rejected_closes_the_entries_named_and_no_other(tmp_path: Path) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text('store = "S001"\ndata_dir = "data"\n')
    assert tillgate("dismiss-rejected", "--config", str(config)).returncode == 2  # no --seq
    assert tillgate("dismiss-rejected", "--config", str(config), "--seq", "1").returncode == 1
    (tmp_path / "data").mkdir()
    db = EdgeDatabase(tmp_path / "data" / "edge.db")
    outbox = Outbox(db, store="S001")
    sent = [outbox.append(f"R{i}", "cancel", pb.CancelRequest(receipt_id=f"R{i}"))
            for i in range(2)]
    outbox.record_acks(sent, [pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="rejected",
                                          message="no such receipt") for e in sent])
    db.close()

    closed = tillgate("dismiss-rejected", "--config", str(config), "--seq", "1", "--seq", "7")
    assert closed.returncode == 1
    assert closed.stdout.splitlines() == [
        "seq 1: cancel of receipt R0 closed, never to be sent (settled at central)"
    ]
    assert "no rejected entry with seq 7" in closed.stderr
    listed = tillgate("retry-rejected", "--config", str(config), "--list")
    assert listed.stdout.splitlines() == ["seq 2: cancel of receipt R1: no such receipt"]
    status = json.loads(tillgate("status", "--config", str(config), "--json").stdout)
    assert (status["outbox"]["depth"], status["outbox"]["rejected"]) == (0, 1)
    # A closed entry cannot be sent again by mistake.
    assert tillgate("retry-rejected", "--config", str(config), "--seq", "1").returncode == 1


def test_forget_central_unbinds_the_kept_entries(tmp_path: Path) -> None:
    config = tmp_path / "tillgate.toml"
    config.write_text('store = "S001"\ndata_dir = "data"\n')
    (tmp_path / "data").mkdir()
    db = EdgeDatabase(tmp_path / "data" / "edge.db")
    with db.transaction():
        db.set_meta("central", "5c7749da763344c459d1234569837e5f")
    Outbox(db, store="S001").append("R1", "cancel", pb.CancelRequest(receipt_id="R1"))
    db.close()
    before = json.loads(tillgate("status", "--config", str(config), "--json").stdout)
    assert before["cache"]["central"] == "5c7749da763344c459d1234569837e5f"
    unsure = tillgate("forget-central", "--config", str(config))
    assert unsure.returncode == 2
    assert "counted twice" in unsure.stderr
    assert json.loads(tillgate("status", "--config", str(config), "--json").stdout)["cache"][
        "central"] == "5c7749da763344c459d1234569837e5f"
    result = tillgate("forget-central", "--config", str(config), "--old-central-is-gone")
    assert result.returncode == 0
    assert result.stdout.startswith("1 kept entries will go to the central this store reaches next")
    after = json.loads(tillgate("status", "--config", str(config), "--json").stdout)
    assert (after["cache"]["central"], after["outbox"]["depth"]) == (None, 1)
