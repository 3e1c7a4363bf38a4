"""What the daemon checks before it opens anything: its data files and its data directory's lock.

An installer who runs ``sudo tillgate sync`` (or ``central import``) before the service's first
start leaves root-owned SQLite files that the ``tillgate`` user can read but not write; SQLite
would only say "attempt to write a readonly database" deep inside a worker. A second ``tillgate
run`` on the same configuration would share the outbox with the first and take over its trace
socket before failing on the port. Both are refused here, at start, naming the file.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import pwd
from pathlib import Path

from adapter.config import Config
from tillgate.errors import StartupError

__all__ = ["LOCK_NAME", "DataDirLock", "check_data_files", "data_file_exists"]

LOCK_NAME = "tillgate.lock"
#: the files SQLite writes beside a database
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.geteuid()}"


def _owner(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def data_file_exists(key: str, path: Path) -> bool:
    """Whether ``path`` exists; a folder on the way this user cannot enter is a StartupError
    naming the file (``Path.exists`` would raise PermissionError)."""
    try:
        return path.exists()
    except OSError as exc:
        raise StartupError(
            f"{key} {path}: cannot be reached by {_user()}: {exc.strerror or exc}"
        ) from exc


def _check_writable(key: str, path: Path) -> None:
    for candidate in (path, *(path.with_name(path.name + side) for side in _SIDE_FILES)):
        if data_file_exists(key, candidate) and not os.access(candidate, os.R_OK | os.W_OK):
            raise StartupError(
                f"{key} {candidate}: cannot be written by {_user()}; if a command run as root "
                "created it, give it to the daemon's user (chown tillgate: FILE)"
            )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise StartupError(f"{key} {path}: cannot create its folder: {reason}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StartupError(
            f"{key} {path}: its folder {folder} cannot be written by {_user()} "
            "(SQLite keeps its journal beside the database)"
        )


def check_data_files(config: Config, *, central: bool) -> None:
    """Every SQLite file the daemon (or ``tillgate sync``) writes can be written; ``central``:
    also the embedded central's database."""
    data_dir = config.data_dir
    if (
        os.geteuid() == 0
        and data_file_exists("data_dir", data_dir)
        and data_dir.is_dir()
        and data_dir.stat().st_uid != 0
    ):
        owner = _owner(data_dir)
        raise StartupError(
            f"data_dir {data_dir} belongs to {owner}: run this as that user "
            f"(sudo -u {owner} tillgate ...), so that the files it writes stay writable by the "
            "service"
        )
    files = [("cache.db", config.cache.db), ("data_dir", config.journal_db)]
    if central and config.central.embedded:
        files.append(("central.db", config.central.db))
    for key, path in files:
        _check_writable(key, path)


class DataDirLock:
    """An exclusive lock on ``data_dir``: one daemon per outbox. Released by :meth:`release`
    or when the process ends, however it ends (a SIGKILL leaves no stale lock)."""

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / LOCK_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StartupError(f"data_dir {data_dir}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(self._fd)
            raise StartupError(
                f"data_dir {data_dir}: another tillgate is running with it (pid {holder}); "
                "stop it first, or give this one its own data_dir"
            ) from exc
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode("ascii"), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
