"""``central serve`` checks its TLS material before it binds or opens the database.

gRPC reports a key that does not match the certificate, or a file that is not PEM, only as
"Failed to bind"; docs/tls.md promises an error naming the file. Each case runs the real
``python -m central serve`` and then the in-process :func:`start_server` with the same
material given as bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from central.server import ServerTLS, start_server
from tests.central.process import CentralProcess
from tests.tls.pki import Pair, _openssl, issue, make_ca
from tillgate.errors import ConfigError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


@dataclass(frozen=True)
class Material:
    ca: Pair
    central: Pair
    store: Pair
    garbage: Path  #: a text file that is no PEM at all
    encrypted_key: Path  #: central's key under a passphrase (gRPC cannot use it)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder, "chain")
    central = issue(ca, folder, "central", "central.test", server=True)
    garbage = folder / "garbage.crt"
    garbage.write_text("this is not a certificate\n", encoding="ascii")
    encrypted = folder / "central-encrypted.key"
    _openssl("pkey", "-in", central.key, "-aes256", "-passout", "pass:secret", "-out", encrypted,
             cwd=folder)
    return Material(
        ca=ca,
        central=central,
        store=issue(ca, folder, "store-S001", "S001", server=False),
        garbage=garbage,
        encrypted_key=encrypted,
    )


#: case → (--tls-ca, --tls-cert, --tls-key) as attribute paths of Material, the flag at fault,
#: the file at fault and what the error says about it.
CASES = {
    "key of another certificate": (
        ("ca.cert", "central.cert", "store.key"),
        "--tls-key",
        "store.key",
        "this private key does not belong to the certificate {cert}",
    ),
    "garbage CA": (("garbage", "central.cert", "central.key"), "--tls-ca", "garbage",
                   "not a PEM certificate"),
    "key given as the certificate": (("ca.cert", "central.key", "central.key"), "--tls-cert",
                                     "central.key", "not a PEM certificate"),
    "certificate given as the key": (
        ("ca.cert", "central.cert", "central.cert"),
        "--tls-key",
        "central.cert",
        "not a PEM private key (or an encrypted one)",
    ),
    "encrypted key": (("ca.cert", "central.cert", "encrypted_key"), "--tls-key",
                      "encrypted_key", "not a PEM private key (or an encrypted one)"),
}


def _path(material: Material, dotted: str) -> Path:
    value: object = material
    for part in dotted.split("."):
        value = getattr(value, part)
    assert isinstance(value, Path)
    return value


@pytest.mark.parametrize("case", list(CASES))
def test_serve_names_the_file_at_fault_before_binding(
    material: Material, tmp_path: Path, case: str
) -> None:
    (ca, cert, key), flag, culprit, problem = CASES[case]
    ca_file, cert_file, key_file = (_path(material, name) for name in (ca, cert, key))
    db = tmp_path / "central.db"
    result = subprocess.run(
        [sys.executable, "-m", "central", "serve", "--db", str(db), "--listen", "127.0.0.1:0",
         "--tls-ca", str(ca_file), "--tls-cert", str(cert_file), "--tls-key", str(key_file),
         "--points-activation-days", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
        check=False,
    )
    message = problem.format(cert=cert_file)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {flag}: {_path(material, culprit)}: {message}"
    ]
    assert not db.exists()  # refused before the stored settings or the server touched it


@pytest.mark.parametrize("case", list(CASES))
def test_start_server_checks_material_given_as_bytes(
    material: Material, tmp_path: Path, case: str
) -> None:
    (ca, cert, key), flag, _, problem = CASES[case]
    ca_file, cert_file, key_file = (_path(material, name) for name in (ca, cert, key))
    tls = ServerTLS(ca_file.read_bytes(), cert_file.read_bytes(), key_file.read_bytes())
    db = tmp_path / "central.db"
    with pytest.raises(ConfigError) as refused:
        start_server(db, "127.0.0.1:0", tls=tls)
    assert refused.value.key == flag.removeprefix("--").replace("-", "_")
    in_memory = f"{refused.value.key} (PEM given in memory)"
    assert refused.value.message == f"{in_memory}: " + problem.format(
        cert="tls_cert (PEM given in memory)"
    )
    assert not db.exists()


def _health(address: str, material: Material) -> int:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=material.ca.cert.read_bytes(),
        private_key=material.store.key.read_bytes(),
        certificate_chain=material.store.cert.read_bytes(),
    )
    with grpc.secure_channel(address, credentials) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    status: int = reply.status
    return status


def test_matching_material_from_files_serves_mtls(material: Material, tmp_path: Path) -> None:
    central = CentralProcess(
        tmp_path / "central.db",
        tmp_path / "central.log",
        "--tls-ca", str(material.ca.cert),
        "--tls-cert", str(material.central.cert),
        "--tls-key", str(material.central.key),
    )
    try:
        assert _health(central.address, material) == health_pb2.HealthCheckResponse.SERVING
    finally:
        code = central.terminate()
    assert code == 0


def test_matching_material_as_bytes_serves_mtls(material: Material, tmp_path: Path) -> None:
    tls = ServerTLS(
        material.ca.cert.read_bytes(),
        material.central.cert.read_bytes(),
        material.central.key.read_bytes(),
    )
    server = start_server(tmp_path / "central.db", "127.0.0.1:0", tls=tls)
    try:
        assert _health(server.address, material) == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(1.0)
