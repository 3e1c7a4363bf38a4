"""Administration commands work on an existing database only.

``serve`` and ``import`` create a database; every other ``central`` command reads or changes
one, and a mistyped ``--db`` must be refused, not answered from a fresh empty database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from central import cli
from central.demo import DEMO_FILES

#: every administration command, as typed after ``--db PATH``
ADMIN_COMMANDS = {
    "receipts": ["receipts"],
    "customer": ["customer", "C2"],
    "adjust": ["adjust", "C2", "100", "--reason", "goodwill"],
    "journal": ["journal"],
    "statuses recompute": ["statuses", "recompute"],
    "statuses set": ["statuses", "set", "C2", "tier", "gold"],
    "favorites refresh": ["favorites", "refresh"],
    "settings": ["settings"],
    "settings set": ["settings", "points.activation_days", "3"],
}


def _argv(command: str, db: Path) -> list[str]:
    first, *rest = ADMIN_COMMANDS[command]
    if first in ("statuses", "favorites"):
        return [first, rest[0], "--db", str(db), *rest[1:]]
    return [first, "--db", str(db), *rest]


@pytest.mark.parametrize("command", list(ADMIN_COMMANDS))
def test_admin_command_refuses_missing_database(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "centrall.db"
    code = cli.main(_argv(command, typo))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"error: --db {typo}: no such database (only central import and central serve create one)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", list(ADMIN_COMMANDS))
def test_admin_command_works_on_existing_database(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "central.db"
    assert cli.main(["import", "--db", str(db), *map(str, DEMO_FILES)]) == 0
    capsys.readouterr()
    assert cli.main(_argv(command, db)) == 0, capsys.readouterr().err


def test_import_still_creates_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "new" / "central.db"
    db.parent.mkdir()
    assert cli.main(["import", "--db", str(db), *map(str, DEMO_FILES)]) == 0
    assert "imported 21 catalog" in capsys.readouterr().out
    assert db.is_file()


def test_tillgate_central_receipts_refuses_typo(tmp_path: Path) -> None:
    """The field test's command line, through the ``tillgate`` entry point."""
    typo = tmp_path / "typo.db"
    result = subprocess.run(
        [sys.executable, "-m", "tillgate", "central", "receipts", "--db", str(typo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"--db {typo}: no such database" in result.stderr
    assert result.stdout == ""
    assert not typo.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be the wrong user for a database")
@pytest.mark.parametrize("command", [["import", str(DEMO_FILES[0])], ["receipts"]])
def test_root_is_sent_to_the_owner_of_the_database_folder(
    tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "lib"
    folder.mkdir()
    db = folder / "central.db"
    cli.main(["import", "--db", str(db), *map(str, DEMO_FILES)])  # the owner made it
    os.chown(folder, 65534, 65534)
    before = sorted(path.name for path in folder.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "tillgate", "central", command[0], "--db", str(db), *command[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"--db {db}: its folder belongs to " in result.stderr
    assert "sudo -u " in result.stderr
    assert sorted(path.name for path in folder.iterdir()) == before  # no root-owned -wal/-shm
