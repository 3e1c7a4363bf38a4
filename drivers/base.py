"""The contracts between framings, transports and the daemon.

A *framing* is a sans-I/O core: bytes go in with :meth:`Framing.receive_data`, events come
out of :meth:`Framing.next_event`; payloads go in with :meth:`Framing.send_payload` and bytes
come out of :meth:`Framing.data_to_send`. Time is an input: a framing that has timers says when
it next needs attention (:meth:`Framing.next_deadline`) and is told the time when it gets it
(:meth:`Framing.handle_timer`). It never sleeps, reads a clock or touches a socket, so the same
core runs over TCP, a serial port or a test's byte list unchanged.

A *channel* is what the daemon sees of one connected lane: whole messages (decoded JSON
objects) in, whole messages out, whatever the transport and framing underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class PayloadReceived:
    """A complete message payload (still bytes: JSON decoding is the channel's job)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PayloadTooLarge:
    """A message exceeded the framing's size limit and was skipped."""

    limit: int


@dataclass(frozen=True, slots=True)
class LinkNotice:
    """Something a field engineer wants to see in a trace: a NAK, a repeat, a failed link."""

    kind: str
    detail: str = ""


FramingEvent = PayloadReceived | PayloadTooLarge | LinkNotice


class Framing(Protocol):
    """A sans-I/O framing core (``lines``, ``link``)."""

    #: the framing's name in configuration
    name: str

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the transport; ``b""`` means the peer closed."""

    def next_event(self) -> FramingEvent | None:
        """The next event, or None when more data (or a timer) is needed."""

    def send_payload(self, payload: bytes, now: float) -> None:
        """Queue one whole message payload for sending."""

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport now (may be empty)."""

    def next_deadline(self) -> float | None:
        """The monotonic time at which :meth:`handle_timer` must be called, if any."""

    def handle_timer(self, now: float) -> None:
        """Let timers that expired by ``now`` act (repeats, ACK windows, inter-byte gaps)."""


@dataclass(frozen=True, slots=True)
class Received:
    """A message from the register: a decoded JSON object."""

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input that cannot become a message; the daemon answers it with an ``error``."""

    code: Literal["malformed", "too_large"]
    detail: str


ChannelEvent = Received | Rejected


class ChannelClosed(Exception):  # noqa: N818 - reads as an event, like EOFError
    """The peer went away; raised by :meth:`Channel.receive`."""


class Channel(Protocol):
    """One connected lane as the daemon sees it."""

    #: where the lane is: ``tcp:127.0.0.1:50412`` or ``serial:/dev/ttyUSB0``
    peer: str
    #: ``tcp`` or ``serial``
    transport: str

    async def receive(self) -> ChannelEvent:
        """The next message or rejection; raises :class:`ChannelClosed` at end of input."""

    async def send(self, message: dict[str, Any]) -> None:
        """Encode and send one message (waits until written to the transport)."""

    async def close(self) -> None:
        """Close the transport; pending sends are flushed first where possible."""

    def quiet_for(self) -> float:
        """Seconds since any byte last came in (or since the channel opened): the idle time.

        Bytes count whether or not they complete a message (a partial line, a blank line).
        """
