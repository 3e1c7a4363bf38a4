"""Shared set-up for the end-to-end benchmarks: real processes on loopback, nothing mocked.

Not a benchmark itself: ``roundtrip.py`` and ``failover.py`` import it (the bench folder is
put on ``sys.path`` by running a script from it).
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO_SKUS = [
    json.loads(line)["sku"]
    for line in (ROOT / "central" / "demo" / "catalog.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip()
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


@contextmanager
def central_process(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m central serve --demo`` on a free port."""
    port = free_port()
    log = (folder / "central.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "central", "serve", "--db", str(folder / "central.db"), "--demo",
         "--listen", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_port(port, process, "central")
        yield f"127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(15)
        log.close()


@contextmanager
def daemon_process(
    folder: Path, central: str, *, deadline_ms: int = 300, extra: str = ""
) -> Iterator[int]:
    """``tillgate run`` with one lines listener, pointed at ``central``; yields its port."""
    port = free_port()
    config = folder / "tillgate.toml"
    config.write_text(
        f'store = "S001"\ndata_dir = "data"\n[central]\nurl = "grpc://{central}"\n'
        f'deadline_ms = {deadline_ms}\n[[listener]]\naddress = "127.0.0.1:{port}"\n{extra}',
        encoding="utf-8",
    )
    log = (folder / "daemon.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tillgate", "run", "--config", str(config), "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_port(port, process, "tillgate")
        yield port
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(15)
        log.close()


def receipt(receipt_id: str, lines: int = 50) -> dict[str, Any]:
    """A ``lines``-line receipt over the demo catalog, for the demo gold customer."""
    items = []
    for n in range(1, lines + 1):
        sku = DEMO_SKUS[(n - 1) % len(DEMO_SKUS)]
        price = 5_000 + 137 * n
        qty = 1 + n % 3
        items.append(
            {"n": n, "sku": sku, "quantity": str(qty), "price": price, "amount": price * qty}
        )
    return {
        "id": receipt_id,
        "opened_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "customer": {"card": "7700001234567"},
        "lines": items,
    }


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    ordered = sorted(samples_s)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50 * 1000, p99 * 1000
