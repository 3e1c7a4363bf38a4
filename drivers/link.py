"""The ``link`` framing (register protocol §1.2): a sans-I/O state machine for serial lines.

Theory of operation
-------------------
A frame on the wire is ``STX | LEN_HI LEN_LO | SEQ | PAYLOAD | CRC_HI CRC_LO | ETX``. The low
15 bits of LEN give the payload length (1..1024); the top bit says the message continues in the
next frame. The CRC is CRC-16/CCITT-FALSE over LEN, SEQ and PAYLOAD. Between frames a side may
send ``ACK seq``, ``NAK seq`` or a lone ``ENQ``.

Two machines share this module, and their transitions are written down in ONE place, the
tables under "Transition tables" below:

* :class:`FrameDecoder` (receiving) turns bytes into wire units (:class:`WireFrame`,
  :class:`WireControl`, :class:`WireBad`, :class:`WireNoise`). It is table-driven byte by byte,
  enforces the 200 ms inter-byte gap inside a frame, and after a failed frame *hunts*: it
  re-scans from the byte after the failed STX and treats only STX as meaningful until the line
  has been quiet for 200 ms. Ignoring ACK/NAK bytes while hunting is deliberate: a 0x06 inside
  the remains of a broken frame must never acknowledge one of our frames (a false ACK loses a
  message silently, an ignored one only costs a repeat). ``tillgate sniff`` uses the same
  decoder to print traffic.
* :class:`Link` (the :class:`~drivers.base.Framing` named ``link``) adds the reliable part. Its
  receiving side answers every frame at once (ACK before anything else queued), drops repeats
  (same SEQ *and* payload as the last accepted frame), and joins continuation frames into a
  message of at most 1 MiB (a larger one is reported once as
  :class:`~drivers.base.PayloadTooLarge` and skipped). Its sending side (the ``_TX_TABLE``
  states READY, WAITING, FAILED) keeps one unacknowledged frame, repeats it 1 s after its ETX
  and after any NAK, and after 3 repeats declares the link failed: it drops the frame (and the
  rest of its message), emits ``LinkNotice("link_failed")`` and sends ENQ every second until
  the peer answers ``ACK 0`` or sends a good frame, then goes on with the queued messages.

The register side is the same machine: two :class:`Link` objects wired back to back talk.

Time is an input. Every method that can start or check a timer takes ``now`` (a monotonic
float); :meth:`Link.next_deadline` says when :meth:`Link.handle_timer` is due. The 1 s repeat
timer is paused while a frame from the other side is being received. Given the line's baud
rate, the timer starts at the estimated end of transmission of the ETX rather than when the
bytes were queued, so a 1 KiB frame at 9600 baud (about 1.07 s on the wire) is not repeated
before it has even arrived.

Decisions where the spec is silent (documented in docs/field-guide.md):

* A NAK naming any SEQ (or 0) triggers a repeat of the outstanding frame.
* An ACK whose SEQ is neither the outstanding frame's nor 0 is ignored (``stray_ack`` notice).
* SEQ order is not checked on receipt: any frame that is not a repeat is new. A frame with
  SEQ 0 is a bad frame (``seq_zero``): it is answered ``NAK 0`` and never passed on.
* An ENQ received between the frames of a message abandons the partial message (the sender
  gave up on it); after a link failure the sending side resumes once its ENQ is answered, or
  once a good frame arrives from the peer: a register that is sending frames is there, and
  one that never answers ENQ must not get its requests acknowledged but never answered.
* Payloads of 0 bytes cannot be framed (LEN is 1..1024): sending one is a LocalProtocolError.
* A partial message whose next frame is later than a sender could still be repeating the
  last one (four tries, each a full frame on the wire plus the 1 s wait, and a second more,
  plus the time our own frames took on the line meanwhile, which the sender does not count)
  is abandoned when that frame arrives (``partial_message_dropped``): a register that
  restarted in the middle of a message sends ENQ only after a link failure, and its next
  request must not be glued to the old half and lost as ``malformed``.
"""

from __future__ import annotations

import binascii
import enum
import math
from collections import deque
from dataclasses import dataclass

from drivers.base import FramingEvent, LinkNotice, PayloadReceived, PayloadTooLarge
from tillgate.errors import LocalProtocolError

__all__ = [
    "ACK",
    "ENQ",
    "ETX",
    "MAX_FRAME_PAYLOAD",
    "MAX_MESSAGE",
    "NAK",
    "STX",
    "FrameDecoder",
    "Link",
    "WireBad",
    "WireControl",
    "WireFrame",
    "WireNoise",
    "WireUnit",
    "crc16",
    "encode_control",
    "encode_frame",
]

STX = 0x02
ETX = 0x03
ENQ = 0x05
ACK = 0x06
NAK = 0x15

#: the largest payload one frame carries
MAX_FRAME_PAYLOAD = 1024
#: the largest message (concatenated payloads)
MAX_MESSAGE = 1024 * 1024
#: LEN's top bit: the message continues in the next frame
CONTINUES = 0x8000
#: a frame's bytes may be at most this far apart; also the quiet time that ends hunting
INTER_BYTE_GAP = 0.2
#: an unacknowledged frame is repeated this long after its ETX
REPEAT_AFTER = 1.0
#: repeats before the link is declared failed
MAX_REPEATS = 3
#: how often ENQ is sent while the link is failed
ENQ_EVERY = 1.0


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    # crc_hqx is exactly this polynomial, unreflected; the init value makes it CCITT-FALSE.
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(seq: int, payload: bytes, more: bool = False) -> bytes:
    """One frame carrying ``payload`` (1..1024 bytes) with sequence number ``seq`` (1..255)."""
    if not 1 <= seq <= 255:
        raise LocalProtocolError(f"link: frame SEQ must be 1..255, got {seq}")
    if not 1 <= len(payload) <= MAX_FRAME_PAYLOAD:
        raise LocalProtocolError(
            f"link: frame payload must be 1..{MAX_FRAME_PAYLOAD} bytes, got {len(payload)}"
        )
    length = len(payload) | (CONTINUES if more else 0)
    body = bytes((length >> 8, length & 0xFF, seq)) + payload
    crc = crc16(body)
    return bytes((STX,)) + body + bytes((crc >> 8, crc & 0xFF, ETX))


def encode_control(code: int, seq: int) -> bytes:
    """``ACK seq`` / ``NAK seq`` (two bytes) or a lone ``ENQ``."""
    if code == ENQ:
        return bytes((ENQ,))
    return bytes((code, seq))


# --- wire units: what the decoder sees on the line ------------------------------------------


@dataclass(frozen=True, slots=True)
class WireFrame:
    """A frame with a good CRC and ETX."""

    seq: int
    payload: bytes
    more: bool
    raw: bytes


@dataclass(frozen=True, slots=True)
class WireControl:
    """``ACK seq``, ``NAK seq`` or ``ENQ`` (seq 0) received between frames."""

    kind: str  # "ack" | "nak" | "enq"
    seq: int


@dataclass(frozen=True, slots=True)
class WireBad:
    """A frame that failed; ``seq`` is None when the failure came before the SEQ byte."""

    reason: str  # "bad_len" | "bad_crc" | "seq_zero" | "missing_etx" | "gap"
    seq: int | None
    raw: bytes


@dataclass(frozen=True, slots=True)
class WireNoise:
    """Bytes skipped between frames (or while hunting) that mean nothing."""

    raw: bytes


WireUnit = WireFrame | WireControl | WireBad | WireNoise


# --- Transition tables -----------------------------------------------------------------------


class Rx(enum.Enum):
    """Receiving states of :class:`FrameDecoder`."""

    #: between frames: STX, ACK, NAK and ENQ mean something
    IDLE = "idle"
    #: after a failed frame: only STX means something, until 200 ms of quiet
    HUNT = "hunt"
    #: read ACK, the SEQ byte follows
    ACK_SEQ = "ack_seq"
    #: read NAK, the SEQ byte follows
    NAK_SEQ = "nak_seq"
    LEN_HI = "len_hi"
    LEN_LO = "len_lo"
    SEQ = "seq"
    PAYLOAD = "payload"
    CRC_HI = "crc_hi"
    CRC_LO = "crc_lo"
    #: the next byte must be ETX
    ETX = "etx"


class B(enum.Enum):
    """Byte classes the receiving table distinguishes."""

    STX = "stx"
    ETX = "etx"
    ACK = "ack"
    NAK = "nak"
    ENQ = "enq"
    ANY = "any"


_BYTE_CLASS = {STX: B.STX, ETX: B.ETX, ACK: B.ACK, NAK: B.NAK, ENQ: B.ENQ}

#: (state, byte class) -> (next state, action). B.ANY matches any byte without its own entry.
#: An action may end the frame (good or failed), which overrides the next state.
_RX_TABLE: dict[tuple[Rx, B], tuple[Rx, str]] = {
    (Rx.IDLE, B.STX): (Rx.LEN_HI, "start_frame"),
    (Rx.IDLE, B.ACK): (Rx.ACK_SEQ, "skip"),
    (Rx.IDLE, B.NAK): (Rx.NAK_SEQ, "skip"),
    (Rx.IDLE, B.ENQ): (Rx.IDLE, "got_enq"),
    (Rx.IDLE, B.ANY): (Rx.IDLE, "noise"),
    (Rx.HUNT, B.STX): (Rx.LEN_HI, "start_frame"),
    (Rx.HUNT, B.ANY): (Rx.HUNT, "noise"),
    (Rx.ACK_SEQ, B.ANY): (Rx.IDLE, "got_ack"),
    (Rx.NAK_SEQ, B.ANY): (Rx.IDLE, "got_nak"),
    (Rx.LEN_HI, B.ANY): (Rx.LEN_LO, "len_hi"),
    (Rx.LEN_LO, B.ANY): (Rx.SEQ, "len_lo"),  # fails on LEN 0 or > 1024
    (Rx.SEQ, B.ANY): (Rx.PAYLOAD, "seq"),
    (Rx.PAYLOAD, B.ANY): (Rx.PAYLOAD, "payload"),  # moves to CRC_HI when LEN bytes are in
    (Rx.CRC_HI, B.ANY): (Rx.CRC_LO, "crc_hi"),
    (Rx.CRC_LO, B.ANY): (Rx.ETX, "crc_lo"),
    (Rx.ETX, B.ETX): (Rx.IDLE, "end_frame"),  # fails on a bad CRC
    (Rx.ETX, B.ANY): (Rx.HUNT, "missing_etx"),
}


class Tx(enum.Enum):
    """Sending states of :class:`Link`."""

    #: no frame unacknowledged; queued frames go out at once
    READY = "ready"
    #: one frame sent and not yet acknowledged
    WAITING = "waiting"
    #: the last frame failed 3 repeats; sending ENQ every second until ``ACK 0``
    FAILED = "failed"


class TxInput(enum.Enum):
    """What happens to the sending side."""

    PAYLOAD = "payload"  # a message was queued
    ACK_OURS = "ack_ours"  # ACK naming the outstanding frame
    ACK_ZERO = "ack_zero"  # ACK 0: the answer to an ENQ
    ACK_STRAY = "ack_stray"  # ACK naming some other frame
    NAK = "nak"  # any NAK
    REPEAT_DUE = "repeat_due"  # the repeat timer expired (or a NAK came) with repeats left
    GIVE_UP = "give_up"  # the repeat timer expired (or a NAK came) after 3 repeats
    ENQ_DUE = "enq_due"  # the ENQ timer expired
    PEER_FRAME = "peer_frame"  # a good frame arrived from the peer


#: (state, input) -> (next state, action). Every pair is listed: nothing is implicit.
#: A NAK, or the repeat timer, with 3 repeats already sent arrives as GIVE_UP.
_TX_TABLE: dict[tuple[Tx, TxInput], tuple[Tx, str]] = {
    (Tx.READY, TxInput.PAYLOAD): (Tx.READY, "queue"),
    (Tx.READY, TxInput.ACK_OURS): (Tx.READY, "stray_ack"),
    (Tx.READY, TxInput.ACK_ZERO): (Tx.READY, "peer_alive"),
    (Tx.READY, TxInput.ACK_STRAY): (Tx.READY, "stray_ack"),
    (Tx.READY, TxInput.NAK): (Tx.READY, "ignore_nak"),
    (Tx.READY, TxInput.REPEAT_DUE): (Tx.READY, "nothing"),
    (Tx.READY, TxInput.GIVE_UP): (Tx.READY, "nothing"),
    (Tx.READY, TxInput.ENQ_DUE): (Tx.READY, "nothing"),
    (Tx.READY, TxInput.PEER_FRAME): (Tx.READY, "nothing"),
    (Tx.WAITING, TxInput.PAYLOAD): (Tx.WAITING, "queue"),
    (Tx.WAITING, TxInput.ACK_OURS): (Tx.READY, "acknowledged"),
    (Tx.WAITING, TxInput.ACK_ZERO): (Tx.WAITING, "peer_alive"),
    (Tx.WAITING, TxInput.ACK_STRAY): (Tx.WAITING, "stray_ack"),
    (Tx.WAITING, TxInput.NAK): (Tx.WAITING, "repeat"),
    (Tx.WAITING, TxInput.REPEAT_DUE): (Tx.WAITING, "repeat"),
    (Tx.WAITING, TxInput.GIVE_UP): (Tx.FAILED, "fail_link"),
    (Tx.WAITING, TxInput.ENQ_DUE): (Tx.WAITING, "nothing"),
    (Tx.WAITING, TxInput.PEER_FRAME): (Tx.WAITING, "nothing"),
    (Tx.FAILED, TxInput.PAYLOAD): (Tx.FAILED, "queue"),
    (Tx.FAILED, TxInput.ACK_OURS): (Tx.FAILED, "stray_ack"),
    (Tx.FAILED, TxInput.ACK_ZERO): (Tx.READY, "restored"),
    (Tx.FAILED, TxInput.ACK_STRAY): (Tx.FAILED, "stray_ack"),
    (Tx.FAILED, TxInput.NAK): (Tx.FAILED, "ignore_nak"),
    (Tx.FAILED, TxInput.REPEAT_DUE): (Tx.FAILED, "nothing"),
    (Tx.FAILED, TxInput.GIVE_UP): (Tx.FAILED, "nothing"),
    (Tx.FAILED, TxInput.ENQ_DUE): (Tx.FAILED, "send_enq"),
    (Tx.FAILED, TxInput.PEER_FRAME): (Tx.READY, "restored"),
}


# --- the receiving machine -------------------------------------------------------------------


class FrameDecoder:
    """Bytes in, wire units out; sans-I/O and table-driven (see ``_RX_TABLE``).

    ``feed(data, now)`` returns the units completed by ``data``; ``check_gap(now)`` lets the
    200 ms inter-byte timer act. Never raises on any input.
    """

    def __init__(self) -> None:
        self.state = Rx.IDLE
        self._raw = bytearray()  # the current frame from its STX
        self._noise = bytearray()
        self._length = 0
        self._more = False
        self._seq: int | None = None
        self._last_byte_at: float | None = None
        self._out: list[WireUnit] = []

    @property
    def in_frame(self) -> bool:
        """True between a frame's STX and its end (good or failed)."""
        return self.state not in (Rx.IDLE, Rx.HUNT, Rx.ACK_SEQ, Rx.NAK_SEQ)

    def deadline(self) -> float | None:
        """When :meth:`check_gap` must run: a frame stalls, or hunting may end."""
        if self._last_byte_at is None:
            return None
        if self.in_frame or self.state is Rx.HUNT:
            # the first instant at which the gap is *more than* 200 ms
            return math.nextafter(self._last_byte_at + INTER_BYTE_GAP, math.inf)
        return None

    def check_gap(self, now: float) -> list[WireUnit]:
        """Fail a frame whose next byte is more than 200 ms late; end hunting after quiet."""
        self._expire(now)
        return self._take()

    def feed(self, data: bytes, now: float) -> list[WireUnit]:
        """Decode ``data`` received at ``now``; returns the units it completed."""
        if data:
            self._expire(now)
            self._run(data)
            self._last_byte_at = now
            self._flush_noise()
        return self._take()

    # -- internals ------------------------------------------------------------------------

    def _take(self) -> list[WireUnit]:
        out, self._out = self._out, []
        return out

    def _expire(self, now: float) -> None:
        # Loop: a failed frame is re-scanned, which may start (and stall) another frame.
        while self._last_byte_at is not None and now > self._last_byte_at + INTER_BYTE_GAP:
            if self.in_frame:
                self._run(self._fail("gap"))
            elif self.state is Rx.HUNT:
                self.state = Rx.IDLE
                self._flush_noise()
            elif self.state in (Rx.ACK_SEQ, Rx.NAK_SEQ):
                self._noise.append(ACK if self.state is Rx.ACK_SEQ else NAK)
                self.state = Rx.IDLE
                self._flush_noise()
            else:
                return

    def _run(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self.state is Rx.PAYLOAD:
                # Bulk copy: the payload is opaque, no need to look at it byte by byte.
                want = self._length - (len(self._raw) - 4)
                chunk = data[i : i + want]
                self._raw += chunk
                i += len(chunk)
                if len(self._raw) - 4 == self._length:
                    self.state = Rx.CRC_HI
                continue
            byte = data[i]
            i += 1
            cls = _BYTE_CLASS.get(byte, B.ANY)
            entry = _RX_TABLE.get((self.state, cls)) or _RX_TABLE[(self.state, B.ANY)]
            next_state, action = entry
            self.state = next_state
            rescan = getattr(self, "_on_" + action)(byte)
            if rescan is not None:
                # A frame failed: hunt again from the byte after its STX.
                data = rescan + data[i:]
                i = 0

    def _flush_noise(self) -> None:
        if self._noise:
            self._out.append(WireNoise(bytes(self._noise)))
            self._noise.clear()

    def _fail(self, reason: str) -> bytes:
        raw = bytes(self._raw)
        self._out.append(WireBad(reason, self._seq, raw))
        self._raw.clear()
        self._seq = None
        self.state = Rx.HUNT
        return raw[1:]

    # -- actions named in _RX_TABLE (each gets the byte; a failed frame returns the rescan) --

    def _on_start_frame(self, byte: int) -> None:
        self._flush_noise()
        self._raw = bytearray((byte,))
        self._seq = None

    def _on_skip(self, byte: int) -> None:
        self._flush_noise()

    def _on_noise(self, byte: int) -> None:
        self._noise.append(byte)

    def _on_got_enq(self, byte: int) -> None:
        self._out.append(WireControl("enq", 0))

    def _on_got_ack(self, byte: int) -> None:
        self._out.append(WireControl("ack", byte))

    def _on_got_nak(self, byte: int) -> None:
        self._out.append(WireControl("nak", byte))

    def _on_len_hi(self, byte: int) -> None:
        self._raw.append(byte)

    def _on_len_lo(self, byte: int) -> bytes | None:
        self._raw.append(byte)
        value = (self._raw[1] << 8) | byte
        self._length = value & ~CONTINUES
        self._more = bool(value & CONTINUES)
        if not 1 <= self._length <= MAX_FRAME_PAYLOAD:
            return self._fail("bad_len")
        return None

    def _on_seq(self, byte: int) -> None:
        self._raw.append(byte)
        self._seq = byte

    def _on_payload(self, byte: int) -> None:  # pragma: no cover - bulk path
        raise AssertionError("payload bytes are copied in bulk by _run")

    def _on_crc_hi(self, byte: int) -> None:
        self._raw.append(byte)

    def _on_crc_lo(self, byte: int) -> None:
        self._raw.append(byte)

    def _on_end_frame(self, byte: int) -> bytes | None:
        self._raw.append(byte)
        body = bytes(self._raw[1:-3])
        received = (self._raw[-3] << 8) | self._raw[-2]
        if crc16(body) != received:
            return self._fail("bad_crc")
        if self._seq == 0:
            # SEQ 0 means "no frame" (§1.2): a frame carrying it is bad, answered NAK 0.
            return self._fail("seq_zero")
        assert self._seq is not None
        self._out.append(WireFrame(self._seq, body[3:], self._more, bytes(self._raw)))
        self._raw.clear()
        self._seq = None
        return None

    def _on_missing_etx(self, byte: int) -> bytes:
        self._raw.append(byte)
        return self._fail("missing_etx")


# --- the link ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OutFrame:
    payload: bytes
    more: bool
    message: int  # which queued message the frame belongs to


@dataclass(slots=True)
class _Outstanding:
    frame: _OutFrame
    seq: int
    wire: bytes
    repeats: int
    due: float
    etx_at: float  #: when the last transmission of the frame ends on the line


class Link:
    """The ``link`` framing: reliable messages over a byte line (see the module docstring).

    ``baud`` (optional) is the line's rate; with it the repeat timer counts from the estimated
    end of transmission of each frame. Without it, from when the frame was queued for sending.
    """

    name = "link"

    def __init__(self, *, baud: int | None = None) -> None:
        self.tx_state = Tx.READY
        self._decoder = FrameDecoder()
        self._byte_time = 10.0 / baud if baud else 0.0  # 8N1: 10 bits per byte
        self._line_free_at = 0.0
        self._clock: float | None = None
        self._control_out = bytearray()
        self._frame_out = bytearray()
        self._events: deque[FramingEvent] = deque()
        # sending side
        self._next_seq = 1
        self._queue: deque[_OutFrame] = deque()
        self._outstanding: _Outstanding | None = None
        self._enq_due: float | None = None
        self._messages_queued = 0
        # receiving side
        self._last_accepted: tuple[int, bytes] | None = None
        self._partial = bytearray()
        self._partial_frames = 0
        self._partial_at = 0.0  #: when the partial message's last frame was accepted
        self._partial_line_mark = 0.0  #: _frames_on_line then
        self._discarding = False
        # A frame of the message may still come this long after the previous one, plus the
        # time our own frames took on the line meanwhile: the sender's repeat timer stands
        # still while it receives them.
        self._partial_expires = (
            (MAX_REPEATS + 1) * (REPEAT_AFTER + self._byte_time * (MAX_FRAME_PAYLOAD + 7)) + 1.0
        )
        #: seconds of line time of every frame sent so far (0 without a known baud rate)
        self._frames_on_line = 0.0

    # -- Framing protocol ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the line; ``b""`` means the port closed (partial input dropped)."""
        self._advance(now)
        if not data:
            self._decoder = FrameDecoder()
            self._reset_partial()
            return
        for unit in self._decoder.feed(data, now):
            self._on_unit(unit, now)
        # A transport that only calls handle_timer when the line is quiet would never repeat
        # a frame on a line that keeps bringing noise: let due timers act here too.
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            self.handle_timer(now)

    def next_event(self) -> FramingEvent | None:
        """The next message, oversize report or link notice."""
        return self._events.popleft() if self._events else None

    def send_payload(self, payload: bytes, now: float) -> None:
        """Queue one message; it goes out in frames of up to 1024 bytes."""
        if not payload:
            raise LocalProtocolError("link: cannot send an empty message (LEN is 1..1024)")
        if len(payload) > MAX_MESSAGE:
            raise LocalProtocolError(
                f"link: message of {len(payload)} bytes exceeds the {MAX_MESSAGE}-byte limit"
            )
        self._advance(now)
        self._messages_queued += 1
        chunks = [
            payload[i : i + MAX_FRAME_PAYLOAD] for i in range(0, len(payload), MAX_FRAME_PAYLOAD)
        ]
        for index, chunk in enumerate(chunks):
            self._queue.append(_OutFrame(chunk, index < len(chunks) - 1, self._messages_queued))
        self._tx(TxInput.PAYLOAD, now)

    def data_to_send(self) -> bytes:
        """Bytes for the line: control answers first, then frames."""
        out = bytes(self._control_out + self._frame_out)
        self._control_out.clear()
        self._frame_out.clear()
        return out

    def next_deadline(self) -> float | None:
        """The earliest of: a stalled inbound frame, the repeat timer, the ENQ timer."""
        candidates = [self._decoder.deadline(), self._enq_due]
        # The repeat timer is paused while a frame from the other side is coming in.
        if self._outstanding is not None and not self._decoder.in_frame:
            candidates.append(self._outstanding.due)
        due = [t for t in candidates if t is not None]
        return min(due) if due else None

    def handle_timer(self, now: float) -> None:
        """Let expired timers act: fail a stalled frame, repeat a frame, send ENQ."""
        self._advance(now)
        for unit in self._decoder.check_gap(now):
            self._on_unit(unit, now)
        if (
            self._outstanding is not None
            and not self._decoder.in_frame
            and now >= self._outstanding.due
        ):
            self._tx(TxInput.REPEAT_DUE, now)
        if self._enq_due is not None and now >= self._enq_due:
            self._tx(TxInput.ENQ_DUE, now)

    # -- extras -------------------------------------------------------------------------------

    def send_enq(self, now: float) -> None:
        """Ask "are you there" (answered ``ACK 0``, reported as ``LinkNotice("peer_alive")``)."""
        if self.tx_state is Tx.WAITING:
            raise LocalProtocolError("link: ENQ is only allowed with no frame unacknowledged")
        self._advance(now)
        self._send_control(encode_control(ENQ, 0), now)

    @property
    def failed(self) -> bool:
        """True while the link is failed (after 3 unanswered repeats, until ENQ is answered)."""
        return self.tx_state is Tx.FAILED

    # -- receiving side -----------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if self._clock is not None and self._outstanding is not None and self._decoder.in_frame:
            # Time spent receiving the other side's frame after our ETX does not count
            # towards a repeat (before it, the 1 s has not begun).
            self._outstanding.due += max(0.0, now - max(self._clock, self._outstanding.etx_at))
        self._clock = now if self._clock is None else max(self._clock, now)

    def _on_unit(self, unit: WireUnit, now: float) -> None:
        if isinstance(unit, WireFrame):
            self._on_frame(unit, now)
        elif isinstance(unit, WireBad):
            self._send_control(encode_control(NAK, unit.seq or 0), now)
            self._notice("nak_sent", f"{unit.reason} seq={unit.seq or 0} raw={unit.raw.hex()}")
        elif isinstance(unit, WireNoise):
            self._notice("noise", unit.raw[:64].hex())
        elif unit.kind == "enq":
            self._send_control(encode_control(ACK, 0), now)
            if self._partial or self._discarding:
                self._notice("partial_message_dropped", f"{self._partial_frames} frame(s)")
                self._reset_partial()
        elif unit.kind == "ack":
            if unit.seq == 0:
                self._tx(TxInput.ACK_ZERO, now, unit.seq)
            elif self._outstanding is not None and unit.seq == self._outstanding.seq:
                self._tx(TxInput.ACK_OURS, now, unit.seq)
            else:
                self._tx(TxInput.ACK_STRAY, now, unit.seq)
        else:
            self._tx(TxInput.NAK, now, unit.seq)

    def _on_frame(self, frame: WireFrame, now: float) -> None:
        self._send_control(encode_control(ACK, frame.seq), now)
        if self.tx_state is Tx.FAILED:
            self._tx(TxInput.PEER_FRAME, now)
        if self._last_accepted == (frame.seq, frame.payload):
            self._notice("repeat_received", f"seq={frame.seq}")
            return
        self._last_accepted = (frame.seq, frame.payload)
        allowed = self._partial_expires + (self._frames_on_line - self._partial_line_mark)
        if (self._partial or self._discarding) and now - self._partial_at > allowed:
            self._notice(
                "partial_message_dropped",
                f"{self._partial_frames} frame(s), the next came {now - self._partial_at:.1f} s "
                "later",
            )
            self._reset_partial()
        self._partial_at = now
        self._partial_line_mark = self._frames_on_line
        if self._discarding:
            if not frame.more:
                self._reset_partial()
            return
        self._partial += frame.payload
        self._partial_frames += 1
        if len(self._partial) > MAX_MESSAGE:
            self._events.append(PayloadTooLarge(MAX_MESSAGE))
            self._partial.clear()
            self._discarding = frame.more
            return
        if not frame.more:
            self._events.append(PayloadReceived(bytes(self._partial)))
            self._reset_partial()

    def _reset_partial(self) -> None:
        self._partial.clear()
        self._partial_frames = 0
        self._discarding = False

    # -- sending side -------------------------------------------------------------------------

    def _tx(self, event: TxInput, now: float, seq: int = 0) -> None:
        sent = self._outstanding
        if event in (TxInput.NAK, TxInput.REPEAT_DUE) and sent and sent.repeats >= MAX_REPEATS:
            event = TxInput.GIVE_UP
        next_state, action = _TX_TABLE[(self.tx_state, event)]
        self.tx_state = next_state
        getattr(self, "_tx_" + action)(now, seq)
        if self.tx_state is Tx.READY and self._queue:
            self._transmit(self._queue.popleft(), now)

    def _tx_queue(self, now: float, seq: int) -> None:
        """The payload is already queued; READY sends it once this returns."""

    def _tx_nothing(self, now: float, seq: int) -> None:
        """Nothing to do in this state."""

    def _tx_stray_ack(self, now: float, seq: int) -> None:
        self._notice("stray_ack", f"seq={seq}")

    def _tx_ignore_nak(self, now: float, seq: int) -> None:
        self._notice("nak_received", f"seq={seq}, nothing outstanding")

    def _tx_peer_alive(self, now: float, seq: int) -> None:
        self._notice("peer_alive")

    def _tx_acknowledged(self, now: float, seq: int) -> None:
        self._outstanding = None

    def _tx_repeat(self, now: float, seq: int) -> None:
        sent = self._outstanding
        assert sent is not None
        sent.repeats += 1
        sent.etx_at = self._put_frame_on_line(sent.wire, now)
        sent.due = sent.etx_at + REPEAT_AFTER
        self._notice("repeat_sent", f"seq={sent.seq} repeat={sent.repeats} nak_seq={seq}")

    def _tx_send_enq(self, now: float, seq: int) -> None:
        self._send_control(encode_control(ENQ, 0), now)
        self._enq_due = now + ENQ_EVERY

    def _tx_restored(self, now: float, seq: int) -> None:
        self._enq_due = None
        self._notice("link_restored")

    def _tx_fail_link(self, now: float, seq: int) -> None:
        sent = self._outstanding
        assert sent is not None
        self._outstanding = None
        dropped = sum(1 for f in self._queue if f.message == sent.frame.message)
        self._queue = deque(f for f in self._queue if f.message != sent.frame.message)
        self._notice(
            "link_failed",
            f"seq={sent.seq} message={sent.frame.message} dropped after {MAX_REPEATS} repeats"
            + (f" with {dropped} more frame(s) of its message" if dropped else ""),
        )
        self._tx_send_enq(now, 0)

    def _transmit(self, frame: _OutFrame, now: float) -> None:
        seq = self._next_seq
        self._next_seq = 1 if seq == 255 else seq + 1
        wire = encode_frame(seq, frame.payload, frame.more)
        etx_at = self._put_frame_on_line(wire, now)
        self._outstanding = _Outstanding(frame, seq, wire, 0, etx_at + REPEAT_AFTER, etx_at)
        self.tx_state = Tx.WAITING

    def _send_control(self, data: bytes, now: float) -> None:
        self._put_on_line(self._control_out, data, now)

    def _put_frame_on_line(self, wire: bytes, now: float) -> float:
        """:meth:`_put_on_line` for a frame, counted in :attr:`_frames_on_line`."""
        self._frames_on_line += len(wire) * self._byte_time
        return self._put_on_line(self._frame_out, wire, now)

    def _put_on_line(self, buffer: bytearray, data: bytes, now: float) -> float:
        """Queue bytes; returns when their last byte should have left at the line's rate."""
        buffer += data
        self._line_free_at = max(self._line_free_at, now) + len(data) * self._byte_time
        return self._line_free_at

    def _notice(self, kind: str, detail: str = "") -> None:
        self._events.append(LinkNotice(kind, detail))
