"""check-config reads the store's TLS material as the daemon will, and names what is wrong."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.config import InvalidConfigError, load_config
from tests.tls.pki import _openssl, issue, make_ca


def problems(tmp_path: Path, central: str) -> dict[str, str]:
    path = tmp_path / "tillgate.toml"
    path.write_text(f"[central]\n{central}", encoding="utf-8")
    try:
        load_config(path)
    except InvalidConfigError as exc:
        return {problem.key: problem.message for problem in exc.problems}
    return {}


def test_store_tls_material_is_checked(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "chain")
    store = issue(ca, tmp_path, "store-S001", "S001", server=False)
    other = issue(ca, tmp_path, "store-S002", "S002", server=False)
    good = (
        f'url = "grpcs://central.test:7443"\ntls_ca = "{ca.cert}"\n'
        f'tls_cert = "{store.cert}"\ntls_key = "{store.key}"\n'
    )
    assert problems(tmp_path, good) == {}

    mismatched = good.replace(str(store.key), str(other.key))
    assert problems(tmp_path, mismatched) == {
        "central.tls_key": f"{other.key} does not belong to the certificate {store.cert}"
    }

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    assert problems(tmp_path, good.replace(str(ca.cert), str(garbage))) == {
        "central.tls_ca": f"is not a PEM CA certificate: {garbage}"
    }


@pytest.mark.parametrize("url", ["grpc://central.test:7443", "embedded"])
def test_tls_files_with_a_plain_url_are_a_mistake_not_ignored(tmp_path: Path, url: str) -> None:
    found = problems(tmp_path, f'url = "{url}"\ntls_ca = "ca.pem"\n')
    assert found["central.url"] == f"{url!r} is not TLS, yet tls_ca, tls_cert or tls_key is set"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_an_encrypted_store_key_is_named_without_asking_for_a_passphrase(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "chain")
    store = issue(ca, tmp_path, "store-S001", "S001", server=False)
    encrypted = tmp_path / "store-encrypted.key"
    _openssl("pkey", "-in", store.key, "-aes256", "-passout", "pass:secret", "-out", encrypted,
             cwd=tmp_path)
    config = tmp_path / "tillgate.toml"
    config.write_text(
        f'store = "S001"\n[central]\nurl = "grpcs://central.test:7443"\ntls_ca = "{ca.cert}"\n'
        f'tls_cert = "{store.cert}"\ntls_key = "{encrypted}"\n', encoding="utf-8")
    # As under systemd: no terminal to prompt on. OpenSSL would otherwise ask, then fail.
    done = subprocess.run(
        [sys.executable, "-m", "tillgate", "check-config", "--config", str(config)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
        start_new_session=True,
    )
    assert done.returncode == 2, done.stderr
    said = done.stdout + done.stderr
    assert "Traceback" not in said
    assert "pass phrase" not in said
    assert (f"central.tls_key: {encrypted} is encrypted: gRPC needs the key without a "
            "passphrase") in said
