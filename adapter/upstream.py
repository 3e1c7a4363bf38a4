"""The gRPC client to central processing, with a deadline on every call.

Foreign errors stop here: any gRPC failure becomes :class:`UpstreamUnavailable` (the router then
falls back to the edge), so nothing above this module knows grpc's exception types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio

from adapter.config import CentralConfig
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tillgate.errors import ConfigError, UpstreamUnavailable

Reply = TypeVar("Reply")


#: central answered, and refuses this store: not a connection problem
_REFUSALS = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED})
#: central answered and failed this one call; the connection and central itself are fine, so
#: one poisoned request (retried by its lane) must not open the breaker for the whole store
_CALL_FAULTS = frozenset({
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.DATA_LOSS,
})


def open_channel(target: str, central: CentralConfig) -> grpc.aio.Channel:
    """A gRPC channel to ``target`` (host:port), TLS with a client certificate for grpcs://."""
    options = [
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 2_000),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    if central.tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    pems: dict[str, bytes] = {}
    for key, path in (("ca", central.tls.ca), ("key", central.tls.key), ("cert", central.tls.cert)):
        try:
            pems[key] = path.read_bytes()
        except OSError as exc:  # check-config run by another user than the service's
            raise ConfigError(
                f"cannot read {path}: {exc.strerror or exc}", key=f"central.tls_{key}"
            ) from exc
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pems["ca"], private_key=pems["key"], certificate_chain=pems["cert"]
    )
    return grpc.aio.secure_channel(target, credentials, options=options)


class CentralClient:
    """Processing calls to central, each bounded by the configured deadline."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_ms: int) -> None:
        self.channel = channel
        self._stub = pb_grpc.ProcessingStub(channel)
        self._timeout = deadline_ms / 1000

    async def _call(
        self, method: Callable[..., Awaitable[Reply]], request: Any, name: str
    ) -> Reply:
        try:
            return await method(request, timeout=self._timeout, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            raise UpstreamUnavailable(
                f"central {name}: {exc.code().name}: {exc.details()}",
                refused=exc.code() in _REFUSALS,
                answered=exc.code() in _CALL_FAULTS,
            ) from exc

    async def calculate(self, request: pb.CalculateRequest) -> pb.CalculateReply:
        return await self._call(self._stub.Calculate, request, "Calculate")

    async def confirm(self, request: pb.ConfirmRequest) -> pb.ConfirmReply:
        return await self._call(self._stub.Confirm, request, "Confirm")

    async def cancel(self, request: pb.CancelRequest) -> pb.CancelReply:
        return await self._call(self._stub.Cancel, request, "Cancel")

    async def refund(self, request: pb.RefundRequest) -> pb.RefundReply:
        return await self._call(self._stub.Refund, request, "Refund")

    async def identify(self, request: pb.IdentifyRequest) -> pb.IdentifyReply:
        return await self._call(self._stub.Identify, request, "Identify")

    async def balance(self, request: pb.IdentifyRequest) -> pb.IdentifyReply:
        return await self._call(self._stub.Balance, request, "Balance")

    async def close(self) -> None:
        await self.channel.close()
