"""Lane sessions: the register protocol's connection rules over any channel (§1, §2.3, §3).

Theory of operation: a reader task takes events off the channel and queues them; a worker
answers them one at a time, in order. Up to :data:`MAX_OUTSTANDING` requests may wait; one
more is answered ``busy`` at once, ahead of the queued answers. Unreadable input is queued too,
so its ``id: null`` error answers the oldest unanswered line — past the limit as well, where a
``busy`` without an id sent ahead would read as the answer to the oldest request. Each answer
is computed by :meth:`LaneSession.answer`, which never raises: a bug becomes an ``internal``
error with a log reference, and the lane goes on. Repeats by ``id`` come from the answer
journal; a repeat that arrives while the first is running waits for the first one's answer.

What the journal keeps (§2.3, docs/protocol.md): every answer to a request with a usable ``id``
on a connection that has a lane — results, ``invalid``, ``unsupported_version``,
``unknown_type``, ``not_found``, ``conflict`` — except the codes in :data:`UNKEPT_CODES`.
``hello`` and ``ping`` are about the connection and the current mode: they are answered afresh
every time, so a register (or a test harness) that sends every hello or ping under one fixed
id, for every lane, keeps working. Their ids are still taken (§2.3): a ping under an id
another request used is ``id_reused``, and so is another request under a hello's or ping's id.
Before ``hello`` nothing is kept: a peer that has not named its lane must not be able to write
into the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from adapter import render
from adapter.journal import AnswerJournal
from adapter.metrics import DaemonMetrics
from adapter.requests import (
    REQUEST_TYPES,
    Calculate,
    Cancel,
    Confirm,
    Envelope,
    EnvelopeError,
    Hello,
    Identify,
    Ping,
    Refund,
    Request,
    message_id,
    parse_request,
    read_envelope,
    request_digest,
)
from adapter.router import Router, Unavailable
from drivers.base import Channel, ChannelClosed, Received, Rejected
from tillgate import __version__
from tillgate.errors import StorageError, ValidationError

log = structlog.get_logger("tillgate.lane")

#: answered afresh every time (docs/protocol.md §2.3): a ping reports the mode of now, and
#: registers send every hello under one fixed id; the id is kept as taken by that kind
_NEVER_KEPT = frozenset({"hello", "ping"})


def _id_reused(request_id: str) -> dict[str, Any]:
    return render.error(
        request_id, "conflict", f"id {request_id!r} was used for another request",
        reason="id_reused",
    )

MAX_OUTSTANDING = 8
IDLE_TIMEOUT_S = 120.0
BUSY_RETRY_MS = 200
#: lines without a usable id past MAX_OUTSTANDING that may wait in line (see LaneSession._read)
UNREADABLE_BACKLOG = MAX_OUTSTANDING
#: Answers with these codes are not kept: a repeat is a new attempt (§2.3). ``unauthorized`` is
#: the project's addition: it comes from a peer that has not proved its lane.
UNKEPT_CODES = frozenset(
    {"malformed", "too_large", "busy", "unavailable", "internal", "unauthorized"}
)

AnswerHook = Callable[[str, str, dict[str, Any]], Awaitable[None]]


@dataclass
class LanePolicy:
    """Which lanes may connect and with which token."""

    any_lane: bool
    tokens: dict[str, str] = field(default_factory=dict)  #: lane id → token ("" = none)
    serial_lanes: frozenset[str] = frozenset()

    def check(self, lane: str, token: str) -> str | None:
        """None when the lane may connect, else why not."""
        if lane in self.serial_lanes:
            return f"lane {lane!r} is a serial lane"
        if not self.any_lane and lane not in self.tokens:
            return f"unknown lane {lane!r}"
        expected = self.tokens.get(lane, "")
        if expected and token != expected:
            return f"wrong token for lane {lane!r}"
        return None


class Lanes:
    """Shared state of all sessions: who holds which lane, and requests in flight."""

    def __init__(
        self,
        *,
        store: str,
        router: Router,
        journal: AnswerJournal,
        policy: LanePolicy,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        after_answer: AnswerHook | None = None,
        metrics: DaemonMetrics | None = None,
        on_lane_named: Callable[[str, str], object] | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.journal = journal
        self.policy = policy
        self.idle_timeout_s = idle_timeout_s
        self.after_answer = after_answer
        self.metrics = metrics
        #: ``(peer, lane)`` when a hello on a connection without a lane names one, admitted
        #: or refused (the trace labels the connection by it)
        self.on_lane_named = on_lane_named
        self.holders: dict[str, LaneSession] = {}
        #: request id → (request digest, future answer) while the first attempt runs
        self.in_flight: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self.sessions: set[LaneSession] = set()

    async def serve(
        self,
        channel: Channel,
        *,
        fixed_lane: str | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        """Serve one connection until it closes; TCP connections idle for ``idle_timeout_s``
        (default: the lanes' setting) are closed, serial lanes never."""
        session = LaneSession(
            self,
            channel,
            fixed_lane=fixed_lane,
            idle_timeout_s=idle_timeout_s or self.idle_timeout_s,
        )
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if session.lane and self.holders.get(session.lane) is session:
                del self.holders[session.lane]

    async def claim(self, session: LaneSession, lane: str) -> None:
        older = self.holders.get(lane)
        self.holders[lane] = session
        if older is not None and older is not session:
            log.warning(
                "lane_takeover", lane=lane, old=older.channel.peer, new=session.channel.peer
            )
            await older.stop()


class LaneSession:
    """One connected register."""

    def __init__(
        self,
        lanes: Lanes,
        channel: Channel,
        *,
        fixed_lane: str | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.lanes = lanes
        self.idle_timeout_s = idle_timeout_s
        self.channel = channel
        self.fixed_lane = fixed_lane
        self.lane: str | None = fixed_lane
        #: inputs with their arrival time, for the worker
        self._queue: asyncio.Queue[tuple[Received | Rejected, float] | None] = asyncio.Queue()
        self._outstanding = 0
        self._answered = asyncio.Event()  #: set by the worker after each answer
        self._stopping = False

    async def stop(self) -> None:
        self._stopping = True
        await self.channel.close()

    async def run(self) -> None:
        """Serve the channel until its input ends or the worker dies; raises what broke the
        session (the channel's failure, or the worker's error) for the caller to log."""
        if self.fixed_lane is not None:
            await self.lanes.claim(self, self.fixed_lane)
        peer = self.channel.peer
        worker = asyncio.create_task(self._work(), name=f"lane worker {peer}")
        reader = asyncio.create_task(self._read(), name=f"lane reader {peer}")
        try:
            await asyncio.wait({reader, worker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A reader left running without its worker is a half-alive lane: requests read
            # and never answered, then `busy` for ever. So the session ends with either.
            reader.cancel()
            await asyncio.wait({reader})
            self._queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if not reader.cancelled():
            reader.result()

    async def _read(self) -> None:
        idle = self.idle_timeout_s if self.channel.transport == "tcp" else None
        receiving: asyncio.Task[Received | Rejected] | None = None
        try:
            while not self._stopping:
                if receiving is None:
                    receiving = asyncio.ensure_future(self.channel.receive())
                # Idle means no bytes in, not no messages: a register dribbling a long line
                # (or blank lines) is alive, so the wait is measured from the channel's last byte.
                timeout = None if idle is None else max(0.0, idle - self.channel.quiet_for())
                done, _ = await asyncio.wait({receiving}, timeout=timeout)
                if not done:
                    if idle is not None and self.channel.quiet_for() >= idle:
                        log.info("lane_idle_closed", lane=self.lane, peer=self.channel.peer)
                        await self.channel.close()
                        return
                    continue
                try:
                    event = receiving.result()
                except ChannelClosed:
                    return
                finally:
                    receiving = None
                arrived = time.monotonic()
                if self._outstanding >= MAX_OUTSTANDING:
                    request_id = message_id(event.message) if isinstance(event, Received) else None
                    if request_id is not None:
                        busy = render.error(
                            request_id,
                            "busy",
                            f"more than {MAX_OUTSTANDING} requests outstanding",
                            retry_after_ms=BUSY_RETRY_MS,
                        )
                        await self._send(busy)
                        self._observe(event, busy, arrived)
                        continue
                    # An answer with id: null answers the oldest unanswered line (§1.1): sent
                    # now, ahead of the queued answers, it would read as the oldest request's.
                    # So it waits in line; a peer flooding such lines is held back unread.
                    while self._outstanding >= MAX_OUTSTANDING + UNREADABLE_BACKLOG:
                        self._answered.clear()
                        await self._answered.wait()
                self._outstanding += 1
                self._queue.put_nowait((event, arrived))
        finally:
            if receiving is not None:
                receiving.cancel()

    async def _work(self) -> None:
        while (queued := await self._queue.get()) is not None:
            event, arrived = queued
            try:
                answer = await self.answer(event)
                await self._send(answer)
            finally:
                self._outstanding -= 1
                self._answered.set()
            self._observe(event, answer, arrived)

    def _observe(self, event: Received | Rejected, answer: dict[str, Any], arrived: float) -> None:
        """Count an answer, timed from its request's arrival: the time it waited behind
        other requests is part of what the register waited."""
        metrics = self.lanes.metrics
        if metrics is None:
            return
        kind = event.message.get("type") if isinstance(event, Received) else None
        label = kind if isinstance(kind, str) and kind in REQUEST_TYPES else "unreadable"
        metrics.observe(self.lane or "-", label, answer, time.monotonic() - arrived)

    async def _send(self, answer: dict[str, Any]) -> None:
        with contextlib.suppress(ChannelClosed, OSError, ConnectionError):
            await self.channel.send(answer)

    # --- one answer --------------------------------------------------------------------

    async def answer(self, event: Received | Rejected) -> dict[str, Any]:
        """The answer to one input; never raises."""
        if isinstance(event, Rejected):
            log.info(
                "bad_input",
                lane=self.lane,
                peer=self.channel.peer,
                code=event.code,
                detail=event.detail,
            )
            return render.error(None, event.code, event.detail)
        message = event.message
        request_id = message_id(message)
        try:
            return await self._answer(message, request_id)
        except Unavailable as exc:
            return render.error(
                request_id, "unavailable", str(exc), reason=exc.reason, retry_after_ms=1000
            )
        except StorageError as exc:
            ref = uuid.uuid4().hex[:12]
            log.error("storage_failed", ref=ref, error=str(exc), lane=self.lane)
            return render.error(
                request_id,
                "unavailable",
                f"storage failure (log ref {ref})",
                reason="storage",
                retry_after_ms=1000,
            )
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("internal_error", ref=ref, lane=self.lane, request_id=request_id)
            return render.error(request_id, "internal", f"internal error, log reference {ref}")

    async def _answer(self, message: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        try:
            envelope = read_envelope(message)
        except (ValidationError, EnvelopeError) as exc:
            return await self._refuse(message, request_id, exc)
        if envelope.type != "hello" and self.lane is None:
            return render.error(
                envelope.id, "unauthorized", "send hello first: this connection names no lane"
            )
        try:
            request = parse_request(envelope.type, message)
        except ValidationError as exc:
            return await self._refuse(message, envelope.id, exc)
        if isinstance(request, Hello | Ping):
            # Every hello (or ping) under one id counts as the same request and is answered
            # afresh; its id stays taken for other kinds of request. (A hello is answered
            # before its id is looked at: it is what proves the peer's lane.)
            same_kind = f"{envelope.type}:*"
            first = self._first_digest(envelope.id)
            if isinstance(request, Ping):
                if first not in (None, same_kind):
                    return _id_reused(envelope.id)
                answer = render.envelope(
                    "ping.result", envelope.id, {"mode": self.lanes.router.mode}
                )
            else:
                answer = await self._hello(envelope, request)
            if answer.get("type") != "error" and first is None:
                try:
                    self.lanes.journal.keep(envelope.id, envelope.type, same_kind, answer)
                except StorageError as exc:  # a keepalive is answered even on a full disk
                    log.error("storage_failed", lane=self.lane, error=str(exc))
            return answer

        async def routed() -> dict[str, Any]:
            try:
                return await self._dispatch(envelope.id, request)
            except ValidationError as exc:
                return render.error(envelope.id, "invalid", exc.message, field=exc.field)

        answer, fresh = await self._once(envelope.id, envelope.type, envelope.digest, routed)
        lanes = self.lanes
        if fresh and lanes.after_answer is not None and self.lane is not None:
            try:
                await lanes.after_answer(self.lane, envelope.type, answer)
            except Exception:  # a printer jam must not turn a confirm into an error
                log.exception("after_answer_failed", lane=self.lane)
        return answer

    async def _refuse(
        self,
        message: dict[str, Any],
        request_id: str | None,
        exc: ValidationError | EnvelopeError,
    ) -> dict[str, Any]:
        """A request that cannot be read (``invalid``, ``unsupported_version``,
        ``unknown_type``): kept under its id like any answer, so the id stays taken (§2.3)."""
        if isinstance(exc, ValidationError):
            refusal = render.error(request_id, "invalid", exc.message, field=exc.field)
        else:
            refusal = render.error(request_id, exc.code, str(exc))
        # Without an id there is no key; without a lane the peer has not proved who it is, and
        # must not be able to write into the journal (nor take ids the registers will use).
        if request_id is None or self.lane is None:
            return refusal
        if message.get("type") in _NEVER_KEPT:  # refused or not: registers reuse one hello id
            return refusal
        kind = message.get("type")
        kind = kind[:64] if isinstance(kind, str) else ""  # for the journal's record only

        async def refused() -> dict[str, Any]:
            return refusal

        answer, _ = await self._once(request_id, kind, request_digest(message), refused)
        return answer

    async def _once(
        self,
        request_id: str,
        kind: str,
        digest: str,
        produce: Callable[[], Awaitable[dict[str, Any]]],
    ) -> tuple[dict[str, Any], bool]:
        """The answer to a request by its id (§2.3), and whether it was made just now.

        The same id with another request is ``conflict``/``id_reused``; with the same request
        it gets the kept answer, or waits for the running first attempt. Otherwise ``produce``
        makes the answer, which is kept unless its code is in :data:`UNKEPT_CODES`.
        ``admitted`` runs once the id is known not to be reused, before any answer is returned
        (a hello binds its lane there, every time it is answered).
        """
        lanes = self.lanes
        kept = lanes.journal.lookup(request_id)
        running = lanes.in_flight.get(request_id)
        first = kept.digest if kept is not None else running[0] if running is not None else None
        if first is not None and first != digest:
            return _id_reused(request_id), False
        if kept is not None:
            return kept.answer, False
        if running is not None:
            return await asyncio.shield(running[1]), False
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        lanes.in_flight[request_id] = (digest, future)
        try:
            answer = await produce()
            code = answer.get("code") if answer.get("type") == "error" else None
            if code not in UNKEPT_CODES:
                lanes.journal.keep(request_id, kind, digest, answer)
            future.set_result(answer)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; waiters get the exception via shield
            raise
        finally:
            lanes.in_flight.pop(request_id, None)
        return answer, True

    def _first_digest(self, request_id: str) -> str | None:
        """The digest of the request first answered (or running) under ``request_id``; None
        also when the journal cannot be read (a hello or ping is answered all the same)."""
        running = self.lanes.in_flight.get(request_id)
        if running is not None:
            return running[0]
        try:
            kept = self.lanes.journal.lookup(request_id)
        except StorageError as exc:
            log.error("storage_failed", lane=self.lane, error=str(exc))
            return None
        return kept.digest if kept is not None else None

    async def _hello(self, envelope: Envelope, request: Hello) -> dict[str, Any]:
        """Answered afresh every time (see the module docstring): a hello is about this
        connection, and binds its lane whenever it is admitted."""
        refusal = self._hello_refusal(envelope.id, request)
        if self.lane is None and self.lanes.on_lane_named is not None:
            # Refused or not: `sniff LANE` is where an engineer looks for a register whose
            # hello is refused (wrong token), so its traffic goes under the lane it names.
            self.lanes.on_lane_named(self.channel.peer, request.lane)
        if refusal is not None:
            return refusal
        if self.fixed_lane is None and self.lane is None:
            await self.lanes.claim(self, request.lane)
            self.lane = request.lane
            log.info(
                "lane_hello", lane=request.lane, peer=self.channel.peer, register=request.register
            )
        return render.envelope(
            "hello.result",
            envelope.id,
            {
                "store": self.lanes.store,
                "lane": request.lane,
                "versions": [1],
                "software": f"tillgate {__version__}",
                "mode": self.lanes.router.mode,
            },
        )

    def _hello_refusal(self, request_id: str, request: Hello) -> dict[str, Any] | None:
        if self.fixed_lane is not None and request.lane != self.fixed_lane:
            return render.error(
                request_id,
                "unauthorized",
                f"this port serves lane {self.fixed_lane!r}, not {request.lane!r}",
            )
        if self.lane is not None and self.fixed_lane is None and request.lane != self.lane:
            return render.error(
                request_id,
                "conflict",
                f"this connection already serves lane {self.lane!r}",
                reason="lane",
            )
        if self.fixed_lane is None:
            refusal = self.lanes.policy.check(request.lane, request.token)
            if refusal is not None:
                log.warning("lane_refused", lane=request.lane, peer=self.channel.peer, why=refusal)
                return render.error(request_id, "unauthorized", refusal)
        return None

    async def _dispatch(self, request_id: str, request: Request) -> dict[str, Any]:
        router = self.lanes.router
        lane = self.lane or ""
        if isinstance(request, Calculate):
            return await router.calculate(request_id, lane, request)
        if isinstance(request, Confirm):
            return await router.confirm(request_id, lane, request)
        if isinstance(request, Cancel):
            return await router.cancel(request_id, lane, request)
        if isinstance(request, Refund):
            return await router.refund(request_id, lane, request)
        if isinstance(request, Identify):
            return await router.identify(request_id, lane, request)
        raise AssertionError(f"unroutable request {request!r}")
