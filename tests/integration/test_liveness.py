"""The liveness deadline: a client that stops sending is closed and removed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.integration.wire import CLOSE_LIVENESS
from tests.support.bot import Bot
from tests.support.server import ServerProcess

LIVENESS_TIMEOUT = 15.0


async def test_silent_client_closed(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    alice = Bot(server.url, room_id, token, "Alice")
    quiet = Bot(server.url, room_id, token, "Quiet")
    try:
        await alice.join()
        alice.keepalive(interval=2.0)
        await alice.wait_data("roster")
        # The offer is the last message the quiet client sends.
        await quiet.join()
        silent_since = time.monotonic()
        deadline = silent_since + LIVENESS_TIMEOUT + 10
        while quiet.closed_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        left = await alice.wait_data("left", timeout=5)
    finally:
        await quiet.close()
        await alice.close()

    assert quiet.closed_at is not None
    silence = quiet.closed_at - silent_since
    assert 14 <= silence <= 20
    assert quiet.close_code == CLOSE_LIVENESS
    assert left == {"type": "left", "id": quiet.id, "reason": "timeout"}
    # Pings kept the other client in the room past the deadline.
    assert alice.close_code is None
    assert [m["type"] for m in alice.ws_messages].count("pong") >= 7
