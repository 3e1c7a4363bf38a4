"""The central gRPC server: Processing, Sync, health and reflection over one repository.

Servicers are thin: they check who is calling (with mTLS, the client certificate's subject
CN is the store id and must equal the store the request names), hand the message to
central.processing / central.upload / central.syncfeed, and translate failures: a domain
refusal travels in ``reply.error`` (status OK); a storage failure is UNAVAILABLE and any
other bug INTERNAL with a log reference, so the store falls back to its edge cache.

:func:`start_server` is also the embedded mode's entry: the daemon runs central in-process
for a single store.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from central import clock
from central.demo import load_demo
from central.processing import Processing
from central.schema import CENTRAL_ID
from central.storage import Repository, SQLiteRepository
from central.syncfeed import content_hash, maintain, pull
from central.upload import foreign_entries, upload
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tillgate.errors import ConfigError, StorageError, TillgateError

log = structlog.get_logger("tillgate.central")

T = TypeVar("T")

#: Worker threads of the gRPC server (calls in flight at once).
DEFAULT_WORKERS = 16
#: Seconds between housekeeping rounds of a running server.
HOUSEKEEPING_INTERVAL = 60.0


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets, ``[::1]:7443``) as ``(host, port)``.

    A missing port is refused rather than left to gRPC, which would bind the scheme's 443.
    """
    host, colon, port = listen.rpartition(":")
    example = "such as 127.0.0.1:7443, 0.0.0.0:7443 or [::1]:7443"
    if not colon or not host:
        raise ConfigError(f"expected HOST:PORT {example}, got {listen!r}", key="listen")
    if host.startswith("[") != host.endswith("]") or host == "[]":
        raise ConfigError(f"expected HOST:PORT {example}, got {listen!r}", key="listen")
    if ":" in host and not host.startswith("["):
        raise ConfigError(
            f"an IPv6 host goes in brackets ([::1]:7443), got {listen!r}", key="listen"
        )
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError(f"the port must be a number 0-65535, got {listen!r}", key="listen")
    return host, int(port)


def _no_passphrase() -> bytes:
    # gRPC cannot use an encrypted key; without a callback OpenSSL would prompt on the tty.
    return b""


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """mTLS material: the CA that signs store certificates, the server's cert and key (PEM
    files or bytes). Client certificates are required; their subject CN is the store id."""

    ca: Path | bytes
    cert: Path | bytes
    key: Path | bytes

    @staticmethod
    def _name(value: Path | bytes, key: str) -> str:
        return str(value) if isinstance(value, Path) else f"{key} (PEM given in memory)"

    @staticmethod
    def _read(value: Path | bytes, name: str) -> bytes:
        if isinstance(value, bytes):
            return value
        try:
            return Path(value).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {value}: {exc.strerror}", key=name) from exc

    def _check_certificates(self, value: Path | bytes, data: bytes, name: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cadata=data.decode("ascii"))
        except (ValueError, ssl.SSLError) as exc:  # UnicodeDecodeError is a ValueError
            raise ConfigError(
                f"{self._name(value, name)}: not a PEM certificate", key=name
            ) from exc

    def _check_key(self, cert: bytes, key: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="tillgate-tls-") as folder:
            # load_cert_chain reads files only; material given as bytes goes through a
            # private temporary folder (mode 0700), removed at once.
            cert_file, key_file = self.cert, self.key
            if not isinstance(cert_file, Path):
                cert_file = Path(folder) / "cert.pem"
                cert_file.write_bytes(cert)
            if not isinstance(key_file, Path):
                key_file = Path(folder) / "key.pem"
                key_file.write_bytes(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
            except ssl.SSLError as exc:
                key_name = self._name(self.key, "tls_key")
                if exc.reason == "KEY_VALUES_MISMATCH":
                    message = (
                        f"{key_name}: this private key does not belong to the certificate "
                        f"{self._name(self.cert, 'tls_cert')}"
                    )
                else:
                    message = f"{key_name}: not a PEM private key (or an encrypted one)"
                raise ConfigError(message, key="tls_key") from exc

    def check(self) -> tuple[bytes, bytes, bytes]:
        """Read and check the material before anything listens; returns ``(ca, cert, key)``.

        The CA and the certificate must parse, the key must parse and belong to the
        certificate. gRPC itself reports any of these only as "Failed to bind"; a
        :class:`ConfigError` here names the file at fault.
        """
        ca = self._read(self.ca, "tls_ca")
        cert = self._read(self.cert, "tls_cert")
        key = self._read(self.key, "tls_key")
        self._check_certificates(self.ca, ca, "tls_ca")
        self._check_certificates(self.cert, cert, "tls_cert")
        self._check_key(cert, key)
        return ca, cert, key

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that require a client certificate signed by ``ca``."""
        ca, cert, key = self.check()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )


def _peer_store(context: grpc.ServicerContext) -> str | None:
    names: Any = context.auth_context().get("x509_common_name") or []
    if isinstance(names, bytes):
        return names.decode()
    return str(names[0].decode()) if names else None


class _Guard:
    """Caller checks and failure translation shared by the servicers."""

    def __init__(self, tls: bool) -> None:
        self.tls = tls

    def authorize(self, store: str, context: grpc.ServicerContext) -> None:
        if not self.tls:
            return
        peer = _peer_store(context)
        if peer is None or peer != store:
            log.warning("store_mismatch", certificate=peer, requested=store)
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"store {store!r} does not match the client certificate ({peer!r})",
            )

    def run(self, context: grpc.ServicerContext, call: Callable[[], T]) -> T:
        try:
            return call()
        except StorageError as exc:
            reference = uuid.uuid4().hex[:12]
            log.error("storage_failed", error=str(exc), ref=reference)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"central storage failed (ref {reference})")
        except Exception as exc:  # any bug becomes INTERNAL with a log reference
            reference = uuid.uuid4().hex[:12]
            log.exception("internal_error", error=repr(exc), ref=reference)
            context.abort(grpc.StatusCode.INTERNAL, f"central internal error (ref {reference})")
        raise AssertionError("unreachable: abort raises")  # pragma: no cover


class ProcessingServicer(pb_grpc.ProcessingServicer):
    """``tillgate.v1.Processing`` over :class:`central.processing.Processing`."""

    def __init__(self, processing: Processing, guard: _Guard) -> None:
        self.processing = processing
        self.guard = guard

    def _call(self, request: Any, context: grpc.ServicerContext, method: Callable[[Any], T]) -> T:
        self.guard.authorize(request.context.store, context)
        return self.guard.run(context, lambda: method(request))

    def Calculate(  # noqa: N802 -- gRPC method name
        self, request: pb.CalculateRequest, context: grpc.ServicerContext
    ) -> pb.CalculateReply:
        return self._call(request, context, self.processing.calculate)

    def Confirm(  # noqa: N802 -- gRPC method name
        self, request: pb.ConfirmRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmReply:
        return self._call(request, context, self.processing.confirm)

    def Cancel(  # noqa: N802 -- gRPC method name
        self, request: pb.CancelRequest, context: grpc.ServicerContext
    ) -> pb.CancelReply:
        return self._call(request, context, self.processing.cancel)

    def Refund(  # noqa: N802 -- gRPC method name
        self, request: pb.RefundRequest, context: grpc.ServicerContext
    ) -> pb.RefundReply:
        return self._call(request, context, self.processing.refund)

    def Identify(  # noqa: N802 -- gRPC method name
        self, request: pb.IdentifyRequest, context: grpc.ServicerContext
    ) -> pb.IdentifyReply:
        return self._call(request, context, self.processing.identify)

    def Balance(  # noqa: N802 -- gRPC method name
        self, request: pb.IdentifyRequest, context: grpc.ServicerContext
    ) -> pb.IdentifyReply:
        return self._call(request, context, self.processing.balance)

    def Upload(  # noqa: N802 -- gRPC method name
        self, request: pb.UploadRequest, context: grpc.ServicerContext
    ) -> pb.UploadReply:
        self.guard.authorize(request.store, context)
        refusal = self.guard.run(context, lambda: foreign_entries(self.processing, request))
        if refusal is not None:
            log.warning("upload_refused", store=request.store, error=refusal)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, refusal)
        return self.guard.run(context, lambda: upload(self.processing, request))


class SyncServicer(pb_grpc.SyncServicer):
    """``tillgate.v1.Sync`` over :mod:`central.syncfeed`."""

    def __init__(self, repository: Repository, guard: _Guard) -> None:
        self.repository = repository
        self.guard = guard

    def Pull(  # noqa: N802 -- gRPC method name
        self, request: pb.PullRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SyncPage]:
        self.guard.authorize(request.store, context)
        pages = pull(self.repository, request)
        try:
            while True:
                page = self.guard.run(context, lambda: next(pages, None))
                if page is None:
                    return
                yield page
        finally:
            pages.close()


class CentralServer:
    """A running central server: ``address`` ("127.0.0.1:PORT"), ``port``, ``stop(grace)``."""

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        host: str,
        repository: SQLiteRepository,
        processing: Processing,
        health_servicer: health.HealthServicer,
        executor: futures.ThreadPoolExecutor,
    ) -> None:
        self._server = server
        self._executor = executor
        self.port = port
        self.address = f"{host}:{port}"
        self.repository = repository
        self.processing = processing
        self._health = health_servicer
        self._stopped = False
        self._stopping = threading.Event()
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="central-housekeeping", daemon=True
        )
        self._housekeeper.start()

    def _housekeeping(self) -> None:
        """Every :data:`HOUSEKEEPING_INTERVAL` seconds: lifetimes, kept answers, tombstones."""
        while not self._stopping.wait(HOUSEKEEPING_INTERVAL):
            try:
                maintain(self.repository, clock.now())
            except TillgateError as exc:
                log.warning("housekeeping_failed", error=str(exc))

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let in-flight calls finish within ``grace`` seconds, close."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        # gRPC counts a call done once it is cancelled or answered, but the handler thread
        # may still be inside the database (a Pull whose client went away mid-page). Its
        # connection closed under it crashed the process (SIGSEGV in sqlite3), so the
        # handlers are let finish first: each ends after its current step.
        self._executor.shutdown(wait=True)
        self._housekeeper.join()
        self.repository.close()
        log.info("central_stopped", address=self.address)

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def content_hash(self) -> str:
        """The hash of every live document as synced (compare with an edge cache)."""
        return content_hash(self.repository)


def start_server(
    db_path: Path | str,
    listen: str = "127.0.0.1:0",
    *,
    tls: ServerTLS | None = None,
    demo: bool = False,
    workers: int = DEFAULT_WORKERS,
) -> CentralServer:
    """Open (create or migrate) the database, load demo data into a new one when ``demo``,
    and serve Processing, Sync, health and reflection on ``listen`` (``HOST:PORT``).

    ``listen``, ``workers`` and the TLS material are checked before the database is opened;
    a problem with any is a :class:`ConfigError` naming the address, the option or the file."""
    host, _ = parse_listen(listen)
    if workers < 1:
        raise ConfigError(f"must be at least 1, got {workers}", key="workers")
    credentials = tls.credentials() if tls is not None else None
    repository = SQLiteRepository(Path(db_path))
    if demo:
        load_demo(repository, clock.now())
    processing = Processing(repository)
    guard = _Guard(tls is not None)
    executor = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="central")
    # No SO_REUSEPORT: a second central on the same port must fail, not share it. Uploads
    # of a long offline journal may be large: accept up to 16 MiB per message.
    server = grpc.server(
        executor,
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 16 * 1024 * 1024)],
    )
    pb_grpc.add_ProcessingServicer_to_server(ProcessingServicer(processing, guard), server)
    pb_grpc.add_SyncServicer_to_server(SyncServicer(repository, guard), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        pb.DESCRIPTOR.services_by_name["Processing"].full_name,
        pb.DESCRIPTOR.services_by_name["Sync"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        repository.close()
        raise ConfigError(f"cannot listen on {listen}: {exc}", key="listen") from exc
    if port == 0:
        repository.close()
        raise ConfigError(f"cannot listen on {listen}", key="listen")
    server.start()
    for name in ("", *names[:2]):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    with repository.read() as tx:
        central_id = tx.setting(CENTRAL_ID)
    log.info("central_started", address=f"{host}:{port}", db=str(db_path), tls=tls is not None,
             central_id=central_id)
    return CentralServer(server, port, host, repository, processing, health_servicer, executor)
