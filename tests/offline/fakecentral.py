"""A small in-test central for the edge's tests: a real gRPC server on 127.0.0.1 (thread pool)
implementing ``Sync.Pull`` over an in-memory versioned document store and
``Processing.Upload`` with exactly-once bookkeeping, with switches to misbehave.

It stands in for ``central`` where a test needs to pause a stream at a chosen page, cut it, or
fail uploads on purpose; parity tests use the real central server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from protos.sync import canonical_json, content_hash


@dataclass
class _Doc:
    kind: str
    id: str
    body: dict[str, Any] | None  # None: a tombstone
    version: int


@dataclass
class FeedControl:
    """Switches a test flips to make the feed misbehave."""

    #: after this many pages of a stream, block until ``resume`` is set
    pause_after_pages: int | None = None
    paused: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)
    #: after this many pages of a stream, abort it with UNAVAILABLE (once)
    abort_after_pages: int | None = None


class FakeSync(pb_grpc.SyncServicer):
    """A versioned document store serving pages; ``horizon`` is the oldest checkpoint it can
    serve as a delta (older ones get a snapshot)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], _Doc] = {}
        self.version = 0
        self.horizon = 0
        self.control = FeedControl()
        self.requests: list[pb.PullRequest] = []
        self.lock = threading.Lock()

    def put(self, kind: str, body: dict[str, Any]) -> None:
        with self.lock:
            self.version += 1
            doc_id = body["sku"] if kind == "catalog" else body["id"]
            self.docs[(kind, doc_id)] = _Doc(kind, doc_id, body, self.version)

    def delete(self, kind: str, doc_id: str) -> None:
        with self.lock:
            self.version += 1
            self.docs[(kind, doc_id)] = _Doc(kind, doc_id, None, self.version)

    def compact(self) -> None:
        """Forget tombstones and history: older checkpoints now need a snapshot."""
        with self.lock:
            self.docs = {key: doc for key, doc in self.docs.items() if doc.body is not None}
            self.horizon = self.version

    def content_hash(self) -> str:
        return content_hash(
            (doc.kind, doc.id, canonical_json(doc.body))
            for doc in self.docs.values()
            if doc.body is not None
        )

    def Pull(self, request: pb.PullRequest, context: grpc.ServicerContext) -> Iterator[pb.SyncPage]:
        self.requests.append(request)
        with self.lock:
            snapshot = request.since == 0 or request.since < self.horizon
            docs = sorted(self.docs.values(), key=lambda d: d.version)
            if snapshot:
                docs = [d for d in docs if d.body is not None]
            else:
                docs = [d for d in docs if d.version > request.since]
            current = self.version
        size = request.page_size or 100
        chunks = [docs[i : i + size] for i in range(0, len(docs), size)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            last = number == len(chunks)
            version = current if snapshot or last else chunk[-1].version
            yield pb.SyncPage(
                version=version,
                snapshot=snapshot,
                last=last,
                documents=[
                    pb.Document(
                        kind=d.kind,
                        id=d.id,
                        deleted=d.body is None,
                        json=b"" if d.body is None else canonical_json(d.body),
                        version=d.version,
                    )
                    for d in chunk
                ],
            )
            control = self.control
            if control.pause_after_pages == number:
                control.paused.set()
                control.resume.wait(30)
            if control.abort_after_pages == number:
                control.abort_after_pages = None
                context.abort(grpc.StatusCode.UNAVAILABLE, "feed cut by the test")


@dataclass
class UploadControl:
    #: fail this many Upload calls with UNAVAILABLE before answering again
    fail_next: int = 0
    #: apply the batch, then fail the call (the acks are lost on the way back) this many times
    lose_acks_next: int = 0
    #: receipt ids whose entries are rejected
    reject_receipts: set[str] = field(default_factory=set)


class FakeProcessing(pb_grpc.ProcessingServicer):
    """Upload with exactly-once bookkeeping: ``applied`` holds each (store, receipt, seq) once,
    ``received`` every entry that arrived (repeats included)."""

    def __init__(self) -> None:
        self.applied: dict[tuple[str, str, int], pb.JournalEntry] = {}
        self.received: list[tuple[str, str, int]] = []
        self.control = UploadControl()
        self.lock = threading.Lock()
        self.calls = 0

    def Upload(self, request: pb.UploadRequest, context: grpc.ServicerContext) -> pb.UploadReply:
        with self.lock:
            self.calls += 1
            if self.control.fail_next > 0:
                self.control.fail_next -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "upload refused by the test")
            acks = []
            for entry in request.entries:
                key = (entry.store, entry.receipt_id, entry.seq)
                self.received.append(key)
                if entry.receipt_id in self.control.reject_receipts:
                    status = "rejected"
                elif key in self.applied:
                    status = "duplicate"
                else:
                    self.applied[key] = entry
                    status = "applied"
                acks.append(pb.EntryAck(receipt_id=entry.receipt_id, seq=entry.seq, status=status))
            if self.control.lose_acks_next > 0:
                self.control.lose_acks_next -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "acks lost by the test")
            return pb.UploadReply(acks=acks)

    def _unimplemented(self, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake central only takes uploads")

    def Calculate(self, request: pb.CalculateRequest, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Confirm(self, request: pb.ConfirmRequest, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Cancel(self, request: pb.CancelRequest, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Refund(self, request: pb.RefundRequest, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Identify(self, request: pb.IdentifyRequest, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Balance(self, request: pb.IdentifyRequest, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)


class FakeCentral:
    """Both servicers on one real gRPC server bound to 127.0.0.1:0."""

    def __init__(self, processing: FakeProcessing | None = None) -> None:
        self.sync = FakeSync()
        self.processing = processing or FakeProcessing()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_SyncServicer_to_server(self.sync, self.server)
        pb_grpc.add_ProcessingServicer_to_server(self.processing, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.sync.control.resume.set()
        self.server.stop(0).wait()
