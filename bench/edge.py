"""Speed of the edge: offline calculate latency, cold full sync, outbox drain rate.

Usage::

    .venv/bin/python bench/edge.py            # full: 200 000 skus, 10 000 promotions,
                                              # 100 000 customers, 100 000 queued receipts
    .venv/bin/python bench/edge.py --smoke    # seconds-long run on a small data set

What is measured, against a real central server (``central.server.start_server``) on
127.0.0.1 loaded through ``central.importer`` (import time is printed, not a target):

* **cold full sync**: a new, empty edge database pulls everything (``all_customers``) as a
  snapshot through ``offline.sync.SyncClient``: gRPC transfer, shadow tables, swap. The
  content hash is checked against central's afterwards.
* **offline calculate**: ``OfflineProcessor.calculate`` of 50-line receipts (70 % with an
  identified customer), end to end as the daemon calls it: cache lookups, pricing, and the
  journal entry committed with ``synchronous=FULL``. The promotion index is built during
  warm-up (it is built once per promotions change, not per receipt). Targets: p99 ≤ 5 ms.
* **outbox drain**: 100 000 offline receipts queued (each one a calculation and a confirm
  journal entry, copied from real offline results) uploaded in batches of 500 by
  ``offline.uploader.Uploader``, (a) to an acknowledge-only Upload servicer (the edge's own
  cost: read, send, mark done) and (b) to the real central, which applies every entry.
  Target: ≥ 1 000 receipts/s.

Data set (fixed seed): 200 000 skus in 2 000 leaf groups under 200 parents, 500 brands, 2 %
flagged, 1 % with a min_price; 10 000 promotions spread over 104 weeks around today (1–4
week item promotions: 45 % on 1–5 skus, 45 % on a group, some with a brand; 10 % receipt-wide
with tier/segment audiences, 1–3 days; 0.1 % standing), so about 250 are live at a time;
100 000 customers with cards, phones, tiers, segments, balances, 0–2 personal offers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from central.importer import import_file
from central.server import start_server
from offline.cache import EdgeCache
from offline.db import EdgeDatabase
from offline.outbox import Outbox
from offline.processor import OfflineProcessor
from offline.sync import CustomerSelection, SyncClient
from offline.uploader import Uploader
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc

STORE = "S001"
TZ_NAME = "Europe/Moscow"
TODAY = datetime(2026, 11, 23, tzinfo=UTC)
SEGMENTS = [f"seg-{i}" for i in range(40)]
TIERS = ["bronze", "silver", "gold"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def catalog(rng: random.Random, skus: int) -> list[dict[str, Any]]:
    items = []
    for i in range(skus):
        leaf = i % 2000
        item: dict[str, Any] = {
            "sku": f"{i:07d}",
            "name": f"Товар {i}",
            "groups": [f"g{leaf}", f"p{leaf % 200}"],
            "brand": f"b{i % 500}",
        }
        if rng.random() < 0.02:
            item["flags"] = ["no_discount"]
        if rng.random() < 0.01:
            item["min_price"] = rng.randint(100, 5000)
        items.append(item)
    return items


def _window(rng: random.Random, *, days: tuple[int, int]) -> dict[str, str]:
    start = TODAY + timedelta(weeks=rng.uniform(-52, 52))
    end = start + timedelta(days=rng.randint(*days))
    return {"from": _iso(start), "to": _iso(end)}


def promotions(rng: random.Random, count: int, skus: int) -> list[dict[str, Any]]:
    docs = []
    rewards = [
        lambda on: {
            "type": "percent_off",
            "percent": str(rng.choice([5, 10, 15, 20, 30])),
            "on": on,
        },
        lambda on: {"type": "fixed_price", "price": rng.randint(1000, 9000), "on": on},
        lambda on: {"type": "nth_percent_off", "every": 3, "percent": "50", "on": on},
        lambda on: {"type": "buy_x_get_y", "buy": 2, "get": 1, "on": on},
        lambda on: {"type": "points_percent", "percent": "5", "on": on},
        lambda on: {"type": "points_multiplier", "factor": "2", "on": on},
    ]
    for i in range(count):
        roll = rng.random()
        doc: dict[str, Any] = {
            "id": f"pr-{i}",
            "name": f"Акция {i}",
            "priority": rng.randint(0, 300),
        }
        if roll < 0.45:
            on: dict[str, Any] = {
                "skus": [f"{rng.randrange(skus):07d}" for _ in range(rng.randint(1, 5))]
            }
            doc["reward"] = rng.choice(rewards)(on)
            doc["active"] = _window(rng, days=(7, 28))
        elif roll < 0.90:
            leaf = rng.randrange(2000)
            on = {"groups": [f"g{leaf}" if rng.random() < 0.8 else f"p{leaf % 200}"]}
            if rng.random() < 0.25:
                on["brands"] = [f"b{rng.randrange(500)}"]
            doc["reward"] = rng.choice(rewards)(on)
            doc["active"] = _window(rng, days=(7, 28))
        else:
            doc["reward"] = rng.choice(
                [
                    {"type": "points_percent", "percent": "3"},
                    {"type": "points_fixed", "points": 20000},
                    {"type": "amount_off", "amount": 30000},
                ]
            )
            doc["active"] = {**_window(rng, days=(1, 3)), "weekdays": [1, 2, 3, 4, 5, 6, 7]}
            if rng.random() < 0.8:
                doc["audience"] = (
                    {"segments": [rng.choice(SEGMENTS)]}
                    if rng.random() < 0.5
                    else {"statuses": {"tier": [rng.choice(TIERS)]}}
                )
            doc["conditions"] = {"min_total": rng.choice([0, 100000, 500000])}
        if rng.random() < 0.001:
            doc["active"].pop("to", None)
        if rng.random() < 0.1:
            doc["group"] = f"grp-{rng.randrange(50)}"
        if rng.random() < 0.05:
            doc["exclusive"] = True
        docs.append(doc)
    return docs


def customers(rng: random.Random, count: int, skus: int) -> list[dict[str, Any]]:
    docs = []
    for i in range(count):
        doc: dict[str, Any] = {
            "id": f"C{i}",
            "cards": [f"77{i:011d}"],
            "phone": f"+79{i:09d}",
            "name": f"Покупатель {i}",
            "statuses": {"tier": rng.choice(TIERS)},
            "segments": rng.sample(SEGMENTS, rng.randint(1, 2)),
            "balance": rng.randint(0, 500_000),
            "purchases": rng.randint(0, 50),
        }
        offers = []
        for n in range(rng.choice([0, 0, 1, 2])):
            start = TODAY - timedelta(days=rng.randint(0, 20))
            offers.append(
                {
                    "id": f"po-{i}-{n}",
                    "on": {"skus": [f"{rng.randrange(skus):07d}"]},
                    "reward": {"type": "percent_off", "percent": "20"},
                    "valid": {"from": _iso(start), "to": _iso(start + timedelta(days=30))},
                }
            )
        if offers:
            doc["personal_offers"] = offers
        docs.append(doc)
    return docs


def receipt(rng: random.Random, receipt_id: str, skus: int, customer_count: int) -> pb.Receipt:
    lines = []
    for n in range(1, 51):
        milli = rng.randint(100, 2500) if rng.random() < 0.1 else rng.randint(1, 3) * 1000
        price = rng.randint(2000, 90000)
        amount = (price * milli * 2 + 1000) // 2000
        lines.append(
            pb.ReceiptLine(
                n=n,
                sku=f"{rng.randrange(skus):07d}",
                quantity_milli=milli,
                price=price,
                amount=amount,
            )
        )
    opened = TODAY.replace(hour=rng.randint(7, 18), minute=rng.randint(0, 59))
    msg = pb.Receipt(id=receipt_id, opened_at=opened.isoformat(), lines=lines)
    if rng.random() < 0.7:
        msg.customer.card = f"77{rng.randrange(customer_count):011d}"
    return msg


class AckOnly(pb_grpc.ProcessingServicer):
    """Acknowledges every entry: measures the edge's side of the drain."""

    def __init__(self) -> None:
        self.entries = 0
        self.lock = threading.Lock()

    def Upload(self, request: pb.UploadRequest, context: grpc.ServicerContext) -> pb.UploadReply:  # noqa: N802 - gRPC method name
        with self.lock:
            self.entries += len(request.entries)
        return pb.UploadReply(
            acks=[
                pb.EntryAck(receipt_id=e.receipt_id, seq=e.seq, status="applied")
                for e in request.entries
            ]
        )

    def _unimplemented(self, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "this bench server only takes uploads")

    def Calculate(self, request: pb.CalculateRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return self._unimplemented(context)

    def Confirm(self, request: pb.ConfirmRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return self._unimplemented(context)

    def Cancel(self, request: pb.CancelRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return self._unimplemented(context)

    def Refund(self, request: pb.RefundRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return self._unimplemented(context)

    def Identify(self, request: pb.IdentifyRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return self._unimplemented(context)

    def Balance(self, request: pb.IdentifyRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        return self._unimplemented(context)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fill_outbox(
    path: Path, templates: list[tuple[pb.JournalEntry, pb.JournalEntry]], receipts: int
) -> Outbox:
    outbox = Outbox(EdgeDatabase(path), store=STORE)
    with outbox.db.transaction():
        for number in range(receipts):
            calc_entry, confirm_entry = templates[number % len(templates)]
            receipt_id = f"D{number:07d}"
            calc = pb.OfflineCalculation()
            calc.CopyFrom(calc_entry.calculate)
            calc.request.receipt.id = receipt_id
            calc.given.receipt_id = receipt_id
            outbox.append(receipt_id, "calculate", calc)
            confirm = pb.OfflineConfirm()
            confirm.CopyFrom(confirm_entry.confirm)
            confirm.request.receipt_id = receipt_id
            confirm.given.receipt_id = receipt_id
            confirm.calculation.receipt_id = receipt_id
            confirm.receipt.id = receipt_id
            outbox.append(receipt_id, "confirm", confirm)
    return outbox


async def drain(outbox: Outbox, address: str) -> float:
    uploader = Uploader(outbox, batch_size=500, call_timeout_s=60)
    async with grpc.aio.insecure_channel(address) as channel:
        started = time.perf_counter()
        await uploader.drain(channel)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run on small data")
    args = parser.parse_args()
    if args.smoke:
        skus, promo_count, customer_count, samples, queued = 5_000, 500, 2_000, 200, 2_000
    else:
        skus, promo_count, customer_count, samples, queued = (
            200_000,
            10_000,
            100_000,
            2_000,
            100_000,
        )
    rng = random.Random(20261123)
    print(f"data: {skus} skus, {promo_count} promotions, {customer_count} customers")

    with tempfile.TemporaryDirectory(prefix="tillgate-bench-edge-") as folder_name:
        folder = Path(folder_name)
        central = start_server(folder / "central.db", "127.0.0.1:0")
        try:
            started = time.perf_counter()
            for name, docs in (
                ("catalog.jsonl", catalog(rng, skus)),
                ("customers.jsonl", customers(rng, customer_count, skus)),
                ("promotions.jsonl", promotions(rng, promo_count, skus)),
            ):
                path = folder / name
                path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n")
                import_file(central.repository, path, datetime.now(UTC))
            print(f"central import (not a target): {time.perf_counter() - started:.1f} s")

            db = EdgeDatabase(folder / "cache.db")
            cache = EdgeCache(db)
            client = SyncClient(
                cache,
                store=STORE,
                selection=CustomerSelection(all_customers=True),
                page_size=5000,
                page_timeout_s=600,
            )

            async def sync() -> Any:
                async with grpc.aio.insecure_channel(
                    central.address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
                ) as channel:
                    return await client.sync_once(channel)

            result = asyncio.run(sync())
            same = cache.content_hash() == central.content_hash()
            print(
                f"cold full sync: {result.duration_s:.2f} s for {result.documents} documents "
                f"in {result.pages} pages (target ≤ 30 s); content hash equal to central: {same}"
            )

            processor = OfflineProcessor(db, store=STORE, timezone=TZ_NAME)
            started = time.perf_counter()
            processor.cache.promotion_index()
            build_ms = (time.perf_counter() - started) * 1000
            print(f"promotion index build (once per change): {build_ms:.0f} ms")
            context = pb.Context(store=STORE, timezone=TZ_NAME, lane="01")
            for number in range(20):
                processor.calculate(
                    pb.CalculateRequest(
                        context=context, receipt=receipt(rng, f"W{number}", skus, customer_count)
                    )
                )
            timings: list[float] = []
            templates: list[tuple[pb.JournalEntry, pb.JournalEntry]] = []
            for number in range(samples):
                if number % 100 == 0:
                    db.checkpoint()  # the uploader's idle-time checkpoint, outside the timing
                request = pb.CalculateRequest(
                    context=context, receipt=receipt(rng, f"B{number:06d}", skus, customer_count)
                )
                started = time.perf_counter()
                reply = processor.calculate(request)
                timings.append((time.perf_counter() - started) * 1000)
                if reply.HasField("error"):
                    raise SystemExit(f"calculate failed: {reply.error}")
                if number < 200:
                    processor.confirm(
                        pb.ConfirmRequest(
                            context=context,
                            receipt_id=request.receipt.id,
                            due=reply.calculation.due,
                            fiscal=pb.Fiscal(document=str(number), at=TODAY.isoformat()),
                        )
                    )
                    entries = [
                        e
                        for e in processor.outbox.pending(10_000)
                        if e.receipt_id == request.receipt.id
                    ]
                    templates.append((entries[0], entries[-1]))
            print(
                f"offline calculate, 50 lines: p50 {statistics.median(timings):.2f} ms, "
                f"p99 {percentile(timings, 0.99):.2f} ms over {samples} receipts "
                "(target p99 ≤ 5 ms)"
            )
            floor: list[float] = []
            for number in range(samples):
                started = time.perf_counter()
                with db.transaction() as conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('bench', ?)",
                        (str(number),),
                    )
                floor.append((time.perf_counter() - started) * 1000)
            print(
                f"  disk floor, one empty durable commit (synchronous=FULL): "
                f"p50 {statistics.median(floor):.2f} ms, p99 {percentile(floor, 0.99):.2f} ms"
            )
            db.close()

            ack_only = AckOnly()
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            pb_grpc.add_ProcessingServicer_to_server(ack_only, server)
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            try:
                outbox = fill_outbox(folder / "drain-a.db", templates, queued)
                seconds = asyncio.run(drain(outbox, f"127.0.0.1:{port}"))
                print(
                    f"outbox drain, acknowledge-only server: {queued / seconds:,.0f} receipts/s "
                    f"({queued} receipts, {2 * queued} entries, {seconds:.1f} s; target ≥ 1 000/s)"
                )
            finally:
                server.stop(0).wait()
            outbox = fill_outbox(folder / "drain-b.db", templates, queued)
            seconds = asyncio.run(drain(outbox, central.address))
            print(
                f"outbox drain, real central applying: {queued / seconds:,.0f} receipts/s "
                f"({queued} receipts, {seconds:.1f} s; depth after: {outbox.depth()})"
            )
        finally:
            central.stop(1)

    # What a register waits through a stalled central, measured on the whole daemon.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from failover import run as failover  # noqa: PLC0415 - a sibling script, found on sys.path

    for line in failover(args.smoke):
        print(line)


if __name__ == "__main__":
    main()
