"""The liveness deadline: a client that stops sending is closed and removed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection

from tests.integration.wire import CLOSE_LIVENESS
from tests.support.bot import Bot
from tests.support.server import ServerProcess

LIVENESS_TIMEOUT = 15.0
CLOSE_MEDIA_FAILED = 4001


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


async def test_media_never_connected_closed(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    # An offer without candidates and without end-of-candidates: the server
    # can neither connect nor tell that it never will.
    bot = Bot(server.url, room["room"].id, room["guest"].token, "Unreachable")
    try:
        await bot.connect()
        await bot.send(
            {
                "type": "join",
                "version": 1,
                "token": room["guest"].token,
                "room": room["room"].id,
                "name": "Unreachable",
            }
        )
        await bot.receive()
        answered_at = None
        sdp = await offer_without_candidates()
        await bot.send({"type": "offer", "sdp": sdp})
        while True:
            message = await bot.receive(timeout=5)
            if message["type"] == "answer":
                answered_at = time.monotonic()
                break
        bot.keepalive(interval=2.0)
        deadline = answered_at + 30
        while bot.ws is not None and not bot.ws.closed and time.monotonic() < deadline:
            try:
                await bot.receive(timeout=1)
            except (ConnectionError, asyncio.TimeoutError):
                pass
        closed_after = time.monotonic() - answered_at
    finally:
        await bot.close()

    assert bot.ws.close_code == CLOSE_MEDIA_FAILED
    assert 19 <= closed_after <= 25


async def offer_without_candidates() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        lines = pc.localDescription.sdp.split("\r\n")
    finally:
        await pc.close()
    return "\r\n".join(
        line
        for line in lines
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )
