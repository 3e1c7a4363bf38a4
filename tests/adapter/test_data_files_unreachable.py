"""A data file behind a folder this user cannot enter: ``status``, ``run``, ``sync`` and
``retry-rejected`` say so in one line naming the file and exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adapter.other_user import as_other_user, lock, shared_dir, tillgate


@pytest.mark.parametrize("command", ["status", "run", "sync", "retry-rejected"])
def test_an_edge_database_behind_a_closed_folder_is_one_line(command: str) -> None:
    with shared_dir() as folder:
        edge_database_behind_a_closed_folder(folder, command)


def edge_database_behind_a_closed_folder(folder: Path, command: str) -> None:
    data = folder / "data"
    data.mkdir()
    data.chmod(0o777)
    lock(folder / "locked")
    config = folder / "tillgate.toml"
    config.write_text('data_dir = "data"\n[cache]\ndb = "locked/edge.db"\n')
    config.chmod(0o644)
    result = tillgate(command, "--config", str(config), prefix=as_other_user())
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"cache.db {folder}/locked/edge.db: cannot be reached by " in lines[-1]
    assert lines[-1].endswith(": Permission denied")
