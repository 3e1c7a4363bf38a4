"""``ping`` tells a register the daemon's mode as it is, without waiting for a failed call."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from adapter.simulate import RegisterClient
from tests.integration.data import import_chain, oil_receipt
from tests.integration.harness import CentralProcess, DaemonProcess, daemon_config, free_port

#: the liveness check runs every 2 s; a few seconds more for a loaded CI machine
WITHIN_S = 15.0


async def ping_until(client: RegisterClient, mode: str) -> float:
    """Seconds until ``ping`` answers ``mode`` (a ping a second, as a register would)."""
    started = time.monotonic()
    while time.monotonic() - started < WITHIN_S:
        answer = await client.request("ping")
        if answer["mode"] == mode:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"ping did not say {mode} within {WITHIN_S} s")


def test_ping_follows_central_going_and_coming_back(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    central = CentralProcess(db, free_port(), tmp_path / "central.log").start()
    port = free_port()
    config = daemon_config(
        tmp_path, central_url=f"grpc://{central.address}", port=port, deadline_ms=300
    )
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log").start()
    try:

        async def register() -> None:
            client = await RegisterClient.connect("127.0.0.1", port)
            await client.request("hello", {"lane": "03"})
            await ping_until(client, "online")
            central.kill()
            await ping_until(client, "offline")  # no request failed: only pings were sent
            # A calculate answered offline, then central is back: ping says so by itself.
            calc = await client.request("calculate", {"receipt": oil_receipt("R-ping-1")})
            assert calc["mode"] == "offline"
            central.start()
            await ping_until(client, "online")
            calc = await client.request("calculate", {"receipt": oil_receipt("R-ping-2")})
            assert calc["mode"] == "online"
            await client.close()

        asyncio.run(register())
    finally:
        daemon.stop()
        central.stop()
