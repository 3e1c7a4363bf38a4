"""Appends journal entries until killed, printing each seq once its transaction committed:
``DB``. For the SIGKILL durability test."""

from __future__ import annotations

import sys

from offline.db import EdgeDatabase
from offline.outbox import Outbox
from protos import tillgate_pb2 as pb


def main(db_path: str) -> None:
    outbox = Outbox(EdgeDatabase(db_path), store="S001")
    n = 0
    while True:
        n += 1
        receipt_id = f"R{n:06d}"
        entry = outbox.append(
            receipt_id,
            "cancel",
            pb.CancelRequest(context=pb.Context(store="S001"), receipt_id=receipt_id),
        )
        sys.stdout.write(f"{entry.seq} {receipt_id}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
