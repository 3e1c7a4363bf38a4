"""Small flows over a Processing stub, shared by central's tests."""

from __future__ import annotations

from central.server import CentralServer
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tests.central.conftest import CARD, ctx, fiscal, oil_receipt


def sell(
    stub: pb_grpc.ProcessingStub, receipt_id: str, *, card: str | None = CARD, oil: int = 2,
    bread: int = 1, redeem: int = 0, coupons: tuple[str, ...] = (), store: str = "S001",
) -> tuple[pb.CalculateReply, pb.ConfirmReply]:
    """Calculate and confirm a receipt; both answers must be without error."""
    receipt = oil_receipt(receipt_id, card=card, oil=oil, bread=bread, redeem=redeem,
                          coupons=coupons)
    calc = stub.Calculate(pb.CalculateRequest(context=ctx(store), receipt=receipt))
    assert not calc.HasField("error"), calc.error
    confirm = stub.Confirm(pb.ConfirmRequest(context=ctx(store), receipt_id=receipt_id,
                                             due=calc.calculation.due, fiscal=fiscal()))
    assert not confirm.HasField("error"), confirm.error
    return calc, confirm


def ledger_sum(server: CentralServer, customer_id: str) -> int:
    """The sum of the customer's ledger rows, read from the server's database."""
    with server.repository.read() as tx:
        return sum(row.points for row in tx.ledger(customer_id))
