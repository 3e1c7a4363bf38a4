"""The ``tillgate`` command line: a misspelt option is refused by the (sub)command it was
given to, with that command's usage, as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("argv", "refused_by", "shown"),
    [
        (["probe", "printer", "tcp://127.0.0.1:9", "--widht", "42"], "tillgate probe printer",
         "--widht 42"),
        (["sniff", "01", "--fulll"], "tillgate sniff", "--fulll"),
        (["central", "serve", "--db", "x.db", "--bogus"], "tillgate central serve", "--bogus"),
        # Given to an outer command, refused by that one (not by the command named after it).
        (["probe", "--widht", "printer", "tcp://127.0.0.1:9"], "tillgate probe", "--widht"),
        (["--bogus", "sniff", "01"], "tillgate", "--bogus"),
    ],
)
def test_an_unknown_option_is_refused_by_the_command_it_was_given_to(
    argv: list[str], refused_by: str, shown: str
) -> None:
    done = subprocess.run([sys.executable, "-m", "tillgate", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"usage: {refused_by} ")
    assert done.stderr.endswith(f"\n{refused_by}: error: unrecognized arguments: {shown}\n")
