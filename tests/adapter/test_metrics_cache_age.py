"""``tillgate_cache_age_seconds`` of a store that never synced is +Inf, not 0: the documented
alert "cache age above a few sync intervals" must fire for the worst case too."""

from __future__ import annotations

import math
import time
import urllib.request
from pathlib import Path

from tests.integration.data import import_chain
from tests.integration.harness import DaemonProcess, central_server, daemon_config, free_port

METRIC = "tillgate_cache_age_seconds"


def cache_age_line(port: int) -> str:
    """The metric's sample line once the daemon has published its figures."""
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text: str = response.read().decode()
        line = next(line for line in text.splitlines() if line.startswith(f"{METRIC} "))
        # Before the daemon's first figures the gauge reads 0.0: wait for a real reading.
        if line != f"{METRIC} 0.0" or time.monotonic() > deadline:
            return line
        time.sleep(0.05)


def run_and_scrape(tmp_path: Path, central_url: str, *, wait_for_sync: bool) -> str:
    metrics_port, port = free_port(), free_port()
    config = daemon_config(
        tmp_path,
        central_url=central_url,
        port=port,
        extra=f'[metrics]\naddress = "127.0.0.1:{metrics_port}"\n',
    )
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        line = cache_age_line(metrics_port)
        deadline = time.monotonic() + 20
        while wait_for_sync and line == f"{METRIC} +Inf" and time.monotonic() < deadline:
            time.sleep(0.1)
            line = cache_age_line(metrics_port)
        return line
    finally:
        daemon.stop()


def test_a_store_that_never_synced_reports_an_infinite_cache_age(tmp_path: Path) -> None:
    nobody_listens = f"grpc://127.0.0.1:{free_port()}"
    line = run_and_scrape(tmp_path, nobody_listens, wait_for_sync=False)
    assert line == f"{METRIC} +Inf"


def test_a_synced_store_reports_seconds_since_the_sync(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    with central_server(db, demo=False) as central:
        line = run_and_scrape(tmp_path, f"grpc://{central.address}", wait_for_sync=True)
    age = float(line.removeprefix(f"{METRIC} "))
    assert math.isfinite(age)
    assert 0.0 <= age < 30.0
