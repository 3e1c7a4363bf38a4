"""docs/tls.md's openssl block, run word for word, makes a PKI that central and a store accept."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from central.server import ServerTLS, start_server
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc

DOC = Path(__file__).resolve().parents[2] / "docs" / "tls.md"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def doc_block() -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- tested by tests/tls/test_docs\.py[^\n]*\n```bash\n(.*?)```", text, re.S
    )
    assert found, "docs/tls.md lost its tested bash block"
    return found.group(1)


def test_documented_commands_make_certificates_central_and_store_accept(tmp_path: Path) -> None:
    script = doc_block()
    assert "CENTRAL_HOST=central.example.net" in script
    script = script.replace("CENTRAL_HOST=central.example.net", "CENTRAL_HOST=localhost")
    made = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    assert "central.crt: OK" in made.stdout
    assert "store-S001.crt: OK" in made.stdout
    assert "DNS:localhost" in made.stdout
    pki = tmp_path / "pki"

    server = start_server(
        tmp_path / "central.db",
        "127.0.0.1:0",
        tls=ServerTLS(pki / "ca.crt", pki / "central.crt", pki / "central.key"),
        demo=True,
    )
    try:
        port = server.address.rsplit(":", 1)[1]
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(pki / "ca.crt").read_bytes(),
            private_key=(pki / "store-S001.key").read_bytes(),
            certificate_chain=(pki / "store-S001.crt").read_bytes(),
        )
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            reply = pb_grpc.ProcessingStub(channel).Identify(
                pb.IdentifyRequest(
                    context=pb.Context(store="S001", timezone="Europe/Moscow", request_id="d1"),
                    customer=pb.CustomerRef(card="0000000000000"),
                ),
                timeout=5,
            )
            assert reply.HasField("error")  # an unknown card: a domain answer, not a refusal
        # The SAN names localhost only: dialling the address fails hostname verification.
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as by_address:
            with pytest.raises(grpc.RpcError) as refused:
                health_pb2_grpc.HealthStub(by_address).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=5
                )
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "Hostname Verification" in (refused.value.details() or "")
    finally:
        server.stop(1.0)
