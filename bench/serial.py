"""Round trip of a 50-line ``calculate`` over the ``link`` framing on a serial line.

A register simulator and an echoing peer (standing in for the daemon until the lead switches
this to ``tillgate run``) talk through two pseudo-terminals bridged by a relay. ptys do not
throttle to a baud rate, so the relay paces bytes at baud/10 per second per direction, like a
real 8N1 line; the ports are also set to the baud rate with termios (pyserial). The figure to
compare against is the line's physical minimum: every byte both ways (frames, ACKs) × 10 bits /
baud.

    .venv/bin/python bench/serial.py            # 9600 and 115200 baud, 50 lines
    .venv/bin/python bench/serial.py --smoke    # quick: fewer lines and rounds
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# This file is named serial.py: its folder must not shadow pyserial's ``serial`` package.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from drivers.base import Received  # noqa: E402 - needs the sys.path fix above
from drivers.channel import encode_message  # noqa: E402
from drivers.link import Link  # noqa: E402
from drivers.serial import open_serial_channel  # noqa: E402
from tests.drivers.ptys import NoisyRelay  # noqa: E402


def calculate_request(lines: int) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "calculate",
        "id": "S001-03-000123-7f3a",
        "receipt": {
            "id": "S001-03-000123",
            "number": 123,
            "shift": 17,
            "opened_at": "2026-11-23T10:15:00+03:00",
            "customer": {"card": "7700001234567"},
            "lines": [
                {
                    "n": n,
                    "sku": f"46{n:05d}",
                    "barcode": f"46000000{n:05d}",
                    "name": f"Масло подсолнечное рафинированное 1 л №{n}",
                    "quantity": "2",
                    "price": 15990,
                    "amount": 31980,
                }
                for n in range(1, lines + 1)
            ],
        },
    }


def calculate_answer(request: dict[str, Any]) -> dict[str, Any]:
    lines = request["receipt"]["lines"]
    return {
        "v": 1,
        "type": "calculate.result",
        "id": request["id"],
        "receipt_id": request["receipt"]["id"],
        "mode": "online",
        "customer": {"id": "C1", "name": "Анна К.", "status": "gold"},
        "lines": [
            {
                "n": line["n"],
                "discount": 4797,
                "amount": 27183,
                "redeemed": 0,
                "points": 1359,
                "promotions": ["oil-15", "base-points"],
            }
            for line in lines
        ],
        "total": 31980 * len(lines),
        "discount": 4797 * len(lines),
        "due": 27183 * len(lines),
        "points": {"accrue": 1359 * len(lines), "redeem": 0, "redeem_max": 0, "balance": 340000},
        "promotions": [{"id": "oil-15", "name": "-15% на все масла"}],
        "control": [],
        "messages": [{"target": "cashier", "text": "Анна К., gold, 3 400,00 баллов"}],
    }


async def measure(baud: int, lines: int, rounds: int) -> dict[str, float]:
    wire_bytes = {"up": 0, "down": 0}

    def counter(direction: str) -> Any:
        def trace(way: str, data: bytes, _: float) -> None:
            if way == "out":
                wire_bytes[direction] += len(data)

        return trace

    async with NoisyRelay(0.0, baud=baud) as relay:
        # Count what each side writes: frames and ACKs, the bytes the line must carry.
        register = await open_serial_channel(
            relay.a_path, baud, Link(baud=baud), trace=counter("up")
        )
        peer = await open_serial_channel(relay.b_path, baud, Link(baud=baud), trace=counter("down"))

        async def echo() -> None:
            while True:
                event = await peer.receive()
                if isinstance(event, Received):
                    await peer.send(calculate_answer(event.message))

        server = asyncio.create_task(echo())
        request = calculate_request(lines)
        times = []
        for _ in range(rounds):
            before = dict(wire_bytes)
            start = time.perf_counter()
            await register.send(request)
            answer = await register.receive()
            times.append(time.perf_counter() - start)
            assert isinstance(answer, Received), answer
            assert answer.message["id"] == request["id"]
            await asyncio.sleep(0.05)  # let the last ACK be counted
            per_round = {k: wire_bytes[k] - before[k] for k in wire_bytes}
        server.cancel()
        await register.close()
        await peer.close()
    total = per_round["up"] + per_round["down"]
    payload = len(encode_message(request)) + len(encode_message(calculate_answer(request)))
    return {
        "payload": payload,
        "wire": total,
        "minimum": total * 10 / baud,
        "median": statistics.median(times),
        "best": min(times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="10 lines, one round per rate")
    args = parser.parse_args()
    lines = 10 if args.smoke else 50
    plan = [(9600, 1 if args.smoke else 3), (115200, 1 if args.smoke else 10)]
    print("link round trip of a calculate over a pty relay paced at the baud rate")
    print("(ptys do not throttle by themselves: the relay emulates the 8N1 line timing)")
    print(f"receipt lines: {lines}; line min = all bytes both ways (frames + ACKs) x 10 / baud")
    print(f"{'baud':>7} {'payload B':>10} {'wire B':>8} {'line min s':>11} "
          f"{'median s':>9} {'best s':>8} {'overhead':>9}")  # fmt: skip
    for baud, rounds in plan:
        r = asyncio.run(measure(baud, lines, rounds))
        print(
            f"{baud:>7} {r['payload']:>10.0f} {r['wire']:>8.0f} {r['minimum']:>11.3f} "
            f"{r['median']:>9.3f} {r['best']:>8.3f} {r['median'] / r['minimum']:>8.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
