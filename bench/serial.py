"""Round trip of a 50-line ``calculate`` over the ``link`` framing on a serial line.

A register simulator and a real ``tillgate run`` (a serial ``link`` lane, central a real
``central serve --demo`` process on loopback) talk through two pseudo-terminals bridged by a
relay. ptys do not
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
import tempfile
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

sys.path.insert(1, str(Path(__file__).resolve().parent))
from _harness import central_process, daemon_process  # noqa: E402


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


async def measure(
    baud: int, lines: int, rounds: int, folder: Path, central: str
) -> dict[str, float]:
    async with NoisyRelay(0.0, baud=baud) as relay:
        lane = f'[[lane]]\nid = "05"\nserial = "{relay.b_path}"\nbaud = {baud}\nframing = "link"\n'
        with daemon_process(folder, central, deadline_ms=2000, extra=lane):
            register = await open_serial_channel(relay.a_path, baud, Link(baud=baud))
            times = []
            payload = wire = 0
            for i in range(rounds + 1):  # the first round warms up the daemon's caches
                request = calculate_request(lines)
                request["id"] = f"{request['id']}-{baud}-{i}"
                request["receipt"]["id"] = f"{request['receipt']['id']}-{baud}-{i}"
                before = relay.stats["ab"].bytes + relay.stats["ba"].bytes
                start = time.perf_counter()
                await register.send(request)
                answer = await asyncio.wait_for(register.receive(), 120)
                elapsed = time.perf_counter() - start
                assert isinstance(answer, Received), answer
                assert answer.message["type"] == "calculate.result", answer.message
                await asyncio.sleep(0.3)  # let the last ACK cross the line before counting
                if i:
                    times.append(elapsed)
                    wire = relay.stats["ab"].bytes + relay.stats["ba"].bytes - before
                    payload = len(encode_message(request)) + len(encode_message(answer.message))
            await register.close()
    return {
        "payload": payload,
        "wire": wire,
        "minimum": wire * 10 / baud,
        "median": statistics.median(times),
        "best": min(times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="10 lines, one round per rate")
    args = parser.parse_args()
    lines = 10 if args.smoke else 50
    plan = [(9600, 1 if args.smoke else 3), (115200, 1 if args.smoke else 10)]
    print("calculate round trip, register -> pty line -> tillgate -> central and back")
    print("(ptys do not throttle by themselves: the relay emulates the 8N1 line timing)")
    print(f"receipt lines: {lines}; line min = all bytes both ways (frames + ACKs) x 10 / baud")
    print(f"{'baud':>7} {'payload B':>10} {'wire B':>8} {'line min s':>11} "
          f"{'median s':>9} {'best s':>8} {'overhead':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, central_process(Path(tmp)) as (central, _):
        results = [
            (baud, asyncio.run(measure(baud, lines, rounds, Path(tmp), central)))
            for baud, rounds in plan
        ]
    for baud, r in results:
        print(
            f"{baud:>7} {r['payload']:>10.0f} {r['wire']:>8.0f} {r['minimum']:>11.3f} "
            f"{r['median']:>9.3f} {r['best']:>8.3f} {r['median'] / r['minimum']:>8.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
