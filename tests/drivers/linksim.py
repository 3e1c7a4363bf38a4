"""A fake-clock wire between two :class:`~drivers.link.Link` cores, for tests.

Bytes put on the wire arrive after ``latency`` seconds, one byte every ``byte_time`` seconds
(a serial line), and may be damaged by a ``mangle`` hook. The loop jumps from event to event
(deliveries and the cores' deadlines), so a run of many seconds of protocol time is instant.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.base import FramingEvent, LinkNotice, PayloadReceived
from drivers.link import FrameDecoder, Link, WireControl

Mangle = Callable[[bytes], bytes]


@dataclass
class Side:
    link: Link
    received: list[bytes] = field(default_factory=list)
    notices: list[LinkNotice] = field(default_factory=list)
    events: list[FramingEvent] = field(default_factory=list)


class Wire:
    """Two links connected back to back on a fake clock."""

    def __init__(
        self,
        a: Link | None = None,
        b: Link | None = None,
        *,
        latency: float = 0.005,
        byte_time: float = 0.0,
        mangle_ab: Mangle | None = None,
        mangle_ba: Mangle | None = None,
    ) -> None:
        self.a = Side(a or Link())
        self.b = Side(b or Link())
        self.now = 0.0
        self.latency = latency
        self.byte_time = byte_time
        self._mangle = {"ab": mangle_ab, "ba": mangle_ba}
        # (arrival time, order, direction, bytes)
        self._in_flight: list[tuple[float, int, str, bytes]] = []
        self._order = 0
        self._line_free = {"ab": 0.0, "ba": 0.0}
        self.sent_bytes = {"ab": bytearray(), "ba": bytearray()}
        # Decoders fed exactly what each link is fed, to see which ACKs the links acted on.
        self._shadow = {"ab": FrameDecoder(), "ba": FrameDecoder()}
        self.acks_seen: dict[str, Counter[int]] = {"ab": Counter(), "ba": Counter()}

    def _collect(self) -> None:
        for direction, side in (("ab", self.a), ("ba", self.b)):
            data = side.link.data_to_send()
            if not data:
                continue
            self.sent_bytes[direction] += data
            mangle = self._mangle[direction]
            if mangle is not None:
                data = mangle(data)
            start = max(self.now, self._line_free[direction])
            if self.byte_time:
                # One delivery per byte: the receiver sees real inter-byte timing.
                for i, byte in enumerate(data):
                    at = start + (i + 1) * self.byte_time + self.latency
                    self._in_flight.append((at, self._order, direction, bytes((byte,))))
                    self._order += 1
                self._line_free[direction] = start + len(data) * self.byte_time
            else:
                self._in_flight.append((start + self.latency, self._order, direction, data))
                self._order += 1

    def _drain_events(self) -> None:
        for side in (self.a, self.b):
            while (event := side.link.next_event()) is not None:
                side.events.append(event)
                if isinstance(event, PayloadReceived):
                    side.received.append(event.data)
                elif isinstance(event, LinkNotice):
                    side.notices.append(event)

    def run(self, until: float, *, stop: Callable[[], bool] | None = None) -> None:
        """Advance the clock to ``until`` (or until ``stop()`` is true after some step)."""
        self._collect()
        while True:
            self._drain_events()
            if stop is not None and stop():
                return
            candidates = [t for t, *_ in self._in_flight]
            for side in (self.a, self.b):
                deadline = side.link.next_deadline()
                if deadline is not None:
                    candidates.append(deadline)
            if not candidates:
                self.now = max(self.now, until)
                return
            nxt = max(min(candidates), self.now)
            if nxt > until:
                self.now = until
                return
            self.now = nxt
            arriving = sorted(x for x in self._in_flight if x[0] <= self.now)
            self._in_flight = [x for x in self._in_flight if x[0] > self.now]
            for _, _, direction, data in arriving:
                target = self.b if direction == "ab" else self.a
                target.link.receive_data(data, self.now)
                for unit in self._shadow[direction].feed(data, self.now):
                    if isinstance(unit, WireControl) and unit.kind == "ack":
                        self.acks_seen[direction][unit.seq] += 1
            for side in (self.a, self.b):
                deadline = side.link.next_deadline()
                if deadline is not None and deadline <= self.now:
                    side.link.handle_timer(self.now)
            self._collect()


def bit_flipper(rate: float, seed: int) -> Mangle:
    """Damage about ``rate`` of the bytes, each by one flipped bit (line noise on RS-232)."""
    rng = random.Random(seed)

    def mangle(data: bytes) -> bytes:
        out = bytearray(data)
        for i in range(len(out)):
            if rng.random() < rate:
                out[i] ^= 1 << rng.randrange(8)
        return bytes(out)

    return mangle


def byte_replacer(rate: float, seed: int) -> Mangle:
    """Replace about ``rate`` of the bytes with a different random byte (harsher than bits).

    Under this model a frame damaged in many bits passes CRC-16 once in 65536, and a NAK can
    turn into an ACK; tests using it run on fixed seeds so that these odds cannot make them
    flaky.
    """
    rng = random.Random(seed)

    def mangle(data: bytes) -> bytes:
        out = bytearray(data)
        for i in range(len(out)):
            if rng.random() < rate:
                out[i] ^= rng.randrange(1, 256)
        return bytes(out)

    return mangle


def forged_acks(wire: Wire, direction: str) -> set[int]:
    """SEQs acknowledged more often on the damaged line than the receiver really did.

    ``direction`` is the way the ACKs travel (``"ba"`` for ACKs of frames a sent to b).
    """
    true: Counter[int] = Counter()
    for unit in FrameDecoder().feed(bytes(wire.sent_bytes[direction]), 0.0):
        if isinstance(unit, WireControl) and unit.kind == "ack":
            true[unit.seq] += 1
    return {seq for seq, count in wire.acks_seen[direction].items() if count > true[seq]}


def failed_messages(notices: list[LinkNotice]) -> set[int]:
    """Message numbers (1-based, in send order) a side reported as dropped by a link failure."""
    failed: set[int] = set()
    for notice in notices:
        if notice.kind == "link_failed":
            for part in notice.detail.split():
                if part.startswith("message="):
                    failed.add(int(part.removeprefix("message=")))
    return failed
