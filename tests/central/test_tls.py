"""mTLS: a store is known by its client certificate's CN; another store's name is refused."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from central.server import CentralServer, ServerTLS, start_server
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(folder: Path, name: str, cn: str, *, server: bool = False) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj",
             f"/CN={cn}", "-out", f"{name}.csr", cwd=folder)
    ext = folder / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n" if server else
                   "extendedKeyUsage=clientAuth\n", encoding="utf-8")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", ext.name,
             cwd=folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=tillgate test CA", cwd=folder)
    _issue(folder, "server", "localhost", server=True)
    _issue(folder, "s001", "S001")
    return folder


@pytest.fixture
def tls_server(pki: Path, tmp_path: Path) -> Iterator[CentralServer]:
    tls = ServerTLS(pki / "ca.pem", pki / "server.pem", pki / "server.key")
    server = start_server(tmp_path / "c.db", demo=True, tls=tls)
    try:
        yield server
    finally:
        server.stop(1.0)


def _channel(pki: Path, address: str, *, client: bool = True) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "s001.key").read_bytes() if client else None,
        certificate_chain=(pki / "s001.pem").read_bytes() if client else None,
    )
    return grpc.secure_channel(address, credentials)


def _identify(store: str) -> pb.IdentifyRequest:
    return pb.IdentifyRequest(context=ctx(store), customer=pb.CustomerRef(card=CARD))


def test_store_named_by_certificate_is_served(pki: Path, tls_server: CentralServer) -> None:
    with _channel(pki, tls_server.address) as channel:
        reply = pb_grpc.ProcessingStub(channel).Identify(_identify("S001"), timeout=10)
    assert reply.customer.id == "C1"


def test_another_store_is_permission_denied(pki: Path, tls_server: CentralServer) -> None:
    with _channel(pki, tls_server.address) as channel:
        stub = pb_grpc.ProcessingStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Identify(_identify("S002"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        sync = pb_grpc.SyncStub(channel)
        with pytest.raises(grpc.RpcError) as pulled:
            list(sync.Pull(pb.PullRequest(store="S002", all_customers=True), timeout=10))
        assert pulled.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_client_without_certificate_is_refused(pki: Path, tls_server: CentralServer) -> None:
    with _channel(pki, tls_server.address, client=False) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.ProcessingStub(channel).Identify(_identify("S001"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
