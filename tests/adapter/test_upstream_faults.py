"""Which gRPC failures count against central's reachability.

A real gRPC server on loopback answers each call with the status under test; the router in
front of it has no edge, so every failed call reaches the register as ``central_unreachable``
and the breaker's state shows whether central was counted as down.
"""

from __future__ import annotations

import asyncio
import zoneinfo
from typing import Any

import grpc
import pytest

from adapter.config import CentralConfig
from adapter.requests import Calculate, parse_request
from adapter.router import Router, Unavailable
from adapter.upstream import CentralClient, open_channel
from offline.breaker import BreakerState, CircuitBreaker
from protos import tillgate_pb2 as pb
from tests.integration.data import oil_receipt
from tests.offline.fakecentral import FakeCentral, FakeProcessing


class FailingProcessing(FakeProcessing):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__()
        self.code = code

    def Calculate(self, request: pb.CalculateRequest, context: grpc.ServicerContext) -> Any:
        context.abort(self.code, "failed by the test")


def calculate_five_times(code: grpc.StatusCode) -> tuple[BreakerState, str, list[str]]:
    central = FakeCentral(FailingProcessing(code))

    async def scenario() -> tuple[BreakerState, str, list[str]]:
        config = CentralConfig(url=f"grpc://{central.address}")
        client = CentralClient(open_channel(central.address, config), deadline_ms=2_000)
        router = Router(
            store="S001",
            timezone="Europe/Moscow",
            tz=zoneinfo.ZoneInfo("Europe/Moscow"),
            central=client,
            edge=None,
            breaker=CircuitBreaker(failure_threshold=3),
        )
        reasons = []
        try:
            for attempt in range(5):
                request = parse_request("calculate", {"receipt": oil_receipt(f"R{attempt}")})
                assert isinstance(request, Calculate)
                with pytest.raises(Unavailable) as caught:
                    await router.calculate(f"c{attempt}", "01", request)
                reasons.append(caught.value.reason)
            return router.breaker.state, router.mode, reasons
        finally:
            await client.close()

    try:
        return asyncio.run(scenario())
    finally:
        central.stop()


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DATA_LOSS],
)
def test_a_call_central_answers_with_an_error_does_not_take_the_store_offline(
    code: grpc.StatusCode,
) -> None:
    state, mode, reasons = calculate_five_times(code)
    assert reasons == ["central_unreachable"] * 5
    assert state is BreakerState.CLOSED
    assert mode == "online"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED])
def test_central_that_cannot_serve_the_call_is_counted_down(code: grpc.StatusCode) -> None:
    state, mode, _ = calculate_five_times(code)
    assert state is BreakerState.OPEN
    assert mode == "offline"
