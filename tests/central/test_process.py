"""Central as a real server process: crash safety, graceful stop, health and reflection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx, fiscal, oil_receipt
from tests.central.process import CentralProcess


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "central", *args], capture_output=True,
                          text=True, check=False)


def test_sigkill_between_calls_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    first = CentralProcess(db, tmp_path / "central.log", "--demo")
    with grpc.insecure_channel(first.address) as channel:
        stub = pb_grpc.ProcessingStub(channel)
        calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("K1")))
        confirm_request = pb.ConfirmRequest(context=ctx(rid="confirm-K1"), receipt_id="K1",
                                            due=calc.calculation.due, fiscal=fiscal())
        confirmed = stub.Confirm(confirm_request)
        open_calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("K2")))
        adjusted_before = stub.Balance(pb.IdentifyRequest(
            context=ctx(), customer=pb.CustomerRef(card=CARD))).customer.balance
    first.kill()

    second = CentralProcess(db, tmp_path / "central-2.log")
    try:
        with grpc.insecure_channel(second.address) as channel:
            stub = pb_grpc.ProcessingStub(channel)
            assert stub.Confirm(confirm_request) == confirmed  # the kept answer survived
            balance = stub.Balance(pb.IdentifyRequest(
                context=ctx(), customer=pb.CustomerRef(card=CARD))).customer.balance
            assert balance == adjusted_before == 340000 + confirmed.points.accrued
            k2 = stub.Confirm(pb.ConfirmRequest(context=ctx(), receipt_id="K2",
                                                due=open_calc.calculation.due, fiscal=fiscal("2")))
            assert not k2.HasField("error")
    finally:
        assert second.terminate() == 0
    receipts = json.loads(_cli("receipts", "--db", str(db), "--json").stdout)
    assert {(r["receipt_id"], r["state"], r["mode"]) for r in receipts} == {
        ("K1", "confirmed", "online"), ("K2", "confirmed", "online")}
    customer = json.loads(_cli("customer", "--db", str(db), "C1", "--json").stdout)
    assert customer["balance"] == sum(row["points"] for row in customer["ledger"])
    assert customer["balance"] == 340000 + confirmed.points.accrued + k2.points.accrued


def test_health_reflection_and_graceful_sigterm(tmp_path: Path) -> None:
    server = CentralProcess(tmp_path / "central.db", tmp_path / "central.log", "--demo")
    try:
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "tillgate.v1.Processing", "tillgate.v1.Sync"):
                status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
                assert status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            answers = list(reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
            names = {s.name for s in answers[0].list_services_response.service}
            assert {"tillgate.v1.Processing", "tillgate.v1.Sync",
                    "grpc.health.v1.Health"} <= names
    finally:
        code = server.terminate()
    assert code == 0
    log = (tmp_path / "central.log").read_text(encoding="utf-8")
    assert "central_stopped" in log
    assert CARD not in log  # never a full card number in the logs


def test_serve_stores_lifetime_flags_and_checks_tls_flags(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    server = CentralProcess(db, tmp_path / "central.log", "--points-activation-days", "7",
                            "--points-validity-days", "365")
    assert server.terminate() == 0
    shown = _cli("settings", "--db", str(db)).stdout
    assert "points.activation_days = 7" in shown
    assert "points.validity_days = 365" in shown
    partial = _cli("serve", "--db", str(db), "--tls-ca", "ca.pem")
    assert partial.returncode == 2
    assert partial.stderr.strip() == "error: --tls-ca, --tls-cert and --tls-key go together"
