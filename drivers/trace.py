"""Line tracing for field engineers: the daemon's side (:class:`TraceHub`) and ``sniff``'s side.

Theory of operation
-------------------
The daemon creates one :class:`TraceHub` with a unix socket path in its state directory and
asks it for a :class:`Tap` per lane (or per connection, before the lane is known). A tap's
:meth:`Tap.trace` and :meth:`Tap.on_notice` are the ``trace``/``on_notice`` callbacks of
:class:`~drivers.channel.FramedChannel`. They cost one check when nobody listens; when someone
does, each call becomes a :class:`TraceRecord` put on that subscriber's bounded queue (a slow
subscriber loses records, counted, rather than slowing a lane down).

A TCP connection's lane is known only once its ``hello`` has been read, after the hello's own
bytes were traced; until then its records are labelled by the peer (``tcp:HOST:PORT``). The tap
holds them (the last :data:`HELD_LIMIT`), and when the daemon names the lane, which it does for
a refused hello too, the held records go to that lane's subscribers under the lane's name. So
``sniff 01`` shows the register's hello, refused or not, and what came before it.

``tillgate sniff LANE`` connects to the socket, sends ``{"lane": "LANE"}`` (``*`` for every
lane) as one JSON line and then reads one JSON record per line. :class:`SniffPrinter` is the
sans-I/O formatter: records in, printable lines out. For a ``link`` lane it decodes each
direction with the link core's own :class:`~drivers.link.FrameDecoder`, so what it prints is
what the daemon understood: frames with SEQ, length, continuation and payload, ACK/NAK/ENQ,
and the hex of bad frames and noise. For a ``lines`` lane it prints each line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TextIO

from drivers.base import LinkNotice
from drivers.link import FrameDecoder, WireBad, WireControl, WireFrame, WireNoise, WireUnit
from tillgate.errors import TillgateError

__all__ = [
    "SOCKET_NAME",
    "SniffPrinter",
    "Tap",
    "TraceError",
    "TraceHub",
    "TraceRecord",
    "sniff",
]

#: the hub's socket file name inside the daemon's state directory
SOCKET_NAME = "sniff.sock"
QUEUE_LIMIT = 10_000
#: records kept per connection until a hello names its lane (a hello is a few frames)
HELD_LIMIT = 200
PAYLOAD_PREVIEW = 240
#: bytes per record at most: a long read (a 70 KB request line) is traced as several records,
#: so that every record line (the bytes in hex) stays below the 64 KiB sniff reads as one line
RECORD_BYTES = 16384
#: how long closing the hub waits for its sniff clients' handlers to end
CLOSE_WAIT_S = 2.0


class TraceError(TillgateError):
    """The daemon's trace socket cannot be reached or answered with an error."""


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One traced event: bytes in/out of a lane, or a link notice. ``at`` is wall-clock time."""

    lane: str
    framing: str
    direction: str  # "in" (from the register) | "out" (to it) | "notice"
    at: float
    data: bytes = b""
    kind: str = ""
    detail: str = ""

    def to_json(self) -> str:
        """The record as one JSON line (bytes as hex)."""
        body: dict[str, Any] = {
            "lane": self.lane,
            "framing": self.framing,
            "dir": self.direction,
            "t": self.at,
        }
        if self.direction == "notice":
            body.update(kind=self.kind, detail=self.detail)
        else:
            body["hex"] = self.data.hex()
        return json.dumps(body, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str | bytes) -> TraceRecord:
        """Parse a line written by :meth:`to_json`; raises ValueError on anything else."""
        body = json.loads(line)
        if not isinstance(body, dict):
            raise ValueError("trace record is not a JSON object")
        return cls(
            lane=str(body["lane"]),
            framing=str(body.get("framing", "")),
            direction=str(body["dir"]),
            at=float(body["t"]),
            data=bytes.fromhex(body.get("hex", "")),
            kind=str(body.get("kind", "")),
            detail=str(body.get("detail", "")),
        )


@dataclass(eq=False)
class _Subscriber:
    lane: str
    queue: asyncio.Queue[TraceRecord] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    dropped: int = 0


class Tap:
    """The trace callbacks for one lane (``lane`` may be set once ``hello`` names it)."""

    def __init__(self, hub: TraceHub, peer: str, framing: str, lane: str = "") -> None:
        self._hub = hub
        self.peer = peer
        self.framing = framing
        self.lane = lane
        #: records published before the lane was known, for that lane's subscribers
        self.held: deque[TraceRecord] = deque(maxlen=HELD_LIMIT)

    @property
    def name(self) -> str:
        """The lane name if known, else the peer."""
        return self.lane or self.peer

    def trace(self, direction: str, data: bytes, monotonic_time: float) -> None:
        """FramedChannel's ``trace`` callback."""
        if self._hub.listening:
            at = monotonic_time + self._hub.wall_offset
            for start in range(0, len(data), RECORD_BYTES):
                piece = data[start : start + RECORD_BYTES]
                self._hub.publish(self, TraceRecord(self.name, self.framing, direction, at, piece))

    def on_notice(self, notice: LinkNotice) -> None:
        """FramedChannel's ``on_notice`` callback."""
        if self._hub.listening:
            # The bytes' clock, not time.time(): the wall clock may have been stepped since
            # the hub started, and sniff orders a notice against the bytes by its time.
            at = time.monotonic() + self._hub.wall_offset
            record = TraceRecord(
                self.name, self.framing, "notice", at, b"", notice.kind, notice.detail
            )
            self._hub.publish(self, record)


class TraceHub:
    """Serves lane traces to ``tillgate sniff`` clients on a unix socket."""

    def __init__(self, socket_path: str | os.PathLike[str]) -> None:
        self.socket_path = Path(socket_path)
        self.wall_offset = time.time() - time.monotonic()
        self._subscribers: set[_Subscriber] = set()
        self._taps: dict[str, Tap] = {}
        self._server: asyncio.AbstractServer | None = None
        #: each sniff client's connection, and the task serving it
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[Any] | None] = {}

    @property
    def listening(self) -> bool:
        """True while at least one sniff client is connected."""
        return bool(self._subscribers)

    def tap(self, peer: str, framing: str = "", lane: str = "") -> Tap:
        """The callbacks for connection ``peer`` (the same tap on every call for one peer).

        Pass ``tap.trace`` and ``tap.on_notice`` to the channel; a non-empty ``framing`` or
        ``lane`` given later (say once ``hello`` names the lane) updates the tap. Naming the lane
        hands the records held until then to the lane's subscribers.
        """
        tap = self._taps.get(peer)
        if tap is None:
            tap = self._taps[peer] = Tap(self, peer, framing, lane)
        tap.framing = framing or tap.framing
        if lane and lane != tap.lane:
            tap.lane = lane
            self._hand_over_held(tap)
        return tap

    def _hand_over_held(self, tap: Tap) -> None:
        held = [dataclasses.replace(record, lane=tap.lane) for record in tap.held]
        tap.held.clear()
        for subscriber in self._subscribers:
            # "*" and peer subscribers were given these records when they were published.
            if subscriber.lane == tap.lane:
                for record in held:
                    try:
                        subscriber.queue.put_nowait(record)
                    except asyncio.QueueFull:
                        subscriber.dropped += 1

    def forget(self, peer: str) -> None:
        """The connection ``peer`` is gone."""
        self._taps.pop(peer, None)

    def publish(self, tap: Tap, record: TraceRecord) -> None:
        """Hand ``record`` to every subscriber of ``tap``'s lane (hold it while none is known)."""
        if not tap.lane:
            tap.held.append(record)
        for subscriber in self._subscribers:
            if subscriber.lane in ("*", tap.lane, tap.peer):
                try:
                    subscriber.queue.put_nowait(record)
                except asyncio.QueueFull:
                    subscriber.dropped += 1

    async def start(self) -> None:
        """Listen on the socket (a stale socket file from a crashed daemon is replaced)."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.socket_path)
        except OSError as exc:
            raise TraceError(f"trace socket {self.socket_path}: {exc.strerror or exc}") from exc
        os.chmod(self.socket_path, 0o660)

    async def close(self) -> None:
        """Stop serving and remove the socket file."""
        if self._server is not None:
            self._server.close()
            # Aborted, not closed: a client that stopped reading (`sniff | less`, paused) has
            # a full buffer that a close would wait to send, its handler stuck in drain().
            for writer in list(self._clients):
                writer.transport.abort()
            # Python 3.11's wait_closed() does not wait for the connection handlers, and one
            # still running when the daemon's loop ends is cancelled, which 3.11 logs as an
            # asyncio error with a traceback, one per sniff client. Aborted, they end at once.
            handlers = {task for task in self._clients.values() if task is not None}
            if handlers:
                await asyncio.wait(handlers, timeout=CLOSE_WAIT_S)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def lanes(self) -> list[str]:
        """Names of the taps currently known."""
        return sorted({tap.name for tap in self._taps.values()})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        subscriber: _Subscriber | None = None
        waiting: list[asyncio.Future[Any]] = []
        self._clients[writer] = asyncio.current_task()
        try:
            request = json.loads(await asyncio.wait_for(reader.readline(), 10))
            lane = str(request["lane"]) if isinstance(request, dict) else ""
            if not lane:
                raise ValueError("no lane")
            subscriber = _Subscriber(lane)
            self._subscribers.add(subscriber)
            hello = {"ok": True, "lane": lane, "lanes": self.lanes()}
            writer.write(json.dumps(hello).encode() + b"\n")
            await writer.drain()
            closed = asyncio.ensure_future(reader.read())  # the client hanging up
            waiting.append(closed)
            while not closed.done():
                getter = asyncio.ensure_future(subscriber.queue.get())
                waiting.append(getter)
                await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                waiting.remove(getter)
                if not getter.done():
                    getter.cancel()
                    break
                lines = [getter.result()]
                while not subscriber.queue.empty():
                    lines.append(subscriber.queue.get_nowait())
                if subscriber.dropped:
                    writer.write(_dropped_line(lane, subscriber.dropped))
                    subscriber.dropped = 0
                writer.write("".join(r.to_json() + "\n" for r in lines).encode())
                await writer.drain()
        except (ValueError, KeyError, TimeoutError):
            with contextlib.suppress(OSError):
                writer.write(b'{"ok": false, "error": "send {\\"lane\\": \\"NAME\\"} first"}\n')
        except (OSError, ConnectionError):
            pass
        finally:
            for future in waiting:
                future.cancel()
            if subscriber is not None:
                self._subscribers.discard(subscriber)
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            del self._clients[writer]


def _dropped_line(lane: str, count: int) -> bytes:
    record = TraceRecord(lane, "", "notice", time.time(), b"", "trace_dropped", f"{count} records")
    return record.to_json().encode() + b"\n"


# --- the sniff side ----------------------------------------------------------------------------


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().strftime("%H:%M:%S.%f")[:-3]


def _preview(payload: bytes, full: bool) -> str:
    text = payload.decode("utf-8", errors="backslashreplace")
    if not full and len(text) > PAYLOAD_PREVIEW:
        return text[:PAYLOAD_PREVIEW] + f"… ({len(payload)} bytes)"
    return text


def _hex(data: bytes, full: bool) -> str:
    shown = data if full or len(data) <= 64 else data[:64]
    more = "" if shown is data else f" … ({len(data)} bytes)"
    return shown.hex(" ") + more


class SniffPrinter:
    """Trace records in, printable lines out (sans-I/O; one decoder per lane and direction)."""

    #: ``reg>`` register to tillgate, ``<tg`` tillgate to register, ``!!`` a link notice
    ARROWS: ClassVar[dict[str, str]] = {"in": "reg>", "out": "<tg ", "notice": "  !!"}

    def __init__(self, *, full: bool = False) -> None:
        self.full = full
        self._decoders: dict[tuple[str, str], FrameDecoder] = {}
        self._partial_lines: dict[tuple[str, str], bytes] = {}

    def lines(self, record: TraceRecord) -> Iterator[str]:
        """Printable lines for one record."""
        yield from self._expired(record.lane, record.at)
        head = f"{_clock(record.at)} {record.lane} {self.ARROWS.get(record.direction, '?')}"
        if record.direction == "notice":
            yield f"{head} {record.kind} {record.detail}".rstrip()
        elif record.framing == "link":
            yield from self._link(head, record)
        else:
            yield from self._lines(head, record)

    def _expired(self, lane: str, now: float) -> Iterator[str]:
        """What the 200 ms gap ended before ``now`` on ``lane``, either way, at the instant it
        ended. A register that stops in the middle of a frame sends nothing more: the daemon
        NAKs the cut-off frame on its own timer, and the bad frame is shown before that NAK,
        not when the register next sends something."""
        due = sorted((deadline, direction, decoder)
                     for (name, direction), decoder in self._decoders.items()
                     if name == lane and (deadline := decoder.deadline()) is not None
                     and now >= deadline)  # fmt: skip
        for deadline, direction, decoder in due:
            head = f"{_clock(deadline)} {lane} {self.ARROWS[direction]}"
            yield from self._units(head, decoder.check_gap(now))

    def _link(self, head: str, record: TraceRecord) -> Iterator[str]:
        key = (record.lane, record.direction)
        decoder = self._decoders.setdefault(key, FrameDecoder())
        # Record times are wall-clock; the decoder only compares them (200 ms gaps).
        yield from self._units(head, decoder.feed(record.data, record.at))

    def _units(self, head: str, units: list[WireUnit]) -> Iterator[str]:
        for unit in units:
            if isinstance(unit, WireFrame):
                more = " +more" if unit.more else ""
                yield (
                    f"{head} FRAME seq={unit.seq} len={len(unit.payload)}{more} "
                    f"{_preview(unit.payload, self.full)}"
                )
            elif isinstance(unit, WireControl):
                yield f"{head} {unit.kind.upper()}" + ("" if unit.kind == "enq" else f" {unit.seq}")
            elif isinstance(unit, WireBad):
                seq = "?" if unit.seq is None else str(unit.seq)
                yield f"{head} BAD {unit.reason} seq={seq} | {_hex(unit.raw, self.full)}"
            elif isinstance(unit, WireNoise):
                yield f"{head} NOISE | {_hex(unit.raw, self.full)}"

    def _lines(self, head: str, record: TraceRecord) -> Iterator[str]:
        key = (record.lane, record.direction)
        data = self._partial_lines.pop(key, b"") + record.data
        *complete, rest = data.split(b"\n")
        if rest:
            self._partial_lines[key] = rest
        for raw in complete:
            line = raw.removesuffix(b"\r")
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                yield f"{head} BAD not UTF-8 | {_hex(line, self.full)}"
                continue
            yield f"{head} {_preview(line, self.full)}"


async def sniff(
    socket_path: str | os.PathLike[str],
    lane: str,
    out: TextIO,
    *,
    full: bool = False,
    limit: int | None = None,
) -> int:
    """Print ``lane``'s traffic from the daemon at ``socket_path`` until it closes.

    Returns the number of records printed (stops after ``limit`` records if given).
    """
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise TraceError(
            f"no daemon is listening on {socket_path} (is tillgate running with this config?)"
        ) from exc
    except OSError as exc:
        raise TraceError(f"trace socket {socket_path}: {exc.strerror or exc}") from exc
    printer = SniffPrinter(full=full)
    count = 0
    try:
        writer.write(json.dumps({"lane": lane}).encode() + b"\n")
        await writer.drain()
        hello = json.loads(await reader.readline() or b"{}")
        if not hello.get("ok"):
            raise TraceError(f"trace socket {socket_path}: {hello.get('error', 'no answer')}")
        known = ", ".join(hello.get("lanes", [])) or "none yet"
        print(f"# sniffing lane {lane} (lanes now: {known}); Ctrl-C stops", file=out, flush=True)
        while limit is None or count < limit:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                break  # the end, or a daemon stopping aborted us within a record
            try:
                record = TraceRecord.from_json(line)
            except (ValueError, KeyError) as exc:
                print(f"# unreadable trace record: {exc}", file=out)
                continue
            for text in printer.lines(record):
                print(text, file=out, flush=True)
            count += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()
    return count
