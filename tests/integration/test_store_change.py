"""Editing ``store`` while offline receipts wait would lose them (central takes a store's entries
from that store only): the daemon refuses until they are uploaded, then resyncs for the new one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from adapter.simulate import RegisterClient
from offline.status import read_status
from tests.integration.data import import_chain, oil_receipt
from tests.integration.harness import (
    CentralProcess,
    DaemonProcess,
    central_json,
    daemon_config,
    free_port,
    wait_until,
)
from tests.integration.test_offline import EDGE_SETTINGS, confirm_body, synced


def test_a_store_edited_with_receipts_waiting_is_refused_until_they_are_uploaded(
    tmp_path: Path,
) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    central = CentralProcess(db, free_port(), tmp_path / "central.log").start()
    port = free_port()
    config = daemon_config(
        tmp_path,
        central_url=f"grpc://{central.address}",
        port=port,
        deadline_ms=300,
        extra=EDGE_SETTINGS,
    )
    edge_db = tmp_path / "data" / "edge.db"
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:
        wait_until(lambda: synced(edge_db), what="first sync")
        central.kill()

        async def sell_offline() -> None:
            client = await RegisterClient.connect("127.0.0.1", port)
            await client.request("hello", {"lane": "01"})
            calc = await client.request("calculate", {"receipt": oil_receipt("R-store-1")})
            assert calc["mode"] == "offline"
            done = await client.request("confirm", confirm_body("R-store-1", calc["due"]))
            assert done["type"] == "confirm.result", done
            await client.close()

        asyncio.run(sell_offline())
    finally:
        assert daemon.stop() == 0
    waiting = read_status(edge_db)["outbox"]["depth"]
    assert waiting >= 1

    edited = tmp_path / "edited.toml"
    edited.write_text(
        config.read_text().replace('store = "S001"', 'store = "S002"'), encoding="utf-8"
    )
    for command in ("run", "sync"):
        refused = subprocess.run(
            [sys.executable, "-m", "tillgate", command, "--config", str(edited)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert refused.returncode == 1, command
        assert "Traceback" not in refused.stderr
        assert f"holds {waiting} entries of store 'S001' not yet uploaded" in refused.stderr
        assert "run with store = 'S001'" in refused.stderr
    assert read_status(edge_db)["outbox"]["depth"] == waiting  # untouched

    central.start()
    daemon = DaemonProcess(config, port, tmp_path / "daemon-2.log").start()
    try:
        wait_until(lambda: read_status(edge_db)["outbox"]["depth"] == 0, what="outbox drained")
    finally:
        assert daemon.stop() == 0
    receipts = central_json(db, "receipts")
    assert [r["receipt_id"] for r in receipts if r["store"] == "S001"].count("R-store-1") == 1

    # nothing waits now: the new store is taken, and its cache is pulled again from scratch
    daemon = DaemonProcess(edited, port, tmp_path / "daemon-3.log").start()
    try:
        wait_until(lambda: synced(edge_db), what="sync for the new store")
    finally:
        assert daemon.stop() == 0
        central.stop()
    log = (tmp_path / "daemon-3.log").read_text()
    assert '"store_changed"' in log
    assert '"snapshot": true' in log or '"snapshot":true' in log
