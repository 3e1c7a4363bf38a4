"""Round trip of a 50-line calculate: register → TCP → tillgate → gRPC → central and back.

Usage::

    .venv/bin/python bench/roundtrip.py           # 2 000 calls per configuration
    .venv/bin/python bench/roundtrip.py --smoke   # a seconds-long run

Everything is real and on loopback: central is a ``python -m central serve --demo`` process,
tillgate a ``tillgate run`` process, registers are asyncio TCP clients speaking ``lines``. In
the same run, the same 50-line receipt is sent straight to central's ``Calculate`` over gRPC,
and a bare gRPC unary call (the health check) is timed, so the figures say what tillgate adds
over gRPC and over central's own work. Latencies at 1 lane and at 20 concurrent lanes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc.aio
from _harness import central_process, daemon_process, percentiles, receipt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapter.requests import parse_receipt
from protos import convert
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc


async def lane(port: int, name: str, calls: int, samples: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=8 * 1024 * 1024)
    writer.write(
        json.dumps({"v": 1, "type": "hello", "id": f"h-{name}", "lane": name}).encode() + b"\n"
    )
    await writer.drain()
    await reader.readline()
    for i in range(calls):
        rid = f"RT-{name}-{i}-{time.monotonic_ns()}"
        line = (
            json.dumps({"v": 1, "type": "calculate", "id": rid, "receipt": receipt(rid)}).encode()
            + b"\n"
        )
        started = time.perf_counter()
        writer.write(line)
        await writer.drain()
        answer = await reader.readline()
        samples.append(time.perf_counter() - started)
        if b'"calculate.result"' not in answer:
            raise SystemExit(f"unexpected answer: {answer[:300]!r}")
    writer.close()


async def through_tillgate(port: int, lanes: int, calls: int) -> list[float]:
    samples: list[float] = []
    await asyncio.gather(
        *(lane(port, f"L{i:02d}-{time.monotonic_ns()}", calls, samples) for i in range(lanes))
    )
    return samples


async def direct(central: str, lanes: int, calls: int) -> tuple[list[float], list[float]]:
    channel = grpc.aio.insecure_channel(central)
    stub = pb_grpc.ProcessingStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    calc_samples: list[float] = []
    bare_samples: list[float] = []

    async def one(worker: int) -> None:
        for i in range(calls):
            rid = f"DC-{worker}-{i}-{time.monotonic_ns()}"
            message = pb.CalculateRequest(
                context=pb.Context(
                    store="S001", request_id=rid, timezone="Europe/Moscow", lane="bench"
                ),
                receipt=convert.receipt_to_pb(parse_receipt({"receipt": receipt(rid)})),
            )
            started = time.perf_counter()
            reply: Any = await stub.Calculate(message, timeout=10)
            calc_samples.append(time.perf_counter() - started)
            if reply.HasField("error"):
                raise SystemExit(f"central refused: {reply.error}")
            started = time.perf_counter()
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            bare_samples.append(time.perf_counter() - started)

    await asyncio.gather(*(one(w) for w in range(lanes)))
    await channel.close()
    return calc_samples, bare_samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run")
    args = parser.parse_args()
    total = 100 if args.smoke else 2000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with (
            central_process(folder) as (central, _),
            daemon_process(folder, central, deadline_ms=2000) as port,
        ):
            asyncio.run(
                through_tillgate(port, 1, 20)
            )  # warm-up: connections, caches, JIT-free paths
            rows = []
            for lanes in (1, 20):
                calls = max(1, total // lanes)
                via = asyncio.run(through_tillgate(port, lanes, calls))
                calc, bare = asyncio.run(direct(central, lanes, calls))
                rows.append(
                    (lanes, len(via), percentiles(via), percentiles(calc), percentiles(bare))
                )
    print("50-line calculate round trip, loopback, ms (p50 / p99)")
    print(
        f"{'lanes':>5} {'calls':>6} | {'register→tillgate→central':>26} |"
        f" {'gRPC Calculate direct':>22} | {'bare gRPC unary':>16}"
    )
    for lanes, count, via_p, calc_p, bare_p in rows:
        print(
            f"{lanes:>5} {count:>6} | {via_p[0]:>12.2f} / {via_p[1]:>8.2f}  |"
            f" {calc_p[0]:>9.2f} / {calc_p[1]:>8.2f}  | {bare_p[0]:>6.2f} / {bare_p[1]:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
