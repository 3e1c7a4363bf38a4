"""mTLS between a real ``tillgate run`` and a real central started with TLS material.

Central (in this process, :func:`central.server.start_server` with :class:`ServerTLS`) requires a
client certificate signed by the chain's CA and takes the store id from its subject CN. A daemon
with a valid certificate works online. A daemon whose certificate a foreign CA signed, whose CN
names another store, or that has no certificate at all (plain ``grpc://``) is refused, and then
everything it does stays local: it never syncs, answers the register from the edge (not
online), and central records nothing from it. Direct gRPC channels show what central answers
each kind of caller.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapter.simulate import RegisterClient
from central.server import CentralServer, ServerTLS, start_server
from offline.status import read_status
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.integration.data import CARD, import_chain, oil_receipt
from tests.integration.harness import DaemonProcess, central_json, free_port, wait_until
from tests.tls.pki import Pair, issue, make_ca

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")

FISCAL = {"document": "1", "at": "2026-11-23T10:20:00+03:00"}


@dataclass(frozen=True)
class PKI:
    ca: Pair
    central: Pair
    store: Pair  #: CN=S001, signed by the chain's CA
    other_store: Pair  #: CN=S002, signed by the chain's CA
    foreign: Pair  #: CN=S001, signed by a CA central does not know
    foreign_ca: Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder, "chain")
    foreign_ca = make_ca(folder, "foreign")
    return PKI(
        ca=ca,
        central=issue(ca, folder, "central", "central.test", server=True),
        store=issue(ca, folder, "store-S001", "S001", server=False),
        other_store=issue(ca, folder, "store-S002", "S002", server=False),
        foreign=issue(foreign_ca, folder, "foreign-S001", "S001", server=False),
        foreign_ca=foreign_ca,
    )


@pytest.fixture
def central(tmp_path: Path, pki: PKI) -> Iterator[tuple[CentralServer, Path]]:
    db = tmp_path / "central.db"
    import_chain(db, tmp_path / "chain")
    server = start_server(
        db, "127.0.0.1:0", tls=ServerTLS(pki.ca.cert, pki.central.cert, pki.central.key)
    )
    try:
        yield server, db
    finally:
        server.stop(1.0)


def store_config(
    folder: Path, *, central_address: str, client: Pair | None, ca: Path, port: int
) -> Path:
    """A store daemon's configuration: grpcs:// with ``client``, or plain grpc:// without."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tillgate.toml"
    central = (
        f'url = "grpcs://{central_address}"\n'
        f'tls_ca = "{ca}"\ntls_cert = "{client.cert}"\ntls_key = "{client.key}"'
        if client
        else f'url = "grpc://{central_address}"'
    )
    path.write_text(
        f"""
store = "S001"
timezone = "Europe/Moscow"
data_dir = "data"
[central]
deadline_ms = 1000
{central}
[[listener]]
address = "127.0.0.1:{port}"
framing = "lines"
[sync]
interval_s = 1
""",
        encoding="utf-8",
    )
    return path


def start_store(folder: Path, address: str, client: Pair | None, ca: Path) -> DaemonProcess:
    port = free_port()
    config = store_config(folder, central_address=address, client=client, ca=ca, port=port)
    return DaemonProcess(config, port, folder / "daemon.log").start()


async def sell(port: int, receipt_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """hello, calculate and (when priced) confirm one receipt; the two answers."""
    client = await RegisterClient.connect("127.0.0.1", port)
    try:
        hello = await client.request("hello", {"lane": "01"})
        assert hello["type"] == "hello.result", hello
        calc = await client.request("calculate", {"receipt": oil_receipt(receipt_id)})
        due = calc.get("due", 36480)
        confirm = await client.request(
            "confirm",
            {
                "receipt_id": receipt_id,
                "due": due,
                "fiscal": FISCAL,
                "payments": [{"kind": "card", "amount": due}],
            },
        )
        return calc, confirm
    finally:
        await client.close()


async def mode_after(port: int, seconds: float) -> str:
    """The mode ``ping`` reports ``seconds`` from now (the health check runs every 2 s)."""
    await asyncio.sleep(seconds)
    client = await RegisterClient.connect("127.0.0.1", port)
    try:
        await client.request("hello", {"lane": "01"})
        mode: str = (await client.request("ping"))["mode"]
        return mode
    finally:
        await client.close()


def receipts(db: Path) -> set[str]:
    return {row["receipt_id"] for row in central_json(db, "receipts")}


def test_store_with_valid_certificate_is_served_online(
    tmp_path: Path, pki: PKI, central: tuple[CentralServer, Path]
) -> None:
    server, db = central
    daemon = start_store(tmp_path / "store", server.address, pki.store, pki.ca.cert)
    edge_db = tmp_path / "store" / "data" / "edge.db"
    try:
        wait_until(lambda: read_status(edge_db)["cache"]["version"] is not None, what="sync")
        calc, confirm = asyncio.run(sell(daemon.port, "R-tls-ok"))
    finally:
        daemon.stop()
    assert calc["type"] == "calculate.result", calc
    assert calc["mode"] == "online"
    assert calc["points"]["balance"] == 340000  # only central knows the live balance
    assert confirm["type"] == "confirm.result", confirm
    assert confirm["mode"] == "online"
    assert "R-tls-ok" in receipts(db)


def log_events(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in daemon.output().splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("client", "refusal"),
    [
        ("foreign", "UNAVAILABLE"),  # a foreign CA's certificate: the TLS handshake fails
        ("other_store", "PERMISSION_DENIED"),  # CN=S002 asking for S001: central's guard
        (None, "UNAVAILABLE"),  # no certificate at all: plain grpc:// to the TLS port
    ],
)
def test_refused_store_never_reaches_central(
    tmp_path: Path, pki: PKI, central: tuple[CentralServer, Path], client: str | None, refusal: str
) -> None:
    server, db = central
    pair = getattr(pki, client) if client else None
    daemon = start_store(tmp_path / "store", server.address, pair, pki.ca.cert)
    edge_db = tmp_path / "store" / "data" / "edge.db"
    try:
        wait_until(
            lambda: any(e["event"] == "sync_failed" for e in log_events(daemon)),
            what="a refused sync",
        )
        calc, confirm = asyncio.run(sell(daemon.port, "R-tls-refused"))
        # The health check passes even for a certificate of another store; the mode must not
        # say online while every call is refused.
        mode = asyncio.run(mode_after(daemon.port, 3.0))
        status = read_status(edge_db)
    finally:
        daemon.stop()
    # Never synced, so the edge cannot price either: the register sells without loyalty.
    assert calc["type"] == "error", calc
    assert calc["code"] == "unavailable"
    assert calc["reason"] == "cache_empty"
    assert confirm["type"] == "error", confirm
    assert confirm["code"] == "not_found"
    assert status["cache"]["version"] is None
    assert mode == "offline"
    events = log_events(daemon)
    failures = [e for e in events if e["event"] == "central_failed"]
    assert [e["call"] for e in failures] == ["calculate", "confirm"]
    assert all(f"{refusal}" in e["error"] for e in failures), failures
    syncs = [e for e in events if e["event"] == "sync_failed"]
    assert syncs
    assert all(refusal in e["error"] for e in syncs), syncs
    assert "R-tls-refused" not in receipts(db)


def _channel(address: str, pki: PKI, client: Pair | None, ca: Path | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(ca or pki.ca.cert).read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    return grpc.secure_channel(address, credentials)


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


def test_direct_channels(pki: PKI, central: tuple[CentralServer, Path]) -> None:
    server, _ = central
    address = server.address
    with _channel(address, pki, pki.store) as valid:
        assert _health(valid) is grpc.StatusCode.OK
        stub = pb_grpc.ProcessingStub(valid)
        mine = stub.Identify(
            pb.IdentifyRequest(
                context=pb.Context(store="S001", timezone="Europe/Moscow", request_id="t1"),
                customer=pb.CustomerRef(card=CARD),
            ),
            timeout=5,
        )
        assert not mine.HasField("error"), mine
        with pytest.raises(grpc.RpcError) as refused:
            stub.Identify(
                pb.IdentifyRequest(
                    context=pb.Context(store="S002", timezone="Europe/Moscow", request_id="t2"),
                    customer=pb.CustomerRef(card=CARD),
                ),
                timeout=5,
            )
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    # No client certificate, a foreign CA's certificate, or no TLS at all: the handshake fails.
    with _channel(address, pki, None) as anonymous:
        assert _health(anonymous) is grpc.StatusCode.UNAVAILABLE
    with _channel(address, pki, pki.foreign) as foreign:
        assert _health(foreign) is grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(address) as plain:
        assert _health(plain) is grpc.StatusCode.UNAVAILABLE
    # The client checks central too: a server certificate from an unknown CA is refused.
    with _channel(address, pki, pki.store, ca=pki.foreign_ca.cert) as distrustful:
        assert _health(distrustful) is grpc.StatusCode.UNAVAILABLE
