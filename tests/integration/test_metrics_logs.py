"""Operability end to end: the metrics endpoint moves with traffic; logs never show a card."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from pathlib import Path

from adapter.simulate import RegisterClient
from tests.integration.data import CARD, import_chain, oil_receipt
from tests.integration.harness import DaemonProcess, central_server, daemon_config, free_port

PHONE = "+79161234567"


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_move_and_logs_are_masked(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    metrics_port = free_port()
    with central_server(db, demo=False) as central:
        port = free_port()
        config = daemon_config(
            tmp_path,
            central_url=f"grpc://{central.address}",
            port=port,
            extra=f'[metrics]\naddress = "127.0.0.1:{metrics_port}"\n',
        )
        daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
        try:
            before = scrape(metrics_port)

            async def traffic() -> None:
                client = await RegisterClient.connect("127.0.0.1", port)
                await client.request("hello", {"lane": "07"})
                await client.request("identify", {"customer": {"phone": PHONE}})
                await client.request(
                    "identify", {"customer": {"card": "7700000000000"}}
                )  # not_found
                for i in range(3):
                    calc = await client.request("calculate", {"receipt": oil_receipt(f"R-met-{i}")})
                    assert calc["type"] == "calculate.result"
                await client.request("teleport")
                await client.close()

            asyncio.run(traffic())
            after = scrape(metrics_port)
            for _ in range(100):  # cache figures are refreshed a few times a second
                if after["tillgate_cache_version"] > 0 and after["tillgate_sync_seconds_count"]:
                    break
                time.sleep(0.05)
                after = scrape(metrics_port)
        finally:
            daemon.stop()

    calc_key = 'tillgate_requests_total{lane="07",type="calculate"}'
    assert before.get(calc_key, 0.0) == 0.0
    assert after[calc_key] == 3.0
    assert after['tillgate_errors_total{code="not_found",lane="07"}'] == 1.0
    assert after['tillgate_errors_total{code="unknown_type",lane="07"}'] == 1.0
    assert after['tillgate_request_seconds_count{lane="07",type="calculate"}'] == 3.0
    assert after["tillgate_online"] == 1.0
    assert after["tillgate_breaker_state"] == 0.0
    assert after["tillgate_cache_version"] > 0
    assert after["tillgate_sync_seconds_count"] >= 1  # every complete sync is timed
    assert after["tillgate_sync_seconds_sum"] > 0
    assert "tillgate_outbox_depth" in after

    log = daemon.output()
    assert "lane_hello" in log
    digits = re.sub(r"\D", "", PHONE)
    assert CARD not in log
    assert "7700000000000" not in log
    assert digits not in log
    assert PHONE not in log
