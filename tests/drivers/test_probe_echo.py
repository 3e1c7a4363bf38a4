"""``tillgate probe serial`` on a line that only echoes: our ENQ coming back is not a register."""

from __future__ import annotations

import asyncio

from tests.drivers.field_cli import run, tillgate
from tests.drivers.ptys import master_streams, pty_pair


def test_a_line_that_echoes_is_reported_as_an_echo_not_ok() -> None:
    async def scenario() -> tuple[int, str, str]:
        with pty_pair() as pty:
            reader, writer = await master_streams(pty.master_fd)

            async def echo() -> None:  # a loopback plug, or a modem with echo on
                while data := await reader.read(100):
                    writer.write(data)

            peer = asyncio.create_task(echo())
            result = await tillgate("probe", "serial", pty.path, "--timeout", "0.5")
            peer.cancel()
            writer.close()
            return result

    code, out, err = run(scenario())
    assert code == 1, out
    assert out == ""
    assert "only our own ENQ came back" in err
    assert "echoes" in err

