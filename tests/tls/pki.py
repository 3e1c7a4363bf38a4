"""A throwaway PKI made with the ``openssl`` command, as docs/tls.md tells store IT to do it.

EC P-256 keys (quick to make). The central certificate carries ``subjectAltName`` for
``localhost`` and ``127.0.0.1``; a store certificate's subject CN is the store id.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"

SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
"""
CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key (PEM files)."""

    cert: Path
    key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")


def _key(path: Path) -> None:
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path,
        cwd=path.parent,
    )


def make_ca(folder: Path, name: str) -> Pair:
    """A self-signed CA: ``<name>-ca.crt`` and ``<name>-ca.key`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pair = Pair(folder / f"{name}-ca.crt", folder / f"{name}-ca.key")
    _key(pair.key)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        pair.key,
        "-sha256",
        "-days",
        DAYS,
        "-subj",
        f"/O=tillgate test/CN={name} CA",
        "-out",
        pair.cert,
        cwd=folder,
    )
    return pair


def issue(ca: Pair, folder: Path, name: str, common_name: str, *, server: bool) -> Pair:
    """A certificate for ``common_name`` signed by ``ca``, with server or client extensions."""
    pair = Pair(folder / f"{name}.crt", folder / f"{name}.key")
    csr = folder / f"{name}.csr"
    extensions = folder / f"{name}.ext"
    extensions.write_text(SERVER_EXTENSIONS if server else CLIENT_EXTENSIONS, encoding="ascii")
    _key(pair.key)
    _openssl(
        "req",
        "-new",
        "-key",
        pair.key,
        "-subj",
        f"/O=tillgate test/CN={common_name}",
        "-out",
        csr,
        cwd=folder,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca.cert,
        "-CAkey",
        ca.key,
        "-CAcreateserial",
        "-sha256",
        "-days",
        DAYS,
        "-extfile",
        extensions,
        "-out",
        pair.cert,
        cwd=folder,
    )
    return pair
