"""Central processing benchmark: confirmed receipts per second at 1 and 50 concurrent store
connections, and the p99 latency of Calculate for a 50-line receipt.

Runs a real ``python -m central serve --demo`` process on loopback with a fresh database in
a temporary folder; clients are threads, one gRPC channel per simulated store.

    .venv/bin/python bench/central.py           # full run (~1 minute)
    .venv/bin/python bench/central.py --smoke   # a few seconds
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc

CARDS = ("7700001234567", "7700002345678", "7700003456789")
SKUS = ("4600001", "4600002", "4600003", "4600010", "4600011", "4600020", "4600021",
        "4600022", "4600030", "4600031", "4600033", "4600040")


def _receipt(receipt_id: str, lines: int, card: str | None) -> pb.Receipt:
    receipt = pb.Receipt(id=receipt_id, opened_at="2026-11-23T10:15:00+03:00")
    for n in range(1, lines + 1):
        price = 5000 + 137 * n
        receipt.lines.append(pb.ReceiptLine(n=n, sku=SKUS[n % len(SKUS)], quantity_milli=1000,
                                            price=price, amount=price))
    if card:
        receipt.customer.CopyFrom(pb.CustomerRef(card=card))
    return receipt


def _start(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = folder / "central.log"
    env = {**os.environ, "TILLGATE_CENTRAL_NOW": "2026-11-23T10:20:00+03:00"}
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "central", "serve", "--db", str(folder / "central.db"),
             "--listen", "127.0.0.1:0", "--demo", "--workers", "16"],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    for _ in range(600):
        found = re.findall(r"central listening on (\S+)", log.read_text(errors="replace"))
        if found:
            return proc, found[-1]
        if proc.poll() is not None:
            raise SystemExit(f"central exited:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise SystemExit("central did not start")


def _sell_loop(address: str, store: str, stop_at: float, counter: list[int],
               errors: list[str]) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ProcessingStub(channel)
        number = 0
        while time.perf_counter() < stop_at:
            number += 1
            receipt_id = f"{store}-{number}"
            context = pb.Context(store=store, request_id=f"{receipt_id}-c",
                                 timezone="Europe/Moscow")
            calc = stub.Calculate(pb.CalculateRequest(
                context=context, receipt=_receipt(receipt_id, 5, CARDS[number % 3])))
            confirm = stub.Confirm(pb.ConfirmRequest(
                context=pb.Context(store=store, request_id=f"{receipt_id}-f"),
                receipt_id=receipt_id, due=calc.calculation.due,
                fiscal=pb.Fiscal(document=str(number), at="2026-11-23T10:16:00+03:00")))
            if confirm.HasField("error"):
                errors.append(confirm.error.message)
            else:
                counter[0] += 1


def confirmed_per_second(address: str, connections: int, seconds: float) -> float:
    counters = [[0] for _ in range(connections)]
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=_sell_loop,
                         args=(address, f"B{connections:02d}-{index:02d}", stop_at,
                               counters[index], errors))
        for index in range(connections)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  {len(errors)} errors, first: {errors[0]}")
    return sum(c[0] for c in counters) / elapsed


def calculate_p99(address: str, calls: int) -> tuple[float, float]:
    latencies: list[float] = []
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ProcessingStub(channel)
        for index in range(calls):
            request = pb.CalculateRequest(
                context=pb.Context(store="P99", request_id=f"p99-{index}",
                                   timezone="Europe/Moscow"),
                receipt=_receipt(f"P99-{index}", 50, CARDS[0]))
            started = time.perf_counter()
            reply = stub.Calculate(request)
            latencies.append(time.perf_counter() - started)
            if reply.HasField("error"):
                raise SystemExit(f"calculate failed: {reply.error}")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies) * 1000, p99 * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run")
    args = parser.parse_args()
    seconds = 1.5 if args.smoke else 15.0
    calls = 50 if args.smoke else 1000
    with tempfile.TemporaryDirectory() as folder:
        proc, address = _start(Path(folder))
        try:
            # warm-up: promotion index, connections
            confirmed_per_second(address, 1, 0.3)
            for connections in (1, 50):
                rate = confirmed_per_second(address, connections, seconds)
                print(f"confirmed receipts/s at {connections:>2} connection(s): {rate:8.1f}")
            median, p99 = calculate_p99(address, calls)
            print(f"Calculate, 50-line receipt, {calls} calls: median {median:.1f} ms, "
                  f"p99 {p99:.1f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
