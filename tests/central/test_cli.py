"""The central command line, called in-process through central.cli (and once as python -m)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import grpc
import pytest

from central import cli
from central.clock import NOW_ENV
from central.demo import DEMO_FILES
from central.server import start_server
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.helpers import sell
from tillgate.errors import ConfigError


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _demo_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    db = tmp_path / "c.db"
    code, out, _ = run(capsys, "import", "--db", str(db), *map(str, DEMO_FILES))
    assert code == 0
    assert "imported 21 catalog" in out
    return db


def test_add_commands_wires_central_under_tillgate() -> None:
    parser = argparse.ArgumentParser(prog="tillgate")
    cli.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["central", "adjust", "--db", "x.db", "C1", "-100", "--reason", "r"])
    assert (args.customer_id, args.points, args.reason) == ("C1", -100, "r")
    assert callable(args.handler)


def test_import_error_names_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _demo_db(tmp_path, capsys)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "C7", "name": "x", "cards": "not-a-list"}\n', encoding="utf-8")
    code, _, err = run(capsys, "import", "--db", str(db), str(bad))
    assert code == 1
    assert f"{bad}:1: customer \"C7\": cards: must be a list of strings" in err
    assert "Traceback" not in err


def test_adjust_and_customer_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _demo_db(tmp_path, capsys)
    code, out, _ = run(capsys, "adjust", "--db", str(db), "C2", "-2500", "--reason", "goodwill")
    assert code == 0
    assert "balance 10000" in out
    code, out, _ = run(capsys, "customer", "--db", str(db), "C2", "--json")
    view = json.loads(out)
    assert view["balance"] == 10000 == sum(row["points"] for row in view["ledger"])
    assert [(r["kind"], r["points"]) for r in view["ledger"]] == [
        ("adjustment", 12500), ("adjustment", -2500)]
    assert view["statuses"] == {"tier": "silver"}
    code, _, err = run(capsys, "adjust", "--db", str(db), "C404", "5", "--reason", "x")
    assert code == 1
    assert err.strip() == 'error: customer "C404": unknown customer'


def test_receipts_view_after_sales(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.db"
    server = start_server(db, demo=True)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ProcessingStub(channel)
            sell(stub, "CLI1")
    finally:
        server.stop(1.0)
    capsys.readouterr()  # the server's own log lines
    code, out, _ = run(capsys, "receipts", "--db", str(db), "--json")
    assert code == 0
    assert json.loads(out) == [{
        "store": "S001", "receipt_id": "CLI1", "state": "confirmed", "mode": "online",
        "refunded": 0, "due": 31683, "customer_id": "C1"}]
    code, out, _ = run(capsys, "receipts", "--db", str(db))
    assert "CLI1" in out
    assert "confirmed" in out


def test_status_rule_recompute_and_manual_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "c.db"
    server = start_server(db, demo=True)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ProcessingStub(channel)
            sell(stub, "ST1", card="7700002345678", oil=4)  # C2 spends 63 966 + 4 500
    finally:
        server.stop(1.0)
    rule = tmp_path / "rules.jsonl"
    rule.write_text(json.dumps({
        "id": "tier-by-spend", "system": "tier", "period_days": 30,
        "levels": [{"value": "silver", "min_total": 0}, {"value": "gold", "min_total": 50000}],
    }) + "\n", encoding="utf-8")
    assert run(capsys, "import", "--db", str(db), str(rule))[0] == 0
    code, out, _ = run(capsys, "statuses", "recompute", "--db", str(db))
    assert code == 0
    assert "C2: tier silver -> gold (rule:tier-by-spend)" in out
    assert "C3: tier bronze -> silver" in out
    assert "C1: tier gold -> silver" in out  # the rule rules: no purchases in the period
    code, out, _ = run(capsys, "statuses", "set", "--db", str(db), "C3", "tier", "platinum")
    assert code == 0
    view = json.loads(run(capsys, "customer", "--db", str(db), "C3", "--json")[1])
    assert view["statuses"] == {"tier": "platinum"}
    assert [(h["value"], h["source"]) for h in view["status_history"]] == [
        ("bronze", "import"), ("silver", "rule:tier-by-spend"), ("platinum", "manual")]


def test_favorites_refresh_fills_empty_slots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "c.db"
    server = start_server(db, demo=True)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ProcessingStub(channel)
            sell(stub, "FV1", card="7700002345678", oil=3, bread=1)
    finally:
        server.stop(1.0)
    sets = tmp_path / "sets.jsonl"
    sets.write_text(json.dumps({"id": "fav-dec", "slots": 1, "on": {"groups": ["oils"]}}) + "\n",
                    encoding="utf-8")
    assert run(capsys, "import", "--db", str(db), str(sets))[0] == 0
    monkeypatch.setenv(NOW_ENV, "2026-12-05T10:20:00+03:00")
    code, out, _ = run(capsys, "favorites", "refresh", "--db", str(db), "--fill")
    assert code == 0
    assert "candidates from 2026-11" in out
    assert "1 slot(s) filled" in out
    view = json.loads(run(capsys, "customer", "--db", str(db), "C2", "--json")[1])
    assert view["favorites"] == {"fav-dec": ["4600001"]}


def test_settings_switch_lifetime_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _demo_db(tmp_path, capsys)
    assert run(capsys, "settings", "--db", str(db), "points.validity_days", "365")[0] == 0
    code, out, _ = run(capsys, "settings", "--db", str(db))
    assert "points.validity_days = 365" in out
    code, _, err = run(capsys, "settings", "--db", str(db), "points.bogus", "1")
    assert code == 2
    assert "unknown setting" in err


def test_settings_show_the_central_id_and_refuse_to_change_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _demo_db(tmp_path, capsys)
    code, out, _ = run(capsys, "settings", "--db", str(db))
    [line] = [line for line in out.splitlines() if line.startswith("central.id = ")]
    central_id = line.removeprefix("central.id = ")
    assert len(central_id) == 32
    assert int(central_id, 16) >= 0
    assert run(capsys, "settings", "--db", str(db), "central.id")[1] == f"{line}\n"
    code, _, err = run(capsys, "settings", "--db", str(db), "central.id", "0" * 32)
    assert code == 2
    assert "cannot be set" in err
    assert run(capsys, "settings", "--db", str(db), "central.id")[1] == f"{line}\n"


def test_import_refuses_what_would_break_pricing_and_goes_on_with_the_next_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _demo_db(tmp_path, capsys)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        # a points value beyond int64 made every later calculation fail at the gRPC boundary
        '{"id": "huge", "name": "x", "reward": {"type": "points_fixed", '
        '"points": 1000000000000000000000000000000}}\n'
        # a misspelt selector key read as "every line"
        '{"id": "typo", "name": "50% on oils", "reward": {"type": "percent_off", '
        '"percent": "50", "on": {"grups": ["oils"]}}}\n'
        # a list as the type was a TypeError with a traceback
        '{"id": "listed", "name": "x", "reward": {"type": []}}\n'
        '{"id": "deep", "name": "x", "reward": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
        '{"id": "long", "name": "x", "priority": ' + "9" * 5000 + "}\n"
        '{"id": "surrogate", "name": "\\ud800", "reward": {"type": "none"}}\n',
        encoding="utf-8",
    )
    good = tmp_path / "good.jsonl"
    good.write_text('{"sku": "4609999", "name": "ok"}\n', encoding="utf-8")
    code, out, err = run(capsys, "import", "--db", str(db), str(bad), str(good))
    assert code == 1
    assert "Traceback" not in err
    assert f'{bad}:1: promotion "huge": reward.points: must be between' in err
    assert f'{bad}:2: promotion "typo": reward.on.grups: unknown key' in err
    assert f'{bad}:3: promotion "listed": reward.type: must be one of' in err
    assert f"{bad}:4: not valid here: JSON nested too deeply" in err
    assert f"{bad}:5: not valid here: Exceeds the limit" in err
    assert f"{bad}:6: holds '\\ud800', a lone surrogate" in err
    assert f"{good}: imported 1 catalog" in out
    view = run(capsys, "customer", "--db", str(db), "C1", "--json")[1]
    assert json.loads(view)["id"] == "C1"


def test_import_refuses_a_document_twice_in_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _demo_db(tmp_path, capsys)
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"sku": "A1", "name": "a"}\n{"sku": "A1", "name": "other"}\n',
                     encoding="utf-8")
    code, _, err = run(capsys, "import", "--db", str(db), str(twice))
    assert code == 1
    assert (f"{twice}:2: catalog 'A1' again (first on line 1): a file may hold each "
            "document once") in err


def test_admin_values_out_of_range_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _demo_db(tmp_path, capsys)
    for argv, said in [
        (("adjust", "--db", str(db), "C1", "1" + "0" * 30, "--reason", "x"),
         "must be between -1000000000000 and 1000000000000"),
        (("favorites", "refresh", "--db", str(db), "--month", "2026-13"), "must be a month"),
        (("statuses", "set", "--db", str(db), "C1", "", "gold"), "must not be empty"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            run(capsys, *argv)
        assert stopped.value.code == 2
        assert said in capsys.readouterr().err
    for value, said in [("99999999999", "must be at most 36500 days"),
                        ("²", "must be a whole number of days")]:
        code, _, err = run(capsys, "settings", "--db", str(db), "sync.horizon_days", value)
        assert code == 2
        assert said in err
    code, out, _ = run(capsys, "settings", "--db", str(db))
    assert "sync.horizon_days" not in out
    assert json.loads(run(capsys, "customer", "--db", str(db), "C1", "--json")[1])[
        "balance"] == 340000


def test_serve_refuses_a_bad_worker_count_or_grace_naming_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    for argv, said in [
        (("--workers", "0"), "argument --workers: must be a whole number of threads 1..1024"),
        (("--workers", "-3"), "argument --workers: must be a whole number"),
        (("--workers", "many"), "argument --workers: must be a whole number"),
        (("--grace", "nan"), "argument --grace: must be seconds 0..3600"),
        (("--grace", "-1"), "argument --grace: must be seconds 0..3600"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            run(capsys, "serve", "--db", str(db), "--listen", "127.0.0.1:0", *argv)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert said in err
        assert "Traceback" not in err
    assert not db.exists()  # refused before the database is opened
    with pytest.raises(ConfigError, match="workers: must be at least 1, got 0"):
        start_server(db, workers=0)
    assert not db.exists()
