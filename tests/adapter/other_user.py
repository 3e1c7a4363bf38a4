"""Running tillgate as a user a folder shuts out: ``nobody`` when the tests run as root (root
enters any folder), else the test user itself with the folder's permissions taken away."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = 65534


def tillgate(*args: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m tillgate ARGS`` (after ``prefix``, such as :func:`as_other_user`)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tillgate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd="/",
    )


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to its user), holding a
    ``locked`` folder for :func:`lock`."""
    with tempfile.TemporaryDirectory(prefix="tillgate-perm-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        locked = folder / "locked"
        locked.mkdir()
        try:
            yield folder
        finally:
            locked.chmod(0o755)  # else the clean-up cannot enter it


def lock(folder: Path) -> None:
    """Shut :func:`as_other_user` out of ``folder``."""
    folder.chmod(0o700 if os.geteuid() == 0 else 0o000)


def as_other_user() -> list[str]:
    """The command prefix that runs as a user :func:`lock` shuts out."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv to become another user")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
