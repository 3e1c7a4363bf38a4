"""``tillgate simulate``: a register simulator, the reference client of the register protocol.

Plays receipt files (or one generated receipt) through hello → calculate → confirm over the
``lines`` framing and prints the answers as a cashier would read them. Tests, benchmarks and POS
integrators use it; :class:`RegisterClient` is its programmatic half.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.tcp import parse_address
from loyalty.values import format_money

MAX_GENERATED_LINES = 500
DEMO_LINES = [
    ("4600001", "Масло подсолнечное 1 л", "2", 15990),
    ("4600010", "Хлеб Бородинский 400 г", "1", 4500),
    ("4600020", "Молоко 3,2% 1 л", "3", 8990),
]


class RegisterClient:
    """A register's connection over TCP with the ``lines`` framing; one request at a time."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, prefix: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._prefix = prefix
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, host: str, port: int, *, prefix: str | None = None) -> RegisterClient:
        reader, writer = await asyncio.open_connection(host, port, limit=4 * 1024 * 1024)
        return cls(reader, writer, prefix or uuid.uuid4().hex[:8])

    def next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def request(
        self, kind: str, body: dict[str, Any] | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        message = {"v": 1, "type": kind, "id": request_id or self.next_id(), **(body or {})}
        self._writer.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
        await self._writer.drain()
        line = await self._reader.readline()
        if not line:
            raise ConnectionError("tillgate closed the connection")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def read_rest(self) -> bytes:
        """Everything tillgate still sends until it closes the connection."""
        return await self._reader.read()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()


def generated_receipt(
    lines: int = 3, *, customer_card: str | None = "7700001234567"
) -> dict[str, Any]:
    """A receipt over the demo catalog, unique id, opened now."""
    items = []
    for n in range(1, lines + 1):
        sku, name, qty, price = DEMO_LINES[(n - 1) % len(DEMO_LINES)]
        amount = price * int(qty)
        items.append(
            {"n": n, "sku": sku, "name": name, "quantity": qty, "price": price, "amount": amount}
        )
    receipt: dict[str, Any] = {
        "id": f"SIM-{uuid.uuid4().hex[:12]}",
        "opened_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lines": items,
    }
    if customer_card:
        receipt["customer"] = {"card": customer_card}
    return receipt


def cashier_view(calc: dict[str, Any], receipt: dict[str, Any]) -> str:
    """The calculation as the cashier's screen shows it."""
    if calc.get("type") == "error":
        where = calc.get("field") or calc.get("reason") or ""
        return f"ОШИБКА {calc.get('code')}: {calc.get('message')} {where}".rstrip()
    names = {line["n"]: line.get("name") or line["sku"] for line in receipt["lines"]}
    before = {line["n"]: line["amount"] for line in receipt["lines"]}
    out = [f"Чек {calc['receipt_id']} ({calc['mode']})"]
    for line in calc["lines"]:
        promos = ", ".join(line["promotions"])
        out.append(
            f"  {line['n']:>3} {names.get(line['n'], '?')[:28]:<28}"
            f" {format_money(before[line['n']]):>10}"
            f"  -{format_money(line['discount']):>9} = {format_money(line['amount']):>10}"
            + (f"  [{promos}]" if promos else "")
        )
    points = calc["points"]
    out.append(
        f"  Итого {format_money(calc['total'])}, скидка {format_money(calc['discount'])},"
        f" к оплате {format_money(calc['due'])}"
    )
    out.append(
        f"  Баллы: начислить {format_money(points['accrue'])},"
        f" списать {format_money(points['redeem'])}"
    )
    for message in calc.get("messages", []):
        out.append(f"  [{message['target']}] {message['text']}")
    return "\n".join(out)


class _OutputFailed(Exception):  # noqa: N818 - internal control flow, never escapes simulate
    """Our output cannot be written: its reader went away (``tillgate simulate | head``), or
    the disk is full (``> /dev/full``)."""


def _show(text: str) -> None:
    # A failed stdout is told apart from a failed connection to the daemon: both raise
    # OSError (BrokenPipeError, say), and only the second is the daemon's to explain.
    try:
        print(text, flush=True)
    except OSError as exc:
        raise _OutputFailed from exc


async def simulate(
    host: str, port: int, lane: str, receipts: list[dict[str, Any]], *, token: str = ""
) -> int:
    client = await RegisterClient.connect(host, port)
    try:
        hello = await client.request(
            "hello",
            {
                "lane": lane,
                "token": token,
                "register": {"vendor": "tillgate", "model": "simulate", "software": "1"},
            },
        )
        if hello.get("type") == "error":
            print(f"hello refused: {hello.get('code')}: {hello.get('message')}", file=sys.stderr)
            return 1
        _show(f"Касса {lane} → магазин {hello['store']}, режим {hello['mode']}")
        failures = 0
        for receipt in receipts:
            calc = await client.request("calculate", {"receipt": receipt})
            _show(cashier_view(calc, receipt))
            if calc.get("type") == "error":
                failures += 1
                continue
            confirm = await client.request(
                "confirm",
                {
                    "receipt_id": receipt["id"],
                    "due": calc["due"],
                    "fiscal": {
                        "document": str(receipt.get("number", 1)),
                        "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    },
                    "payments": [
                        {"kind": "card", "amount": calc["due"] - calc["points"]["redeem"]}
                    ],
                },
            )
            if confirm.get("type") == "error":
                _show(f"  confirm: ОШИБКА {confirm.get('code')}: {confirm.get('message')}")
                failures += 1
                continue
            points = confirm["points"]
            balance = "неизвестен" if points["balance"] is None else format_money(points["balance"])
            _show(
                f"  Подтверждён ({confirm['mode']}): начислено {format_money(points['accrued'])},"
                f" списано {format_money(points['redeemed'])}, баланс {balance}"
            )
            for message in confirm.get("messages", []):
                _show(f"  [{message['target']}] {message['text']}")
        return 1 if failures else 0
    finally:
        await client.close()


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate", help="play receipts through a running tillgate as a register would"
    )
    parser.add_argument(
        "--address", default="127.0.0.1:7171", help="tillgate's TCP listener (default %(default)s)"
    )
    parser.add_argument(
        "--lane", default="01", help="lane id to say hello as (default %(default)s)"
    )
    parser.add_argument("--token", default="", help="the lane's token, if configured")
    parser.add_argument(
        "--lines",
        type=int,
        default=3,
        help=f"lines of the generated receipt, 1..{MAX_GENERATED_LINES} (default %(default)s)",
    )
    parser.add_argument(
        "receipts",
        nargs="*",
        type=Path,
        help="receipt JSON files (the register protocol's receipt object)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        host, port = parse_address(args.address)
    except ValueError as exc:
        return _usage_error(f"--address: {exc} (the form is HOST:PORT, e.g. 127.0.0.1:7171)")
    if not 1 <= args.lines <= MAX_GENERATED_LINES:
        return _usage_error(f"--lines: must be 1..{MAX_GENERATED_LINES}, not {args.lines}")
    receipts: list[dict[str, Any]] = []
    for path in args.receipts:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"{path}: cannot read a receipt: {exc}", file=sys.stderr)
            return 2
        receipts.append(data.get("receipt", data) if isinstance(data, dict) else data)
    if not receipts:
        receipts.append(generated_receipt(args.lines))
    try:
        return asyncio.run(simulate(host, port, args.lane, receipts, token=args.token))
    except _OutputFailed as failed:
        # A closed pipe stops its writer quietly; any other failure is said. Python's final
        # flush of stdout would fail again and print its own complaint, so stdout is pointed
        # at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if not isinstance(failed.__cause__, BrokenPipeError):
            print(f"tillgate simulate: cannot write the output: {failed.__cause__}",
                  file=sys.stderr)
        return 1
    except ConnectionRefusedError:
        print(
            f"tillgate simulate: connection refused by {host}:{port}"
            " (is the daemon running, with a listener there?)",
            file=sys.stderr,
        )
        return 1
    except (OSError, ConnectionError) as exc:
        print(f"cannot talk to tillgate at {args.address}: {exc}", file=sys.stderr)
        return 1


def _usage_error(message: str) -> int:
    print(f"tillgate simulate: {message}", file=sys.stderr)
    return 2
