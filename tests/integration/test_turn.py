"""Media through a real coturn with the compose file's configuration."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioice import stun, turn

import sfu.frames
import sfu.ice
from server.config import Secret
from server.turn import turn_server
from tests.integration.wire import (
    join_message,
    join_raw,
    open_socket,
    receive_json,
    send_json,
)
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets, vp8_clip
from tests.support.server import ServerProcess
from tests.support.turn import TurnServer

CLIP = vp8_clip(frames=60)
TONE = opus_packets(seconds=1.0)
TURN_TTL = 600


@pytest.fixture(scope="module", autouse=True)
def passthrough_peers() -> None:
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])


@pytest.fixture(scope="module")
async def turn_app(
    tmp_path_factory: pytest.TempPathFactory, turn_relay: TurnServer
) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("turn-app") / "coworking.sqlite3",
        environment={
            "COWORKING_TURN_URLS": turn_relay.url,
            "COWORKING_TURN_SECRET": turn_relay.secret,
            "COWORKING_TURN_TTL": str(TURN_TTL),
        },
    )
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


def expected_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def turn_entry(welcome: dict[str, Any]) -> dict[str, Any]:
    entries = [s for s in welcome["ice_servers"] if "username" in s]
    assert len(entries) == 1, welcome["ice_servers"]
    return entries[0]


async def test_welcome_has_fresh_turn_credentials(
    turn_app: ServerProcess, turn_relay: TurnServer
) -> None:
    room = await turn_app.create_room()
    room_id, token = room["room"].id, room["guest"].token
    async with aiohttp.ClientSession() as http:
        first_ws, first = await join_raw(http, turn_app, room_id, token, "Ada")
        second_ws, second = await join_raw(http, turn_app, room_id, token, "Bo")
        await first_ws.close()
        await second_ws.close()

    entry = turn_entry(first)
    expiry, _, user = entry["username"].partition(":")
    assert entry["urls"] == [turn_relay.url]
    assert user == first["participant"]["id"]
    assert abs(int(expiry) - (time.time() + TURN_TTL)) < 10
    assert entry["credential"] == expected_password(
        turn_relay.secret, entry["username"]
    )
    assert turn_entry(second)["username"] != entry["username"]


async def test_turn_secret_not_served_before_admission(
    turn_app: ServerProcess, turn_relay: TurnServer
) -> None:
    room = await turn_app.create_room()
    room_id = room["room"].id
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{turn_app.url}/r/{room_id}") as page:
            html = await page.text()
        ws = await open_socket(http, turn_app)
        await send_json(ws, join_message(room_id, "x" * 32))
        rejection = await receive_json(ws)
        await ws.close()

    assert turn_relay.secret not in html
    assert "turn:" not in html
    assert rejection["type"] == "error"
    assert "ice_servers" not in rejection


async def test_relay_only_peer_sends_through_turn(
    turn_app: ServerProcess, turn_relay: TurnServer
) -> None:
    room = await turn_app.create_room()
    room_id, token = room["room"].id, room["guest"].token
    alice = Bot(
        turn_app.url,
        room_id,
        token,
        "Alice",
        audio=LoopTrack("audio", TONE, 0.02),
        video=LoopTrack("video", CLIP, 1 / 30),
    )
    alice.relay_only = True
    bob = Bot(turn_app.url, room_id, token, "Bob")
    try:
        await alice.join()
        await bob.join()
        deadline = time.monotonic() + 15
        while len(bob.frames_from(alice.id)) < 10:
            assert time.monotonic() < deadline, "no video from the relayed peer"
            await asyncio.sleep(0.05)
        ice = alice.pc.getTransceivers()[0].sender.transport.transport
        local = ice.iceGatherer.getLocalCandidates()
        # Copied, because closing the connection empties it.
        nominated = dict(ice._connection._nominated)
    finally:
        await alice.close()
        await bob.close()

    assert local, "the relay-only peer gathered no candidate"
    assert {candidate.type for candidate in local} == {"relay"}
    assert nominated, "no candidate pair was nominated"
    assert all(pair.local_candidate.type == "relay" for pair in nominated.values())


async def test_production_config_denies_loopback_peer(
    tmp_path: Path, loopback_only: None
) -> None:
    strict = TurnServer(tmp_path, allow_loopback=False)
    await strict.start()
    try:
        credentials = turn_server((strict.url,), Secret(strict.secret), 60, "probe")
        transport = await allocate(
            strict, credentials["username"], credentials["credential"]
        )
        # A channel binding requests relaying to one peer address.
        client = transport._TurnTransport__inner_protocol
        with pytest.raises(stun.TransactionFailed) as raised:
            await client.channel_bind(0x4000, ("127.0.0.1", 9))
        transport.close()
    finally:
        await strict.stop()

    assert raised.value.response.attributes["ERROR-CODE"][0] == 403


async def allocate(relay: TurnServer, username: str, password: str) -> Any:
    transport, _ = await turn.create_turn_endpoint(
        asyncio.DatagramProtocol,
        ("127.0.0.1", relay.port),
        username=username,
        password=password,
    )
    return transport


async def test_turn_credentials_expire(turn_relay: TurnServer) -> None:
    secret = Secret(turn_relay.secret)
    fresh = turn_server((turn_relay.url,), secret, 60, "fresh")
    expired = turn_server(
        (turn_relay.url,), secret, 60, "expired", now=time.time() - 120
    )
    forged = turn_server((turn_relay.url,), Secret("x" * 24), 60, "forged")

    transport = await allocate(turn_relay, fresh["username"], fresh["credential"])
    relayed = transport.get_extra_info("sockname")
    transport.close()
    assert relayed[0] == "127.0.0.1"
    for rejected in (expired, forged):
        with pytest.raises(stun.TransactionFailed) as raised:
            await allocate(turn_relay, rejected["username"], rejected["credential"])
        assert raised.value.response.attributes["ERROR-CODE"][0] == 401
