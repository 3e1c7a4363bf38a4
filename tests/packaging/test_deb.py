"""The .deb as built by ``packaging/build-deb.sh``, unpacked with ``dpkg-deb -x`` and run.

The package is built once for the module (about a minute with a warm pip cache; pip needs the
package index). How the unpacked tillgate is run:

* ``relocated venv``: ``<root>/opt/tillgate/bin/python -m tillgate`` — the shipped venv itself,
  whose ``python3`` is a symlink to ``/usr/bin/python3``. This is exactly what runs on a target,
  so it needs ``/usr/bin/python3`` of the package's minor version on this machine (Debian's);
  it is skipped, with that reason, where there is none.
* ``unpacked site-packages``: the current interpreter with ``-S`` (no site-packages of its own)
  and ``PYTHONPATH=<root>/opt/tillgate/lib/python3.X/site-packages``: the unpacked code and
  dependencies alone, on any build box of the same minor version.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tillgate._version import __version__

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "packaging" / "build-deb.sh"
EXAMPLE = REPO / "packaging" / "tillgate.toml.example"
PYVER = f"{sys.version_info[0]}.{sys.version_info[1]}"
NEXT_MINOR = f"{sys.version_info[0]}.{sys.version_info[1] + 1}"

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed (apt-get install dpkg)"
)


@dataclass(frozen=True)
class Unpacked:
    deb: Path
    root: Path
    control: Path

    @property
    def venv(self) -> Path:
        return self.root / "opt" / "tillgate"

    @property
    def site_packages(self) -> Path:
        return self.venv / "lib" / f"python{PYVER}" / "site-packages"


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Unpacked:
    base = tmp_path_factory.mktemp("deb")
    env = dict(os.environ)
    env["PYTHON"] = sys.executable
    env["TILLGATE_DEB_OUT"] = str(base / "out")
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        cwd=base,  # the script must not depend on the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, f"build-deb.sh failed:\n{result.stderr[-4000:]}"
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert deb.is_file(), result.stdout
    assert deb.parent == base / "out"
    root = base / "root"
    control = base / "control"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    return Unpacked(deb, root, control)


def control_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a systemd unit, every value of repeated keys kept."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_control_fields_and_conffiles(unpacked: Unpacked) -> None:
    assert control_field(unpacked.deb, "Package") == "tillgate"
    assert control_field(unpacked.deb, "Version") == f"{__version__}-1"
    depends = [d.strip() for d in control_field(unpacked.deb, "Depends").split(",")]
    # The venv's site-packages is lib/python3.X and its compiled wheels are cp3X: the target
    # needs Debian's python3 of the same minor version.
    assert f"python3 (>= {PYVER})" in depends
    assert f"python3 (<< {NEXT_MINOR})" in depends
    assert tuple(map(int, PYVER.split("."))) >= (3, 11)
    assert "adduser" in depends  # postinst creates the service user with it
    conffiles = (unpacked.control / "conffiles").read_text().split()
    assert "/etc/tillgate/tillgate.toml" in conffiles
    assert "/etc/tillgate/central.env" in conffiles
    for script in ("postinst", "prerm", "postrm"):
        assert os.access(unpacked.control / script, os.X_OK), script
    postinst = (unpacked.control / "postinst").read_text()
    assert "adduser --system" in postinst
    assert "dialout" in postinst


def test_shipped_config_is_the_documented_example(unpacked: Unpacked) -> None:
    shipped = unpacked.root / "etc" / "tillgate" / "tillgate.toml"
    assert shipped.read_bytes() == EXAMPLE.read_bytes()
    doc = unpacked.root / "usr" / "share" / "doc" / "tillgate"
    assert (doc / "tillgate.toml.example").read_bytes() == EXAMPLE.read_bytes()
    assert (doc / "operations.md").is_file()
    assert (doc / "tls.md").is_file()


def _referenced_docs(text: str, known: set[str]) -> set[str]:
    """Names of docs/ files a document refers to: markdown links and plain mentions."""
    return {name for name in re.findall(r"[\w-]+\.md\b", text) if name in known}


def test_every_document_the_installed_ones_refer_to_is_installed(unpacked: Unpacked) -> None:
    doc = unpacked.root / "usr" / "share" / "doc" / "tillgate"
    known = {path.name for path in (REPO / "docs").glob("*.md")}
    installed = {path.name for path in doc.glob("*.md")}
    # Where the units and the README send an operator first.
    assert {"operations.md", "tls.md"} <= installed
    missing = {
        f"{name} -> {target}"
        for name in installed
        for target in _referenced_docs((doc / name).read_text(encoding="utf-8"), known)
        if target not in installed
    }
    assert missing == set()
    assert {"field-guide.md", "protocol.md"} <= installed  # operations.md links them
    for name in installed:
        assert (doc / name).read_bytes() == (REPO / "docs" / name).read_bytes(), name


def test_packaged_maintainer_scripts_are_the_tested_ones(unpacked: Unpacked) -> None:
    """tests/packaging/test_maintainer_scripts.py runs packaging/scripts; these are they."""
    for script in ("postinst", "prerm", "postrm"):
        packaged = (unpacked.control / script).read_bytes()
        assert packaged == (REPO / "packaging" / "scripts" / f"{script}.sh").read_bytes(), script


def test_daemon_unit_is_notify_with_watchdog_and_sandbox(unpacked: Unpacked) -> None:
    unit = unit_settings(unpacked.root / "lib" / "systemd" / "system" / "tillgate.service")
    assert unit["Type"] == ["notify"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["User"] == ["tillgate"]
    assert unit["SupplementaryGroups"] == ["dialout"]
    assert unit["StateDirectory"] == ["tillgate"]
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ExecStart"][0].startswith(
        "/opt/tillgate/bin/tillgate run --config /etc/tillgate/tillgate.toml"
    )
    assert unit["WantedBy"] == ["multi-user.target"]


def test_central_unit(unpacked: Unpacked) -> None:
    unit = unit_settings(unpacked.root / "lib" / "systemd" / "system" / "tillgate-central.service")
    assert unit["Type"] == ["notify"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["EnvironmentFile"] == ["/etc/tillgate/central.env"]
    assert unit["ExecStart"][0].startswith("/opt/tillgate/bin/tillgate central serve --db ")
    assert unit["StateDirectory"] == ["tillgate-central"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["User"] == ["tillgate"]


def test_venv_points_at_the_targets_python_only(unpacked: Unpacked) -> None:
    venv = unpacked.venv
    assert os.readlink(venv / "bin" / "python3") == "/usr/bin/python3"
    assert os.readlink(venv / "bin" / "python") == "python3"
    assert os.readlink(unpacked.root / "usr" / "bin" / "tillgate") == "/opt/tillgate/bin/tillgate"
    cfg = dict(
        line.split(" = ", 1)
        for line in (venv / "pyvenv.cfg").read_text().splitlines()
        if " = " in line
    )
    assert cfg["home"] == "/usr/bin"
    assert cfg["include-system-site-packages"] == "false"
    shebang = (venv / "bin" / "tillgate").read_text().splitlines()[0]
    assert re.fullmatch(r"#!/opt/tillgate/bin/python[0-9.]*", shebang), shebang
    assert not list(venv.rglob("__pycache__")), "byte code is compiled by postinst, not shipped"
    # Nothing may still name the build machine: its interpreter or this checkout.
    build_paths = {str(REPO).encode(), sys.base_prefix.encode()} - {b"/usr"}
    offenders = [
        str(path.relative_to(unpacked.root))
        for path in venv.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and any(p in path.read_bytes() for p in build_paths)
    ]
    assert offenders == []


def _target_python_reason() -> str | None:
    target = Path("/usr/bin/python3")
    if not target.exists():
        return "no /usr/bin/python3 on this machine (the package's interpreter)"
    version = subprocess.run(
        [str(target), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != PYVER:
        return f"/usr/bin/python3 is {version}, the package was built for {PYVER}"
    return None


def _command(unpacked: Unpacked, how: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if how == "relocated venv":
        reason = _target_python_reason()
        if reason:
            pytest.skip(reason)
        return [str(unpacked.venv / "bin" / "python")], env
    env["PYTHONPATH"] = str(unpacked.site_packages)
    return [sys.executable, "-S"], env


@pytest.mark.parametrize("how", ["relocated venv", "unpacked site-packages"])
def test_unpacked_tillgate_runs(unpacked: Unpacked, how: str, tmp_path: Path) -> None:
    python, env = _command(unpacked, how)
    where = subprocess.run(
        [*python, "-c", "import grpc, tillgate; print(tillgate.__file__); print(grpc.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(unpacked.site_packages) for p in where), where

    version = subprocess.run(
        [*python, "-m", "tillgate", "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert version.stdout.strip() == f"tillgate {__version__}"

    config = unpacked.root / "etc" / "tillgate" / "tillgate.toml"
    check = subprocess.run(
        [*python, "-m", "tillgate", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "tillgate.toml: ok (store S001, 1 listener(s), 0 lane(s))"

    broken = tmp_path / "broken.toml"
    broken.write_text(config.read_text().replace("deadline_ms = 300", "deadline_ms = 5"))
    refused = subprocess.run(
        [*python, "-m", "tillgate", "check-config", "--config", str(broken)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert refused.returncode == 2
    assert "central.deadline_ms" in refused.stderr


def _notify_messages(sock: socket.socket, until: str, deadline_s: float) -> list[str]:
    """Datagrams on the notify socket until one equals ``until`` (or the deadline passes)."""
    messages: list[str] = []
    deadline = time.monotonic() + deadline_s
    while until not in messages and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            messages.extend(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            break
    return messages


def test_unpacked_daemon_speaks_sd_notify(unpacked: Unpacked) -> None:
    """What Type=notify and WatchdogSec rely on, from the packaged entry script: READY=1 once
    listening, WATCHDOG=1 at half the watchdog interval, STOPPING=1 on SIGTERM."""
    python, env = _command(unpacked, "relocated venv" if _target_python_reason() is None else "")
    short = Path(tempfile.mkdtemp(prefix="tg-notify-"))  # AF_UNIX paths are short
    try:
        config = short / "tillgate.toml"
        shipped = (unpacked.root / "etc" / "tillgate" / "tillgate.toml").read_text()
        config.write_text(
            shipped.replace('"/var/lib/tillgate', f'"{short}')
            .replace("127.0.0.1:7171", "127.0.0.1:0")
            .replace("127.0.0.1:9464", "127.0.0.1:0"),
            encoding="utf-8",
        )
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(short / "notify"))
            env["NOTIFY_SOCKET"] = str(short / "notify")
            env["WATCHDOG_USEC"] = "1000000"  # WatchdogSec=1: a ping every 0.5 s
            process = subprocess.Popen(
                [*python, str(unpacked.venv / "bin" / "tillgate"), "run", "--config", str(config)],
                env=env,
                cwd=short,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                started = _notify_messages(sock, "WATCHDOG=1", 60.0)
                process.send_signal(signal.SIGTERM)
                stopping = _notify_messages(sock, "STOPPING=1", 30.0)
                assert process.wait(30) == 0
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
                output = process.stdout.read().decode() if process.stdout else ""
        assert "READY=1" in started, output
        assert started.index("READY=1") < started.index("WATCHDOG=1"), started
        assert "STOPPING=1" in stopping, output
        assert (short / "edge.db").is_file()  # data went to data_dir, as configured
    finally:
        shutil.rmtree(short, ignore_errors=True)
