"""Failover latency: what a register waits when central stalls, before and after the breaker opens.

Usage::

    .venv/bin/python bench/failover.py           # 20 stalls
    .venv/bin/python bench/failover.py --smoke   # 3 stalls

Real processes on loopback: central (``python -m central serve --demo``) is frozen with SIGSTOP
(a stalled central: connections stay up, nothing answers), then thawed with SIGCONT; tillgate runs
with ``deadline_ms = 300`` and the default breaker (opens after 3 consecutive failures). For
each stall the calls made before the breaker opens are "first calls" (target p99 ≤ deadline +
50 ms); the calls after it opened are "open" (target p99 ≤ 10 ms). ``bench/edge.py`` runs this
too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import central_process, daemon_process, percentiles, receipt

DEADLINE_MS = 300


class Register:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.count = 0

    async def ask(self, body: dict[str, object]) -> dict[str, object]:
        self.count += 1
        message = {"v": 1, "id": f"fo-{time.monotonic_ns()}-{self.count}", **body}
        self.writer.write(json.dumps(message).encode() + b"\n")
        await self.writer.drain()
        answer: dict[str, object] = json.loads(await self.reader.readline())
        return answer


async def measure(
    port: int, central_pid: int, stalls: int, open_calls: int
) -> tuple[list[float], list[float]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=8 * 1024 * 1024)
    register = Register(reader, writer)
    await register.ask({"type": "hello", "lane": "failover"})
    first: list[float] = []
    opened: list[float] = []
    for stall in range(stalls):
        while (await register.ask({"type": "ping"}))["mode"] != "online":
            await asyncio.sleep(0.05)
        warm = await register.ask(
            {"type": "calculate", "receipt": receipt(f"FO-w-{stall}-{time.monotonic_ns()}")}
        )
        assert warm["mode"] == "online", warm
        os.kill(central_pid, signal.SIGSTOP)
        try:
            before_open = True
            for i in range(open_calls + 3):
                started = time.perf_counter()
                answer = await register.ask(
                    {
                        "type": "calculate",
                        "receipt": receipt(f"FO-{stall}-{i}-{time.monotonic_ns()}"),
                    }
                )
                elapsed = time.perf_counter() - started
                assert answer["type"] == "calculate.result", answer
                if before_open and elapsed < DEADLINE_MS / 1000 / 2:
                    before_open = False
                (first if before_open else opened).append(elapsed)
        finally:
            os.kill(central_pid, signal.SIGCONT)
    writer.close()
    return first, opened


def run(smoke: bool) -> list[str]:
    stalls, open_calls = (3, 50) if smoke else (20, 200)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with central_process(folder) as (central, process), daemon_process(
            folder, central, deadline_ms=DEADLINE_MS,
            extra="[offline]\nbreaker_cooldown_ms = 500\n[sync]\ninterval_s = 1\n",
        ) as port:  # fmt: skip
            time.sleep(1.5)  # the first sync fills the edge cache
            first, opened = asyncio.run(measure(port, process.pid, stalls, open_calls))
    f50, f99 = percentiles(first)
    o50, o99 = percentiles(opened)
    before = f"{len(first):>5}  p50 {f50:7.1f} ms  p99 {f99:7.1f} ms"
    after = f"{len(opened):>5}  p50 {o50:7.1f} ms  p99 {o99:7.1f} ms"
    return [
        f"failover, central stalled {stalls}x, deadline {DEADLINE_MS} ms, 50-line calculate:",
        f"  calls before the breaker opened: {before}  (target p99 <= {DEADLINE_MS + 50} ms)",
        f"  calls once the breaker is open:  {after}  (target p99 <= 10 ms)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run")
    for line in run(parser.parse_args().smoke):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
