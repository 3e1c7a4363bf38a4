"""Shared parts for central's tests: real SQLite files, real loopback gRPC servers."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path

import grpc
import pytest

from central.clock import NOW_ENV
from central.server import CentralServer, start_server
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc

CARD = "7700001234567"
STORE = "S001"
#: The pinned clock of most tests: a Monday morning in Moscow.
NOW = "2026-11-23T10:20:00+03:00"

_ids = count(1)


def request_id() -> str:
    return f"req-{next(_ids)}"


def ctx(store: str = STORE, rid: str | None = None) -> pb.Context:
    return pb.Context(store=store, request_id=rid or request_id(), timezone="Europe/Moscow")


def oil_receipt(receipt_id: str, *, card: str | None = CARD, oil: int = 2, bread: int = 1,
                coupons: tuple[str, ...] = (), redeem: int = 0) -> pb.Receipt:
    lines = [pb.ReceiptLine(n=1, sku="4600001", name="Масло подсолнечное 1 л",
                            quantity_milli=oil * 1000, price=15990, amount=oil * 15990)]
    if bread:
        lines.append(pb.ReceiptLine(n=2, sku="4600010", name="Хлеб Бородинский",
                                    quantity_milli=bread * 1000, price=4500, amount=bread * 4500))
    receipt = pb.Receipt(id=receipt_id, opened_at="2026-11-23T10:15:00+03:00", lines=lines,
                         coupons=list(coupons), points_to_redeem=redeem)
    if card:
        receipt.customer.CopyFrom(pb.CustomerRef(card=card))
    return receipt


def fiscal(document: str = "1001") -> pb.Fiscal:
    return pb.Fiscal(fn="9999078900001234", document=document, sign="123456",
                     at="2026-11-23T10:16:00+03:00")


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> str:
    """Central's clock, pinned through its documented switch."""
    monkeypatch.setenv(NOW_ENV, NOW)
    return NOW


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "central.db"


@pytest.fixture
def server(db: Path) -> Iterator[CentralServer]:
    running = start_server(db, demo=True, workers=8)
    try:
        yield running
    finally:
        running.stop(1.0)


@pytest.fixture
def channel(server: CentralServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.ProcessingStub:
    return pb_grpc.ProcessingStub(channel)


@pytest.fixture
def sync_stub(channel: grpc.Channel) -> pb_grpc.SyncStub:
    return pb_grpc.SyncStub(channel)
