"""The serial transport over real pseudo-terminals, loop:// and socket:// ports."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

import pytest

from drivers.base import ChannelClosed, LinkNotice, Received
from drivers.channel import FramedChannel, encode_message
from drivers.link import Link, encode_frame
from drivers.serial import open_serial_channel, open_serial_connection
from tests.drivers.linksim import failed_messages
from tests.drivers.ptys import NoisyRelay, link_register, master_streams, pty_pair
from tillgate.errors import DeviceError

TIMEOUT = 20.0


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def ping(i: int) -> dict[str, Any]:
    return {"v": 1, "type": "ping", "id": f"r-{i}"}


def test_link_messages_both_ways_over_a_pty() -> None:
    async def scenario() -> None:
        with pty_pair() as pty:
            register = await link_register(pty.master_fd)
            lane = await open_serial_channel(pty.path, 115200, Link(baud=115200))
            assert lane.peer == f"serial:{pty.path}"
            assert lane.transport == "serial"
            for i in range(3):
                await register.send(ping(i))
            got = [await lane.receive() for _ in range(3)]
            assert got == [Received(ping(i)) for i in range(3)]
            big = {"v": 1, "type": "calculate.result", "id": "r-0", "text": "Молоко " * 900}
            await lane.send(big)
            assert await register.receive() == Received(big)
            await lane.close()
            await register.close()

    run(scenario())


def test_baud_rate_is_set_on_the_port() -> None:
    async def scenario() -> None:
        with pty_pair() as pty:
            _, writer = await open_serial_connection(pty.path, 9600)
            port = writer.transport.get_extra_info("serial")
            assert port.baudrate == 9600
            assert (port.bytesize, port.parity, port.stopbits) == (8, "N", 1)
            assert (port.xonxoff, port.rtscts, port.dsrdtr) == (False, False, False)
            writer.close()
            await writer.wait_closed()

    run(scenario())


def test_port_that_vanishes_ends_the_channel() -> None:
    async def scenario() -> None:
        with pty_pair() as pty:
            lane = await open_serial_channel(pty.path, 9600, Link())
            os.close(pty.master_fd)
            with pytest.raises(ChannelClosed):
                await lane.receive()
            await lane.close()

    run(scenario())


def test_missing_port_is_a_device_error_naming_it() -> None:
    async def scenario() -> None:
        with pytest.raises(DeviceError, match="/dev/ttyNOPE9: cannot open at 9600 baud"):
            await open_serial_connection("/dev/ttyNOPE9", 9600)

    run(scenario())


def test_loop_url_port_runs_in_threads() -> None:
    async def scenario() -> None:
        reader, writer = await open_serial_connection("loop://", 19200)
        writer.write(b"\x02hello\x03")
        await writer.drain()
        assert await reader.readexactly(7) == b"\x02hello\x03"
        writer.close()
        await writer.wait_closed()

    run(scenario())


def test_socket_url_port_carries_a_link_channel() -> None:
    async def scenario() -> None:
        accepted: asyncio.Queue[FramedChannel] = asyncio.Queue()

        async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await accepted.put(FramedChannel(r, w, Link(), peer="reg", transport="tcp"))

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        lane = await open_serial_channel(f"socket://127.0.0.1:{port}", 9600, Link())
        register = await accepted.get()
        await register.send(ping(1))
        assert await lane.receive() == Received(ping(1))
        await lane.send({"v": 1, "type": "ping.result", "id": "r-1", "mode": "online"})
        answer = await register.receive()
        assert isinstance(answer, Received)
        assert answer.message["mode"] == "online"
        await lane.close()
        await register.close()
        server.close()
        await server.wait_closed()

    run(scenario())


@pytest.mark.slow
def test_noisy_relay_every_message_arrives_once_or_fails_cleanly() -> None:
    # The relay flips one bit in ~1% of the bytes. (Under harsher random-byte damage a NAK can
    # turn into an ACK; tests/drivers/test_link.py accounts for those on a fake clock.)
    count = 40

    async def scenario() -> tuple[int, int]:
        async with NoisyRelay(0.01, seed=7) as relay:
            notices: dict[str, list[LinkNotice]] = {"reg": [], "lane": []}
            register = await open_serial_channel(
                relay.a_path, 115200, Link(), on_notice=notices["reg"].append
            )
            lane = await open_serial_channel(
                relay.b_path, 115200, Link(), on_notice=notices["lane"].append
            )
            sent_up = [ping(i) for i in range(count)]
            sent_down = [{"v": 1, "type": "ping.result", "id": f"t-{i}"} for i in range(count)]
            for up, down in zip(sent_up, sent_down, strict=True):
                await register.send(up)
                await lane.send(down)

            async def collect(channel: FramedChannel) -> list[dict[str, Any]]:
                got: list[dict[str, Any]] = []
                while True:
                    try:
                        event = await asyncio.wait_for(channel.receive(), 6.0)
                    except TimeoutError:
                        return got
                    if isinstance(event, Received):
                        got.append(event.message)

            at_lane, at_register = await asyncio.gather(collect(lane), collect(register))
            for got, sent, sender in (
                (at_lane, sent_up, "reg"),
                (at_register, sent_down, "lane"),
            ):
                ids = [m["id"] for m in got]
                assert len(ids) == len(set(ids)), "a message arrived twice"
                assert got == [m for m in sent if m in got], "order or content changed"
                failed = failed_messages(notices[sender])
                for number, message in enumerate(sent, start=1):
                    assert message in got or number in failed, f"{message['id']} vanished"
            assert relay.stats["ab"].corrupted + relay.stats["ba"].corrupted > 0
            await register.close()
            await lane.close()
            return len(at_lane), len(at_register)

    delivered = run(scenario())
    assert sum(delivered) > 0


def test_large_writes_are_flow_controlled_and_arrive_whole() -> None:
    blob = bytes(range(256)) * 1200  # 300 KiB: more than the transport's high-water mark

    async def scenario() -> bytes:
        with pty_pair() as pty:
            _, writer = await open_serial_connection(pty.path, 115200)
            reader, master_writer = await master_streams(pty.master_fd)
            writer.write(blob)
            drained = asyncio.create_task(writer.drain())
            received = await reader.readexactly(len(blob))
            await drained
            writer.close()
            master_writer.close()
            await writer.wait_closed()
            return received

    assert run(scenario()) == blob


def test_unreachable_socket_url_is_a_device_error() -> None:
    async def scenario() -> None:
        with pytest.raises(DeviceError, match=r"serial port socket://127\.0\.0\.1:1: cannot open"):
            await open_serial_channel("socket://127.0.0.1:1", 9600, Link())

    run(scenario())


def test_unacknowledged_frame_is_repeated_on_a_quiet_line() -> None:
    # Spec §1.2: the sender repeats an unacknowledged frame 1 s after its ETX, even when the
    # other side sends nothing at all (the pump must not wait for bytes to start that timer).
    async def scenario() -> list[float]:
        with pty_pair() as pty:
            reader, writer = await master_streams(pty.master_fd)
            lane = await open_serial_channel(pty.path, 115200, Link(baud=115200))
            answer = {"v": 1, "type": "ping.result", "id": "p1", "mode": "online"}
            frame = encode_frame(1, encode_message(answer))
            await asyncio.sleep(0.2)  # the pump is waiting for bytes, with no timer to keep
            sent = time.monotonic()
            await lane.send(answer)
            seen: list[float] = []
            received = b""
            while len(seen) < 4:
                received += await reader.read(4096)
                while frame in received:
                    received = received.replace(frame, b"", 1)
                    seen.append(time.monotonic() - sent)
            await lane.close()
            writer.close()
            return seen

    seen = run(scenario())
    assert seen[0] < 0.5
    # three repeats, each about 1 s after the one before, with nothing received meanwhile
    assert all(later - earlier >= 0.8 for earlier, later in itertools.pairwise(seen))
