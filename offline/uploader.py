"""The upload worker: sends the outbox to central's ``Processing.Upload``, oldest first.

Theory of operation: :meth:`Uploader.upload_batch` sends the oldest pending entries (at most
``batch_size``) in one call and records central's acknowledgements; entries without an
acknowledgement stay pending and go again in the next batch. Delivery is at-least-once on the
wire and exactly-once in effect, because central applies each (store, receipt_id, seq) once and
answers a repeat ``duplicate``. :meth:`Uploader.run` drains the outbox, retrying failed calls
with exponential backoff and full jitter (tenacity), and otherwise sleeps until
:meth:`Uploader.wake` is called (the processor journals something) or ``idle_s`` passes.
Between drains it checkpoints the database's WAL in a worker thread, so that the commits
answering registers never pay for a checkpoint.
"""

from __future__ import annotations

import asyncio

import grpc
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    wait_random_exponential,
)

from offline.outbox import AckSummary, Outbox
from protos import tillgate_pb2 as pb
from protos import tillgate_pb2_grpc as pb_grpc
from tillgate.errors import StorageError, UpstreamUnavailable

__all__ = ["Uploader"]

log = structlog.get_logger("tillgate.offline.uploader")

#: acknowledged entries are kept this long (for review), then purged; rejected ones stay
DEFAULT_KEEP_DONE_S = 7 * 86_400.0


class Uploader:
    """Moves journal entries from an :class:`Outbox` to central."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        batch_size: int = 500,
        call_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        idle_s: float = 5.0,
        keep_done_s: float = DEFAULT_KEEP_DONE_S,
    ) -> None:
        self.outbox = outbox
        self.batch_size = batch_size
        self.call_timeout_s = call_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.idle_s = idle_s
        self.keep_done_s = keep_done_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was journaled: upload without waiting for the idle timer."""
        self._wake.set()

    async def upload_batch(self, channel: grpc.aio.Channel) -> AckSummary | None:
        """Send one batch; None when nothing is pending. Raises UpstreamUnavailable."""
        central, entries = self.outbox.pending_batch(self.batch_size)
        if not entries:
            return None
        stub = pb_grpc.ProcessingStub(channel)
        request = pb.UploadRequest(store=self.outbox.store, entries=entries, central=central)
        try:
            reply = await stub.Upload(request, timeout=self.call_timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise UpstreamUnavailable(
                f"upload of {len(entries)} entries from seq {entries[0].seq}: "
                f"{exc.code().name}: {exc.details()}"
            ) from exc
        summary = self.outbox.record_acks(entries, reply.acks, version=reply.version)
        if summary.done + summary.rejected == 0:
            raise UpstreamUnavailable(
                f"upload from seq {entries[0].seq}: central acknowledged none of "
                f"{len(entries)} entries"
            )
        return summary

    async def drain(self, channel: grpc.aio.Channel) -> int:
        """Upload until nothing is pending, retrying with backoff; returns entries settled."""
        settled = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(UpstreamUnavailable),
            wait=wait_random_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s),
            before_sleep=lambda state: log.warning(
                "upload_failed",
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else "",
            ),
            reraise=True,
        )
        while True:
            summary: AckSummary | None = None
            async for attempt in retrying:
                with attempt:
                    summary = await self.upload_batch(channel)
            if summary is None:
                return settled
            settled += summary.done + summary.rejected

    async def run(self, channel: grpc.aio.Channel, stop: asyncio.Event) -> None:
        """Drain whenever there is work, until ``stop`` is set."""
        while not stop.is_set():
            self._wake.clear()
            drain = asyncio.create_task(self.drain(channel))
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({drain, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done:
                drain.cancel()
                await asyncio.gather(drain, return_exceptions=True)
                return
            stopped.cancel()
            await asyncio.gather(stopped, return_exceptions=True)
            if drain.exception() is not None:
                log.error("upload_worker_error", error=str(drain.exception()))
            # idle time: forget old acknowledged entries, and fold the WAL into the database
            # file off the event loop
            try:
                self.outbox.purge_done(self.keep_done_s)
                await asyncio.to_thread(self.outbox.db.checkpoint)
            except StorageError as exc:
                log.warning("checkpoint_failed", error=str(exc))
            woken = asyncio.create_task(self._wake.wait())
            stopped = asyncio.create_task(stop.wait())
            _, pending = await asyncio.wait(
                {woken, stopped}, timeout=self.idle_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
