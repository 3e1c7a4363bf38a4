"""The maintainer scripts, run for real against a throwaway root as ``dpkg --root`` would.

dpkg runs maintainer scripts with ``DPKG_ROOT`` set to its ``--root``; the scripts take every
path under it and touch nothing running then, so these tests never change this machine.
Units are enabled the way docs/operations.md tells (``systemctl enable``, here with
``--root``), or by hand where there is no ``systemctl``. test_deb.py checks that these are
the scripts the package ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "packaging" / "scripts"
UNITS_SOURCE = REPO / "packaging" / "systemd"
UNITS = ("tillgate.service", "tillgate-central.service")
#: the POSIX shell the scripts run under on Debian (/bin/sh is dash)
SHELL = shutil.which("dash") or "/bin/sh"
#: what the scripts need besides the shell, for a PATH without systemctl
TOOLS = ("find", "rm", "rmdir")


def _make_root(tmp_path: Path) -> Path:
    """What dpkg leaves before prerm runs: unit files, the venv with byte code, config dirs."""
    root = tmp_path / "root"
    units = root / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(UNITS_SOURCE / unit, units / unit)
    cache = root / "opt" / "tillgate" / "lib" / "python3" / "site-packages" / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "module.cpython.pyc").write_bytes(b"\0")
    (root / "etc" / "tillgate" / "tls").mkdir(parents=True)
    (root / "var" / "lib" / "tillgate").mkdir(parents=True)
    (root / "var" / "lib" / "tillgate" / "edge.db").write_bytes(b"data")
    return root


def _enable_by_hand(root: Path, target: str = "multi-user.target") -> None:
    wants = root / "etc" / "systemd" / "system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in UNITS:
        (wants / unit).symlink_to(f"/lib/systemd/system/{unit}")


def _enable(root: Path) -> None:
    if shutil.which("systemctl") is None:
        _enable_by_hand(root)
        return
    subprocess.run(
        ["systemctl", f"--root={root}", "enable", *UNITS], capture_output=True, check=True
    )


def _links(root: Path) -> list[str]:
    """Every symlink under <root>/etc/systemd/system, relative to it."""
    system = root / "etc" / "systemd" / "system"
    if not system.exists():
        return []
    return sorted(str(p.relative_to(system)) for p in system.rglob("*") if p.is_symlink())


def _path_without_systemctl(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def _run(script: str, argument: str, root: Path, path: str | None = None) -> None:
    env = {"DPKG_ROOT": str(root), "PATH": path or os.environ.get("PATH", "/usr/bin:/bin")}
    result = subprocess.run(
        [SHELL, str(SCRIPTS / f"{script}.sh"), argument],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{script} {argument}: {result.stderr}"


def _dpkg_removes_files(root: Path) -> None:
    for unit in UNITS:
        (root / "lib" / "systemd" / "system" / unit).unlink()


ENABLED = [f"multi-user.target.wants/{unit}" for unit in sorted(UNITS)]


def test_remove_disables_units_with_systemctl(tmp_path: Path) -> None:
    if shutil.which("systemctl") is None:
        pytest.skip("no systemctl here (the sweep without it is tested below)")
    root = _make_root(tmp_path)
    _enable(root)
    assert _links(root) == ENABLED
    _run("prerm", "remove", root)
    assert _links(root) == []  # disabled while the unit files still exist
    assert not list((root / "opt").rglob("__pycache__"))
    _dpkg_removes_files(root)
    _run("postrm", "remove", root)
    assert _links(root) == []


def test_remove_without_systemctl_leaves_no_dangling_link(tmp_path: Path) -> None:
    """A container: no systemd, no systemctl; links made by hand go all the same."""
    root = _make_root(tmp_path)
    _enable_by_hand(root)
    _enable_by_hand(root, "graphical.target")
    path = _path_without_systemctl(tmp_path)
    _run("prerm", "remove", root, path)
    assert not list((root / "opt").rglob("__pycache__"))
    _dpkg_removes_files(root)
    _run("postrm", "remove", root, path)
    assert _links(root) == []


def test_upgrade_keeps_units_enabled(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    _enable(root)
    _run("prerm", "upgrade", root)
    _run("postrm", "upgrade", root)
    assert _links(root) == ENABLED
    assert not list((root / "opt").rglob("__pycache__"))  # postinst compiles it again


def test_purge_sweeps_links_and_empty_config_but_keeps_data(tmp_path: Path) -> None:
    """``dpkg --purge`` of a package removed earlier: the unit files are long gone."""
    root = _make_root(tmp_path)
    _enable_by_hand(root)
    other = root / "etc" / "systemd" / "system" / "multi-user.target.wants" / "other.service"
    other.symlink_to("/lib/systemd/system/other.service")
    _dpkg_removes_files(root)
    _run("postrm", "purge", root, _path_without_systemctl(tmp_path))
    assert _links(root) == ["multi-user.target.wants/other.service"]
    assert not (root / "etc" / "tillgate").exists()
    assert (root / "var" / "lib" / "tillgate" / "edge.db").read_bytes() == b"data"


def test_purge_keeps_config_the_administrator_left(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    key = root / "etc" / "tillgate" / "tls" / "store.key"
    key.write_text("kept\n", encoding="ascii")
    _dpkg_removes_files(root)
    _run("postrm", "purge", root)
    assert key.read_text(encoding="ascii") == "kept\n"


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_scripts_are_posix_sh_that_stop_on_errors(script: str) -> None:
    text = (SCRIPTS / f"{script}.sh").read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -e\n" in text
    checked = subprocess.run(
        [SHELL, "-n", str(SCRIPTS / f"{script}.sh")], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
