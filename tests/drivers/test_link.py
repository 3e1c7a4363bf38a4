"""The ``link`` core, on a fake clock: bytes one by one, random splits, damage and stalls."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import Framing, FramingEvent, LinkNotice, PayloadReceived, PayloadTooLarge
from drivers.link import (
    ACK,
    ENQ,
    ETX,
    MAX_FRAME_PAYLOAD,
    MAX_MESSAGE,
    NAK,
    STX,
    FrameDecoder,
    Link,
    Rx,
    Tx,
    WireBad,
    WireControl,
    WireFrame,
    WireNoise,
    crc16,
    encode_control,
    encode_frame,
)
from tests.drivers.linksim import (
    Mangle,
    Wire,
    bit_flipper,
    byte_replacer,
    failed_messages,
    forged_acks,
)
from tillgate.errors import LocalProtocolError


def events(link: Link) -> list[FramingEvent]:
    out = []
    while (event := link.next_event()) is not None:
        out.append(event)
    return out


def payloads(link: Link) -> list[bytes]:
    return [e.data for e in events(link) if isinstance(e, PayloadReceived)]


def msg(i: int, size: int = 40) -> bytes:
    body = json.dumps({"v": 1, "type": "ping", "id": f"m{i}"}).encode()
    return body + b" " * max(0, size - len(body))


# --- wire format ----------------------------------------------------------------------------


def test_link_is_a_framing() -> None:
    framing: Framing = Link()  # checked by mypy against the Protocol
    assert framing.name == "link"


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1


def test_frame_layout() -> None:
    frame = encode_frame(7, b"{}")
    assert frame[0] == STX
    assert frame[-1] == ETX
    assert frame[1:4] == bytes((0x00, 0x02, 7))
    assert frame[4:6] == b"{}"
    assert int.from_bytes(frame[6:8], "big") == crc16(frame[1:6])
    more = encode_frame(1, b"x" * 1024, more=True)
    assert more[1:3] == bytes((0x84, 0x00))


@pytest.mark.parametrize(("seq", "size"), [(0, 1), (256, 1), (1, 0), (1, 1025)])
def test_frame_limits_are_local_errors(seq: int, size: int) -> None:
    with pytest.raises(LocalProtocolError, match="link:"):
        encode_frame(seq, b"x" * size)


def test_decoder_byte_by_byte() -> None:
    stream = encode_frame(1, b"hello") + encode_control(ACK, 9) + encode_control(ENQ, 0)
    decoder = FrameDecoder()
    units = []
    for i, byte in enumerate(stream):
        units += decoder.feed(bytes((byte,)), i * 0.001)
    assert units == [
        WireFrame(1, b"hello", False, encode_frame(1, b"hello")),
        WireControl("ack", 9),
        WireControl("enq", 0),
    ]


_units = st.one_of(
    st.builds(
        encode_frame,
        st.integers(1, 255),
        st.binary(min_size=1, max_size=300),
        st.booleans(),
    ),
    # partial, not lambdas: hypothesis describes a lambda by parsing its source (see
    # tests/loyalty/test_documents.py::_json_nested)
    st.builds(partial(encode_control, ACK), st.integers(0, 255)),
    st.builds(partial(encode_control, NAK), st.integers(0, 255)),
    st.just(bytes((ENQ,))),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_units, max_size=8), st.data())
def test_decoder_random_splits_give_the_same_units(
    chunks: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(chunks)
    whole = FrameDecoder().feed(stream, 0.0)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder()
    split: list[object] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        split += decoder.feed(stream[last:cut], 0.0)
        last = cut
    assert split == whole
    assert len(whole) == len(chunks)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10), st.lists(st.floats(0, 0.5), max_size=10))
def test_arbitrary_bytes_never_raise(chunks: list[bytes], gaps: list[float]) -> None:
    link = Link()
    now = 0.0
    for i, chunk in enumerate(chunks):
        now += gaps[i] if i < len(gaps) else 0.01
        link.receive_data(chunk, now)
        link.handle_timer(now)
        events(link)
        link.data_to_send()
    link.handle_timer(now + 5)


def test_garbage_between_frames_is_noise_and_frames_survive() -> None:
    decoder = FrameDecoder()
    units = decoder.feed(b"\xff\x41junk" + encode_frame(3, b"ok") + b"\x99", 0.0)
    assert units[0] == WireNoise(b"\xff\x41junk")
    assert units[1] == WireFrame(3, b"ok", False, encode_frame(3, b"ok"))
    assert units[2] == WireNoise(b"\x99")


def test_hunting_restarts_after_the_failed_stx() -> None:
    # A bogus STX with LEN 0x7fff fails at once; the real frame right after it is found.
    good = encode_frame(4, b"data")
    units = FrameDecoder().feed(bytes((STX, 0x7F, 0xFF)) + good, 0.0)
    assert isinstance(units[0], WireBad)
    assert units[0].reason == "bad_len"
    assert [u for u in units if isinstance(u, WireFrame)] == [WireFrame(4, b"data", False, good)]


def test_a_frame_hidden_inside_a_broken_frame_is_found() -> None:
    inner = encode_frame(9, b"inner")
    # An outer "frame" claiming 20 payload bytes swallows the inner frame, then its CRC fails.
    outer = bytes((STX, 0x00, 20, 1)) + inner + b"\x00" * (20 - len(inner)) + b"\x00\x00" + b"\x03"
    units = FrameDecoder().feed(outer, 0.0)
    bad = [u for u in units if isinstance(u, WireBad)]
    assert bad[0].reason == "bad_crc"
    assert bad[0].seq == 1
    assert WireFrame(9, b"inner", False, inner) in units


def test_acks_are_ignored_while_hunting_and_heard_after_quiet() -> None:
    decoder = FrameDecoder()
    broken = bytearray(encode_frame(2, b"abc"))
    broken[5] ^= 0xFF
    units = decoder.feed(bytes(broken) + encode_control(ACK, 1), 0.0)
    assert not any(isinstance(u, WireControl) for u in units)
    states = [decoder.state]
    decoder.check_gap(0.25)  # hunting ends after 200 ms of quiet
    states.append(decoder.state)
    assert states == [Rx.HUNT, Rx.IDLE]
    assert decoder.feed(encode_control(ACK, 1), 0.3) == [WireControl("ack", 1)]


def test_missing_etx() -> None:
    frame = bytearray(encode_frame(5, b"x"))
    frame[-1] = 0x04
    units = FrameDecoder().feed(bytes(frame), 0.0)
    assert isinstance(units[0], WireBad)
    assert (units[0].reason, units[0].seq) == ("missing_etx", 5)


# --- one link, driven by hand ----------------------------------------------------------------


def test_receiver_acks_at_once_and_passes_the_message() -> None:
    link = Link()
    link.receive_data(encode_frame(1, b'{"a":1}'), 10.0)
    assert link.data_to_send() == bytes((ACK, 1))
    assert payloads(link) == [b'{"a":1}']


def test_ack_goes_out_before_the_answer_frame() -> None:
    link = Link()
    link.receive_data(encode_frame(1, b"request"), 0.0)
    link.send_payload(b"answer", 0.0)  # answered before the transport took the ACK
    out = link.data_to_send()
    assert out.startswith(bytes((ACK, 1)))
    assert out[2:] == encode_frame(1, b"answer")


def test_bad_crc_is_naked_with_its_seq() -> None:
    frame = bytearray(encode_frame(6, b"payload"))
    frame[5] ^= 0x01
    link = Link()
    link.receive_data(bytes(frame), 0.0)
    assert link.data_to_send() == bytes((NAK, 6))
    kinds = [e.kind for e in events(link) if isinstance(e, LinkNotice)]
    assert "nak_sent" in kinds


def test_over_long_len_is_naked_with_seq_zero() -> None:
    link = Link()
    link.receive_data(bytes((STX, 0x04, 0x01, 1)), 0.0)  # LEN 1025
    assert link.data_to_send() == bytes((NAK, 0))


def test_a_data_frame_with_seq_zero_is_naked_and_not_passed_on() -> None:
    # SEQ 0 means "no frame" (answer to ENQ, NAK that names none): a frame cannot carry it.
    body = bytes((0x00, 0x07, 0)) + b'{"a":1}'
    zero = bytes((STX,)) + body + crc16(body).to_bytes(2, "big") + bytes((ETX,))
    assert isinstance(FrameDecoder().feed(zero, 0.0)[0], WireBad)
    link = Link()
    link.receive_data(zero, 0.0)
    assert link.data_to_send() == bytes((NAK, 0))
    assert payloads(link) == []
    link.receive_data(encode_frame(1, b'{"a":1}'), 0.5)
    assert link.data_to_send() == bytes((ACK, 1))
    assert payloads(link) == [b'{"a":1}']


def test_a_stall_inside_a_frame_is_naked_after_200ms() -> None:
    frame = encode_frame(3, b"stalled frame")
    link = Link()
    link.receive_data(frame[:6], 0.0)
    assert link.next_deadline() == pytest.approx(0.2)
    link.handle_timer(0.1)
    assert link.data_to_send() == b""
    link.handle_timer(0.21)
    assert link.data_to_send() == bytes((NAK, 3))
    # The rest arriving late is not a frame; the repeat is.
    link.receive_data(frame[6:], 0.5)
    assert payloads(link) == []
    link.receive_data(frame, 1.2)
    assert link.data_to_send() == bytes((ACK, 3))
    assert payloads(link) == [b"stalled frame"]


def test_a_gap_of_exactly_200ms_is_not_more_than_200ms() -> None:
    # §1.2 NAKs "a gap of more than 200 ms between bytes of a frame".
    frame = encode_frame(3, b'{"a":1}')
    link = Link()
    link.receive_data(frame[:5], 10.0)
    deadline = link.next_deadline()
    assert deadline is not None
    assert deadline > 10.2
    link.handle_timer(10.2)
    link.receive_data(frame[5:], 10.2)
    assert link.data_to_send() == bytes((ACK, 3))
    assert payloads(link) == [b'{"a":1}']


def test_slow_but_steady_bytes_are_fine() -> None:
    frame = encode_frame(1, b"slow")
    link = Link()
    for i, byte in enumerate(frame):
        link.receive_data(bytes((byte,)), i * 0.19)
        link.handle_timer(i * 0.19)
    assert payloads(link) == [b"slow"]


def test_enq_is_answered_ack_zero() -> None:
    link = Link()
    link.receive_data(bytes((ENQ,)), 0.0)
    assert link.data_to_send() == bytes((ACK, 0))


def test_repeats_are_acked_and_not_passed_on() -> None:
    link = Link()
    link.receive_data(encode_frame(8, b"same"), 0.0)
    link.receive_data(encode_frame(8, b"same"), 1.0)
    assert link.data_to_send() == bytes((ACK, 8, ACK, 8))
    evs = events(link)
    assert [e for e in evs if isinstance(e, PayloadReceived)] == [PayloadReceived(b"same")]
    assert LinkNotice("repeat_received", "seq=8") in evs
    # Same SEQ, new payload is a new frame.
    link.receive_data(encode_frame(8, b"other"), 2.0)
    assert payloads(link) == [b"other"]


def test_sender_repeats_after_one_second_then_fails_the_link() -> None:
    link = Link()
    link.send_payload(b"hello", 100.0)
    first = link.data_to_send()
    assert first == encode_frame(1, b"hello")
    assert link.next_deadline() == pytest.approx(101.0)
    for n, t in enumerate((101.0, 102.0, 103.0), start=1):
        link.handle_timer(t - 0.001)
        assert link.data_to_send() == b""
        link.handle_timer(t)
        assert link.data_to_send() == first, f"repeat {n}"
    link.send_payload(b"queued", 103.5)
    assert link.data_to_send() == b""  # one unacknowledged frame per direction
    link.handle_timer(104.0)
    assert link.failed
    assert link.data_to_send() == bytes((ENQ,))
    notices = [e for e in events(link) if isinstance(e, LinkNotice)]
    assert [n.kind for n in notices].count("repeat_sent") == 3
    assert any(n.kind == "link_failed" and "message=1" in n.detail for n in notices)
    link.handle_timer(105.0)
    assert link.data_to_send() == bytes((ENQ,))  # every second until answered
    link.receive_data(bytes((ACK, 0)), 105.1)
    assert link.tx_state is not Tx.FAILED
    # The failed frame is never resent; the queued message goes out with the next SEQ.
    assert link.data_to_send() == encode_frame(2, b"queued")
    assert any(isinstance(e, LinkNotice) and e.kind == "link_restored" for e in events(link))


def test_nak_triggers_an_immediate_repeat() -> None:
    link = Link()
    link.send_payload(b"x", 0.0)
    frame = link.data_to_send()
    link.receive_data(bytes((NAK, 1)), 0.1)
    assert link.data_to_send() == frame
    assert link.next_deadline() == pytest.approx(1.1)
    link.receive_data(bytes((ACK, 1)), 0.2)
    assert link.next_deadline() is None


def test_repeat_is_due_even_if_the_line_never_goes_quiet() -> None:
    link = Link()
    link.send_payload(b"x", 0.0)
    frame = link.data_to_send()
    for i in range(1, 12):  # noise every 100 ms; handle_timer is never called
        link.receive_data(b"\xff", i * 0.1)
    assert link.data_to_send() == frame


def test_stray_ack_does_not_acknowledge() -> None:
    link = Link()
    link.send_payload(b"x", 0.0)
    link.data_to_send()
    link.receive_data(bytes((ACK, 2)), 0.1)
    assert link.next_deadline() == pytest.approx(1.0)
    assert any(isinstance(e, LinkNotice) and e.kind == "stray_ack" for e in events(link))


def test_receiving_a_frame_pauses_the_repeat_timer() -> None:
    link = Link()
    link.send_payload(b"ours", 0.0)
    link.data_to_send()
    inbound = encode_frame(1, b"theirs" * 100)
    # Their frame trickles in from 0.9 s to 1.5 s: 0.6 s that do not count.
    for part, t in ((slice(0, 10), 0.9), (slice(10, 200), 1.05), (slice(200, 300), 1.2)):
        link.receive_data(inbound[part], t)
        link.handle_timer(t)
    link.receive_data(inbound[300:500], 1.35)
    link.receive_data(inbound[500:], 1.5)
    assert link.data_to_send() == bytes((ACK, 1))  # no repeat yet
    assert link.next_deadline() == pytest.approx(1.0 + 0.6)
    link.handle_timer(1.6)
    assert link.data_to_send() == encode_frame(1, b"ours")


def test_a_frame_received_before_our_etx_does_not_delay_the_repeat() -> None:
    # "1 s after its ETX (time spent receiving a frame from the other side does not count)":
    # the 1 s starts at the ETX, so a frame that came in before it takes none of it.
    link = Link(baud=9600)
    link.send_payload(b"x" * 1024, 0.0)
    etx = len(link.data_to_send()) * 10 / 9600
    inbound = encode_frame(1, b"y" * 208)
    for i in range(0, len(inbound), 20):
        t = 0.1 + i * 10 / 9600
        link.receive_data(inbound[i : i + 20], t)
        link.handle_timer(t)
    assert payloads(link) == [b"y" * 208]
    assert link.next_deadline() == pytest.approx(etx + 1.0)


def test_baud_rate_moves_the_repeat_timer_past_the_etx() -> None:
    link = Link(baud=9600)
    link.send_payload(b"x" * 1024, 0.0)
    wire = link.data_to_send()
    on_line = len(wire) * 10 / 9600
    assert on_line > 1.0
    assert link.next_deadline() == pytest.approx(on_line + 1.0)


def test_seq_wraps_from_255_to_1() -> None:
    wire = Wire()
    for i in range(300):
        wire.a.link.send_payload(msg(i), wire.now)
    wire.run(until=60.0)
    assert wire.b.received == [msg(i) for i in range(300)]
    seqs = [
        u.seq
        for u in FrameDecoder().feed(bytes(wire.sent_bytes["ab"]), 0)
        if isinstance(u, WireFrame)
    ]
    assert seqs[:255] == list(range(1, 256))
    assert seqs[255:258] == [1, 2, 3]
    assert 0 not in seqs


def test_continuation_frames_make_one_message() -> None:
    message = json.dumps({"lines": ["Масло подсолнечное"] * 200}, ensure_ascii=False).encode()
    assert len(message) > 3 * MAX_FRAME_PAYLOAD
    wire = Wire()
    wire.a.link.send_payload(message, 0.0)
    wire.run(until=10.0)
    assert wire.b.received == [message]
    frames = [
        u for u in FrameDecoder().feed(bytes(wire.sent_bytes["ab"]), 0) if isinstance(u, WireFrame)
    ]
    assert [f.more for f in frames] == [True] * (len(frames) - 1) + [False]
    assert all(len(f.payload) == MAX_FRAME_PAYLOAD for f in frames[:-1])


def test_oversize_message_is_reported_and_skipped() -> None:
    link = Link()
    seq = 1
    now = 0.0
    chunk = b"x" * MAX_FRAME_PAYLOAD
    for _ in range(MAX_MESSAGE // MAX_FRAME_PAYLOAD + 3):  # a bit over 1 MiB, in frames
        link.receive_data(encode_frame(seq, chunk, more=True), now)
        seq = seq % 255 + 1
        now += 0.01
    link.receive_data(encode_frame(seq, b"end of big one"), now)
    link.receive_data(encode_frame(seq % 255 + 1, b"next"), now)
    evs = [e for e in events(link) if not isinstance(e, LinkNotice)]
    assert evs == [PayloadTooLarge(MAX_MESSAGE), PayloadReceived(b"next")]


def test_sending_oversize_or_empty_is_a_local_error() -> None:
    link = Link()
    with pytest.raises(LocalProtocolError, match="exceeds"):
        link.send_payload(b"x" * (MAX_MESSAGE + 1), 0.0)
    with pytest.raises(LocalProtocolError, match="empty"):
        link.send_payload(b"", 0.0)


def test_enq_drops_a_partial_message() -> None:
    link = Link()
    link.receive_data(encode_frame(1, b'{"part":', more=True), 0.0)
    link.receive_data(bytes((ENQ,)), 5.0)
    link.receive_data(encode_frame(2, b'{"whole":1}'), 5.1)
    assert payloads(link) == [b'{"whole":1}']


def test_a_register_that_restarted_mid_message_does_not_lose_its_next_request() -> None:
    link = Link(baud=115200)
    link.receive_data(encode_frame(1, b'{"v":1,"typ', more=True), 0.0)
    # Powered off and back: no ENQ (its link never failed), a new request, SEQ from 1 again.
    link.receive_data(encode_frame(1, b'{"v":1,"type":"ping","id":"after"}'), 10.0)
    found = events(link)
    assert [e.data for e in found if isinstance(e, PayloadReceived)] == [
        b'{"v":1,"type":"ping","id":"after"}'
    ]
    [dropped] = [e for e in found if isinstance(e, LinkNotice)
                 and e.kind == "partial_message_dropped"]
    assert dropped.detail == "1 frame(s), the next came 10.0 s later"


def test_a_message_whose_sender_was_receiving_our_answers_meanwhile_is_kept_whole() -> None:
    # The register's second frame is lost three times while tillgate streams four 1 KiB
    # answers: the register's repeat timer stands still while it receives them (§1.2), so
    # its repeats come later than four tries on a quiet line, and the message is still whole.
    lost = {"tries": 0}

    def lose_second_frame(data: bytes) -> bytes:
        if lost["tries"] < 3 and data[:1] == bytes((STX,)) and data[3:4] == b"\x02":
            lost["tries"] += 1
            return b""
        return data

    wire = Wire(Link(baud=9600), Link(baud=9600), latency=0.002, byte_time=10 / 9600,
                mangle_ab=lose_second_frame)
    for i in range(4):
        wire.b.link.send_payload(msg(i, 1000), 0.0)
    request = msg(99, 2500)
    wire.a.link.send_payload(request, 0.0)
    wire.run(until=60.0)
    assert lost["tries"] == 3
    assert wire.b.received == [request]
    assert not [n for n in wire.b.notices if n.kind == "partial_message_dropped"]
    assert len(wire.a.received) == 4


@pytest.mark.parametrize("baud", [9600, 115200])
def test_a_frame_repeated_three_times_still_continues_its_message(baud: int) -> None:
    link = Link(baud=baud)
    link.receive_data(encode_frame(1, b"x" * MAX_FRAME_PAYLOAD, more=True), 0.0)
    # The sender's worst case: its next full frame lost three times, each repeated 1 s
    # after its ETX, the fourth try arriving a full frame's wire time later.
    wire_time = (MAX_FRAME_PAYLOAD + 7) * 10 / baud
    late = 4 * (1.0 + wire_time)
    link.receive_data(encode_frame(2, b"y" * MAX_FRAME_PAYLOAD, more=True), late)
    link.receive_data(encode_frame(3, b"z"), late + wire_time)
    assert payloads(link) == [b"x" * MAX_FRAME_PAYLOAD + b"y" * MAX_FRAME_PAYLOAD + b"z"]


# --- peer pairs ---------------------------------------------------------------------------------


def test_peer_pair_full_duplex() -> None:
    wire = Wire(byte_time=10 / 9600)
    for i in range(5):
        wire.a.link.send_payload(msg(i, 300), 0.0)
        wire.b.link.send_payload(msg(100 + i, 300), 0.0)
    wire.run(until=30.0)
    assert wire.b.received == [msg(i, 300) for i in range(5)]
    assert wire.a.received == [msg(100 + i, 300) for i in range(5)]
    assert not any(n.kind == "repeat_sent" for n in wire.a.notices + wire.b.notices)


def test_lost_ack_gives_one_repeat_and_no_duplicate() -> None:
    dropped: list[bytes] = []

    def lose_first_ack(data: bytes) -> bytes:
        if not dropped and data[:1] == bytes((ACK,)):
            dropped.append(data)
            return data[2:]
        return data

    wire = Wire(mangle_ba=lose_first_ack)
    wire.a.link.send_payload(b"once", 0.0)
    wire.run(until=5.0)
    assert dropped
    assert wire.b.received == [b"once"]
    assert [n.kind for n in wire.a.notices].count("repeat_sent") == 1
    assert any(n.kind == "repeat_received" for n in wire.b.notices)


def test_silent_peer_fails_the_link_and_enq_brings_it_back() -> None:
    cut = {"on": True}
    wire = Wire(mangle_ab=lambda d: b"" if cut["on"] else d)
    wire.a.link.send_payload(b"lost", 0.0)
    wire.a.link.send_payload(b"kept", 0.0)
    wire.run(until=4.5)
    assert wire.a.link.failed
    cut["on"] = False
    wire.run(until=10.0)
    assert wire.b.received == [b"kept"]
    assert failed_messages(wire.a.notices) == {1}
    assert any(n.kind == "link_restored" for n in wire.a.notices)


def check_noisy_run(seed: int, rate: float, noise: Callable[[float, int], Mangle]) -> None:
    """Exactly once, or reported failed; a silent loss only where noise forged the ACK.

    ACK/NAK carry no check, so a damaged control byte can acknowledge a frame that never
    arrived (the register's repeat with the same ``id`` covers that). Every silent loss must
    be one of those: the ACKs delivered are compared with the ACKs really sent.
    """
    count = 25
    wire = Wire(
        byte_time=10 / 115200,
        mangle_ab=noise(rate, seed),
        mangle_ba=noise(rate, seed + 1),
    )
    sent_a = [msg(i) for i in range(count)]
    sent_b = [msg(1000 + i) for i in range(count)]
    for m in sent_a:
        wire.a.link.send_payload(m, 0.0)
    for m in sent_b:
        wire.b.link.send_payload(m, 0.0)
    wire.run(until=600.0)
    for sender, receiver, sent, acks in (
        (wire.a, wire.b, sent_a, "ba"),
        (wire.b, wire.a, sent_b, "ab"),
    ):
        assert len(receiver.received) == len(set(receiver.received)), "a message arrived twice"
        assert set(receiver.received) <= set(sent), "a damaged payload got through"
        assert receiver.received == [m for m in sent if m in receiver.received], "order changed"
        failed = failed_messages(sender.notices)
        forged = forged_acks(wire, acks)
        # One frame per message and fewer than 255 of them: SEQ = message number.
        for number, m in enumerate(sent, start=1):
            assert m in receiver.received or number in failed or number in forged, (
                f"message {number} vanished"
            )


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.002, 0.01, 0.02]))
def test_line_noise_delivers_each_message_once_or_reports_it(seed: int, rate: float) -> None:
    check_noisy_run(seed, rate, bit_flipper)


@pytest.mark.parametrize("seed", range(6))
def test_random_byte_damage_on_fixed_seeds(seed: int) -> None:
    check_noisy_run(seed, 0.01 if seed % 2 else 0.03, byte_replacer)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=2500), min_size=1, max_size=4),
    st.data(),
)
def test_link_random_splits_deliver_the_same_messages(
    messages: list[bytes], data: st.DataObject
) -> None:
    sender = Link()
    for m in messages:
        sender.send_payload(m, 0.0)
    # Acknowledge each frame as it goes so the sender releases the next one.
    receiver = Link()
    stream = bytearray()
    delivered: list[bytes] = []
    now = 0.0
    while wire := sender.data_to_send():
        stream += wire
        cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
        last = 0
        for cut in [*cuts, len(wire)]:
            if cut > last:
                now += 0.01
                receiver.receive_data(wire[last:cut], now)
                last = cut
        delivered += payloads(receiver)
        sender.receive_data(receiver.data_to_send(), now)
    assert delivered == messages


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 7))
def test_a_flipped_bit_never_delivers_a_wrong_payload(position: int, bit: int) -> None:
    message = json.dumps({"v": 1, "type": "ping", "id": "flip"}).encode()
    flipped: list[int] = []

    def flip_once(wire: bytes) -> bytes:
        if flipped or not wire:
            return wire
        out = bytearray(wire)
        index = position % len(out)
        out[index] ^= 1 << bit
        flipped.append(index)
        return bytes(out)

    wire = Wire(mangle_ab=flip_once)
    wire.a.link.send_payload(message, 0.0)
    wire.run(until=10.0)
    assert wire.b.received == [message]
    assert not failed_messages(wire.a.notices)


def test_a_good_frame_from_a_register_that_ignores_enq_brings_the_link_back() -> None:
    link = Link()
    link.send_payload(b"lost answer", 0.0)
    now = 0.0
    while not link.failed:
        deadline = link.next_deadline()
        assert deadline is not None
        now = deadline
        link.handle_timer(now)
    link.send_payload(b"next answer", now)
    link.data_to_send()
    now += 3.0
    link.handle_timer(now)
    assert link.data_to_send() == bytes((ENQ,))  # still failed: ENQ, no frame
    link.receive_data(encode_frame(1, b"a new request"), now + 0.1)
    assert not link.failed
    sent = link.data_to_send()
    assert sent.startswith(bytes((ACK, 1)))  # the register's frame is acknowledged first
    assert encode_frame(2, b"next answer") in sent  # then the queued answer goes out
