"""A :class:`~drivers.base.Channel` made of any framing core over an asyncio byte stream.

Theory of operation: one pump task owns the read side. It feeds received bytes to the framing,
lets the framing's timers fire at their deadlines, writes whatever the framing wants sent
(ACKs, repeats, queued frames) and turns framing events into channel events on a queue.
:meth:`FramedChannel.send` hands a payload to the framing and flushes. Because the pump runs on
its own, a framing with acknowledgements (``link``) keeps its line alive while the daemon is busy
pricing a receipt. JSON decoding lives here, once, for every framing.

A framing that raises, while receiving or while sending, is the channel's failure: the channel
closes, :meth:`FramedChannel.receive` raises that error (not a quiet :class:`ChannelClosed`)
and a send sees the channel closed. So whoever reads the channel learns what broke it, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from drivers.base import (
    ChannelClosed,
    ChannelEvent,
    Framing,
    LinkNotice,
    PayloadReceived,
    PayloadTooLarge,
    Received,
    Rejected,
)
from drivers.lines import BOM

TraceCallback = Callable[[str, bytes, float], None]
NoticeCallback = Callable[[LinkNotice], None]
READ_CHUNK = 65536
#: events waiting for the lane beyond which the pump stops reading. A peer that sends faster
#: than the lane answers is then held back by TCP's window or the serial line's flow control,
#: not buffered in the daemon's memory; timers (ACKs, repeats) still run meanwhile.
MAX_QUEUED_EVENTS = 64


#: a \u escape of a UTF-16 surrogate (D800..DFFF) somewhere in the text: worth a closer look
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: the most digits an integer of a message is converted with (see decode_message)
_MAX_INT_DIGITS = 4000


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_int(digits: str) -> int | float:
    if len(digits) <= _MAX_INT_DIGITS:
        return int(digits)
    return -math.inf if digits.startswith("-") else math.inf


def decode_message(payload: bytes) -> ChannelEvent:
    """Payload bytes → a JSON object, or a ``malformed`` rejection saying why."""
    if payload.startswith(BOM):
        payload = payload[len(BOM) :]
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected("malformed", f"not UTF-8 at byte {exc.start}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        return Rejected("malformed", f"not JSON: {exc}")
    except ValueError:
        # Python will not convert an integer of over 4 300 digits (quadratic time). It is
        # still JSON, so the message is read with such numbers as infinity, which every
        # check of a field refuses by name (`invalid`, not `malformed`).
        try:
            value = json.loads(text, parse_constant=_reject_constant, parse_int=_json_int)
        except (ValueError, RecursionError) as still:
            return Rejected("malformed", f"not JSON: {still}")
    if not isinstance(value, dict):
        return Rejected("malformed", f"not a JSON object but {type(value).__name__}")
    # Valid UTF-8 can still spell a lone surrogate as a \u escape. Python decodes it into a
    # str that no encoder accepts, so it would fail much later (a digest, the journal, a log);
    # it is not Unicode text, and is turned away here, before anything reads the message.
    if _SURROGATE_ESCAPE.search(text) and (surrogate := _lone_surrogate(value)) is not None:
        return Rejected("malformed", f"not valid Unicode: a lone surrogate \\u{ord(surrogate):04x}")
    return Received(value)


def _lone_surrogate(value: object) -> str | None:
    """The first lone surrogate in any key or string of a decoded JSON value, if any."""
    pending: list[object] = [value]
    while pending:  # a loop, not recursion: nesting as deep as json.loads allows is fine
        item = pending.pop()
        if isinstance(item, str):
            if found := _SURROGATE.search(item):
                return found.group()
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def encode_message(message: dict[str, Any]) -> bytes:
    """One message as compact UTF-8 JSON (no LF inside: safe for every framing)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


class FramedChannel:
    """A lane connection: a framing core pumped over an asyncio reader/writer pair."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framing: Framing,
        *,
        peer: str,
        transport: str,
        trace: TraceCallback | None = None,
        on_notice: NoticeCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer = peer
        self.transport = transport
        self.framing = framing
        self._reader = reader
        self._writer = writer
        self._trace = trace
        self._on_notice = on_notice
        self._clock = clock
        self._events: asyncio.Queue[ChannelEvent | None] = asyncio.Queue()
        self._write_lock = asyncio.Lock()
        #: set by send(): the framing may have a new, earlier deadline (a repeat timer) that
        #: the pump, waiting for bytes, must start counting towards
        self._wakeup = asyncio.Event()
        self._closed = False
        #: what broke the pump other than the connection (a framing core's bug, a plug-in):
        #: raised by receive() instead of a quiet ChannelClosed
        self._failure: Exception | None = None
        self._last_input = clock()
        self._pump = asyncio.create_task(self._run(), name=f"pump {peer}")

    async def receive(self) -> ChannelEvent:
        event = await self._events.get()
        if self._events.qsize() == MAX_QUEUED_EVENTS - 1:  # just below: a paused pump reads on
            self._wakeup.set()
        if event is None:
            self._events.put_nowait(None)  # every later receive sees the end too
            if self._failure is not None:
                raise self._failure
            raise ChannelClosed(self.peer)
        return event

    def quiet_for(self) -> float:
        return self._clock() - self._last_input

    async def send(self, message: dict[str, Any]) -> None:
        if self._closed:
            raise ChannelClosed(self.peer)
        payload = encode_message(message)
        try:
            self.framing.send_payload(payload, self._clock())
            await self._flush()
        except (OSError, ConnectionError):
            # The line is gone: later sends are refused here rather than written into a dead
            # transport (which asyncio logs as a warning per write after the fifth).
            await self.close()
            raise
        except Exception as exc:
            # Recorded like a failure of the pump, so the reader of this channel (the one
            # that decides whether the lane is served again) raises it, with its traceback,
            # instead of the sender dying on its own.
            if self._failure is None:
                self._failure = exc
            await self.close()
            raise ChannelClosed(self.peer) from exc
        self._wakeup.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pump.cancel()
        # Wait for the pump without taking its cancellation (or error) as ours: a caller that
        # is itself being cancelled (a daemon stopping) must still see its CancelledError.
        await asyncio.wait({self._pump})
        if not self._writer.is_closing():
            with contextlib.suppress(Exception):
                await self._flush()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._events.put_nowait(None)

    async def _flush(self) -> None:
        async with self._write_lock:
            data = self.framing.data_to_send()
            if not data:
                return
            if self._trace is not None:
                self._trace("out", data, self._clock())
            self._writer.write(data)
            await self._writer.drain()

    def _drain_events(self) -> None:
        while (event := self.framing.next_event()) is not None:
            if isinstance(event, PayloadReceived):
                self._events.put_nowait(decode_message(event.data))
            elif isinstance(event, PayloadTooLarge):
                self._events.put_nowait(
                    Rejected("too_large", f"message over {event.limit} bytes skipped")
                )
            elif self._on_notice is not None:
                self._on_notice(event)

    async def _run(self) -> None:
        reading: asyncio.Task[bytes] | None = None
        try:
            while True:
                deadline = self.framing.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - self._clock())
                if reading is None and self._events.qsize() < MAX_QUEUED_EVENTS:
                    reading = asyncio.ensure_future(self._reader.read(READ_CHUNK))
                woken = asyncio.ensure_future(self._wakeup.wait())
                waiting = {woken} if reading is None else {reading, woken}
                done, _ = await asyncio.wait(waiting, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                self._wakeup.clear()
                if reading in done:
                    data = reading.result()
                    reading = None
                    if data:
                        self._last_input = self._clock()
                    if data and self._trace is not None:
                        self._trace("in", data, self._clock())
                    self.framing.receive_data(data, self._clock())
                    if not data:
                        self._drain_events()
                        break
                # Timers fire on time even on a line that never goes quiet (constant noise).
                deadline = self.framing.next_deadline()
                if deadline is not None and self._clock() >= deadline:
                    self.framing.handle_timer(self._clock())
                self._drain_events()
                await self._flush()
        except (OSError, ConnectionError):
            pass
        except Exception as exc:  # noqa: BLE001 - not the line's doing: receive() raises it
            if self._failure is None:
                self._failure = exc
        finally:
            if reading is not None:
                reading.cancel()
            self._events.put_nowait(None)
