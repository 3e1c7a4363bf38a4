"""Lane metrics: latency counts from a request's arrival, and ``busy`` answers are errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from adapter.metrics import DaemonMetrics
from adapter.requests import Calculate
from tests.adapter.test_lanes import (
    HELLO,
    GatedRouter,
    PricingRouter,
    calculate,
    eight_waiting,
    lanes_server,
)
from tests.integration.data import oil_receipt

PRICING_S = 0.3


class SlowRouter(PricingRouter):
    """Takes PRICING_S for every calculation."""

    async def calculate(self, request_id: str, lane: str, req: Calculate) -> dict[str, Any]:
        await asyncio.sleep(PRICING_S)
        return await super().calculate(request_id, lane, req)


def _sample(metrics: DaemonMetrics, name: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_request_seconds_include_the_time_a_request_waited_behind_others(
    tmp_path: Path,
) -> None:
    metrics = DaemonMetrics()

    async def scenario() -> None:
        async with lanes_server(tmp_path, SlowRouter, metrics=metrics) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(json.dumps(HELLO).encode() + b"\n")
            await reader.readline()
            # three calculates sent at once: the third waits 0.6 s before its 0.3 s
            pipelined = [calculate(f"m{i}", oil_receipt(f"R-m{i}")) for i in range(3)]
            writer.write(b"".join(json.dumps(m).encode() + b"\n" for m in pipelined))
            for _ in range(3):
                await asyncio.wait_for(reader.readline(), 10)
            writer.close()

    asyncio.run(scenario())
    labels = {"lane": "01", "type": "calculate"}
    assert _sample(metrics, "tillgate_request_seconds_count", labels) == 3
    # 0.3 + 0.6 + 0.9 as the registers waited; 0.9 if timed from the worker taking each
    assert _sample(metrics, "tillgate_request_seconds_sum", labels) >= 6 * PRICING_S * 0.95
    slowest = {"lane": "01", "type": "calculate", "le": "0.5"}
    assert _sample(metrics, "tillgate_request_seconds_bucket", slowest) == 1


def test_a_busy_answer_is_counted_as_an_error(tmp_path: Path) -> None:
    metrics = DaemonMetrics()

    async def scenario() -> None:
        GatedRouter.gate = asyncio.Event()
        async with lanes_server(tmp_path, GatedRouter, metrics=metrics) as port:
            reader, writer = await eight_waiting(port, "b")
            writer.write(json.dumps(calculate("b9", oil_receipt("R-b9"))).encode() + b"\n")
            await writer.drain()
            busy = json.loads(await asyncio.wait_for(reader.readline(), 10))
            assert (busy["id"], busy["code"]) == ("b9", "busy")
            GatedRouter.gate.set()
            for _ in range(8):
                await asyncio.wait_for(reader.readline(), 10)
            writer.close()

    asyncio.run(scenario())
    assert _sample(metrics, "tillgate_errors_total", {"lane": "01", "code": "busy"}) == 1
    assert _sample(metrics, "tillgate_requests_total", {"lane": "01", "type": "calculate"}) == 9
