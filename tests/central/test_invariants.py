"""Invariants over random operation sequences and concurrent stores: the balance always
equals the ledger sum, and every acknowledged confirm is in it exactly once."""

from __future__ import annotations

import threading

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central import admin
from central.clock import now
from central.demo import DEMO_FILES
from central.importer import import_file
from central.processing import Processing
from central.server import CentralServer
from central.storage import SQLiteRepository
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx, fiscal, oil_receipt

operations = st.lists(
    st.tuples(
        st.sampled_from(["sell", "calculate", "cancel", "refund_line", "refund_rest", "adjust",
                         "repeat_confirm"]),
        st.integers(min_value=0, max_value=4),  # which receipt
        st.integers(min_value=0, max_value=20000),  # points to redeem / adjust
    ),
    min_size=1,
    max_size=18,
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_balance_equals_ledger_sum_after_any_sequence(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]]
) -> None:
    repository = SQLiteRepository(tmp_path_factory.mktemp("inv") / "c.db")
    for path in DEMO_FILES:
        import_file(repository, path, now())
    processing = Processing(repository)
    refunds = 0
    for op, which, amount in ops:
        receipt_id = f"R{which}"
        if op in ("sell", "calculate"):
            calc = processing.calculate(pb.CalculateRequest(
                context=ctx(), receipt=oil_receipt(receipt_id, oil=1 + which % 3, redeem=amount)))
            if op == "sell" and not calc.HasField("error"):
                processing.confirm(pb.ConfirmRequest(context=ctx(), receipt_id=receipt_id,
                                                     due=calc.calculation.due, fiscal=fiscal()))
        elif op == "repeat_confirm":
            processing.confirm(pb.ConfirmRequest(context=ctx(), receipt_id=receipt_id,
                                                 due=0, fiscal=fiscal()))
        elif op == "cancel":
            processing.cancel(pb.CancelRequest(context=ctx(), receipt_id=receipt_id))
        elif op in ("refund_line", "refund_rest"):
            refunds += 1
            lines = [pb.RefundLine(n=1, quantity_milli=1000)] if op == "refund_line" else []
            processing.refund(pb.RefundRequest(context=ctx(), refund_id=f"F{refunds}",
                                               receipt_id=receipt_id, lines=lines))
        elif amount:
            admin.adjust(repository, "C1", amount - 10000, "test")
        view = admin.customer_view(repository, "C1")
        assert view["balance"] == sum(row["points"] for row in view["ledger"])
        balance = processing.balance(pb.IdentifyRequest(
            context=ctx(), customer=pb.CustomerRef(card=CARD)))
        assert balance.customer.balance == view["balance"]
    repository.close()


def test_concurrent_stores_confirm_exactly_once(server: CentralServer) -> None:
    accrued: list[int] = []
    lock = threading.Lock()

    def store_worker(store: str) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ProcessingStub(channel)
            for number in range(5):
                receipt_id = f"{store}-{number}"
                calc = stub.Calculate(pb.CalculateRequest(context=ctx(store),
                                                          receipt=oil_receipt(receipt_id)))
                request = pb.ConfirmRequest(context=ctx(store), receipt_id=receipt_id,
                                            due=calc.calculation.due, fiscal=fiscal())
                first = stub.Confirm(request)
                stub.Confirm(request)  # a repeat must not count twice
                with lock:
                    accrued.append(first.points.accrued)

    threads = [threading.Thread(target=store_worker, args=(f"S{i:03d}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    view = admin.customer_view(server.repository, "C1")
    assert len(accrued) == 40
    assert view["balance"] == 340000 + sum(accrued)
    assert view["purchases"] == 40


def test_stop_lets_an_in_flight_call_finish(server: CentralServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        pages = pb_grpc.SyncStub(channel).Pull(
            pb.PullRequest(store="S001", since=0, page_size=1, all_customers=True))
        first = next(pages)  # the call is in flight on the server now
        stopper = threading.Thread(target=server.stop, args=(20.0,))
        stopper.start()
        rest = list(pages)
        stopper.join()
    assert first.snapshot
    assert len(rest) == 21 + 3 + 6 - 1
    assert rest[-1].last


def test_simultaneous_confirms_of_one_receipt_apply_once(server: CentralServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.ProcessingStub(channel)
        calc = stub.Calculate(pb.CalculateRequest(context=ctx(), receipt=oil_receipt("SIM")))
        futures = [
            stub.Confirm.future(pb.ConfirmRequest(context=ctx(), receipt_id="SIM",
                                                  due=calc.calculation.due, fiscal=fiscal()))
            for _ in range(10)
        ]
        replies = [future.result(timeout=30) for future in futures]
    assert all(reply == replies[0] for reply in replies)
    assert not replies[0].HasField("error")
    view = admin.customer_view(server.repository, "C1")
    assert view["balance"] == 340000 + calc.calculation.points.accrue
    assert view["purchases"] == 1
