"""Signalling WebSocket: room limit, malformed messages, frame size and offers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import aiohttp
import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

from tests.integration.wire import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    assert_open,
    join_message,
    join_raw,
    open_socket,
    read_until_closed,
    receive_json,
    send_json,
)
from tests.support.bot import Bot
from tests.support.server import ServerProcess

MAX_FRAME_SIZE = 256 * 1024
MAX_BAD_MESSAGES = 20

# Text frames that are not a valid message, each with its own reason.
BAD_FRAMES = {
    "not json": "{nope",
    "array": "[]",
    "null": "null",
    "string": '"join"',
    "number type": '{"type": 42}',
    "missing type": "{}",
    "unknown type": '{"type": "dance"}',
}


async def wait_until_joinable(
    http: aiohttp.ClientSession, server: ServerProcess, room_id: str, token: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Join, retrying while the server may still be removing someone who left."""
    deadline = time.monotonic() + 5
    while True:
        ws = await open_socket(http, server)
        await send_json(ws, join_message(room_id, token))
        reply = await receive_json(ws)
        if reply["type"] == "welcome" or time.monotonic() > deadline:
            return ws, reply
        await ws.close()
        await asyncio.sleep(0.1)


async def test_room_full_rejects_third(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    room = await server.create_room("Pair room", limit=2)
    room_id, token = room["room"].id, room["guest"].token
    first, _ = await join_raw(http, server, room_id, token, "First")
    second, welcome = await join_raw(http, server, room_id, token, "Second")

    third = await open_socket(http, server)
    await send_json(third, join_message(room_id, token, "Third"))
    texts, code = await read_until_closed(third)

    assert welcome["slots"] == 1
    assert len(texts) == 1
    error = json.loads(texts[0])
    assert error["type"] == "error"
    assert error["code"] == "room_full"
    assert error["message"]
    assert code == CLOSE_POLICY_VIOLATION
    await assert_open(first)
    await assert_open(second)

    # A place that becomes free can be taken again.
    await first.close()
    fourth, reply = await wait_until_joinable(http, server, room_id, token)
    assert reply["type"] == "welcome"
    await fourth.close()
    await second.close()


@pytest.mark.parametrize("frame", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
async def test_bad_message_keeps_socket(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any], frame: str
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)
    await ws.send_str(frame)

    reply = await receive_json(ws)

    assert reply["type"] == "error"
    assert reply["code"] == "bad_message"
    assert reply["message"]
    await assert_open(ws)
    await ws.close()


async def test_binary_frame_is_bad_message(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)
    await ws.send_bytes(b'{"type": "ping"}')

    reply = await receive_json(ws)

    assert reply["type"] == "error"
    assert reply["code"] == "bad_message"
    await assert_open(ws)
    await ws.close()


@pytest.mark.parametrize(
    "message",
    [{"type": "ping"}, {"type": "offer", "sdp": "v=0\r\n"}, {"type": "leave"}],
    ids=["ping", "offer", "leave"],
)
async def test_message_before_join_closes(
    server: ServerProcess, http: aiohttp.ClientSession, message: dict[str, Any]
) -> None:
    ws = await open_socket(http, server)
    await send_json(ws, message)

    texts, code = await read_until_closed(ws)

    assert len(texts) == 1
    assert json.loads(texts[0])["code"] == "not_joined"
    assert code == CLOSE_POLICY_VIOLATION


@pytest.mark.parametrize("version", [2, 0, "1", 1.5, None], ids=repr)
async def test_join_wrong_version_rejected(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    version: object,
) -> None:
    ws = await open_socket(http, server)
    await send_json(
        ws, join_message(room["room"].id, room["guest"].token, version=version)
    )

    texts, code = await read_until_closed(ws)

    assert len(texts) == 1
    error = json.loads(texts[0])
    assert error["type"] == "error"
    assert error["code"] == "unsupported_version"
    assert code == CLOSE_POLICY_VIOLATION


@pytest.mark.parametrize(
    "name",
    ["", "   ", "\x00\x07", "x" * 65, 42],
    ids=["empty", "spaces", "control", "65 characters", "number"],
)
async def test_join_bad_name_allows_retry(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    name: object,
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    ws = await open_socket(http, server)
    message = join_message(room_id, token)
    message["name"] = name
    await send_json(ws, message)

    error = await receive_json(ws)
    await send_json(ws, join_message(room_id, token, " Ada\u200b  Lovelace "))
    welcome = await receive_json(ws)

    assert error["type"] == "error"
    assert error["code"] == "bad_message"
    assert welcome["type"] == "welcome"
    assert welcome["participant"]["name"] == "Ada Lovelace"
    await ws.close()


async def test_second_join_rejected(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    ws, _ = await join_raw(http, server, room_id, token)
    await send_json(ws, join_message(room_id, token, "Again"))

    reply = await receive_json(ws)

    assert reply["type"] == "error"
    assert reply["code"] == "bad_message"
    await assert_open(ws)
    await ws.close()


async def test_bad_messages_limit_closes(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)
    for _ in range(MAX_BAD_MESSAGES - 1):
        await ws.send_str("{nope")
        reply = await receive_json(ws)
        assert reply["code"] == "bad_message"
    await assert_open(ws)

    await ws.send_str("{nope")
    texts, code = await read_until_closed(ws)

    assert [json.loads(text)["code"] for text in texts] == ["bad_message"]
    assert code == CLOSE_POLICY_VIOLATION


def padded_ping(size: int) -> str:
    """Return a ping message of exactly `size` bytes."""
    frame = json.dumps({"type": "ping", "pad": ""})
    frame = frame[:-2] + "x" * (size - len(frame)) + frame[-2:]
    assert len(frame.encode()) == size
    return frame


async def test_frame_under_size_limit_accepted(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)

    await ws.send_str(padded_ping(MAX_FRAME_SIZE - 1))

    assert await receive_json(ws) == {"type": "pong"}
    await ws.close()


async def test_frame_at_size_limit_accepted(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)

    await ws.send_str(padded_ping(MAX_FRAME_SIZE))

    assert await receive_json(ws) == {"type": "pong"}
    await ws.close()


async def test_frame_over_size_limit_closes(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)

    await ws.send_str(padded_ping(MAX_FRAME_SIZE + 1))
    texts, code = await read_until_closed(ws)

    assert texts == []
    assert code == CLOSE_MESSAGE_TOO_BIG


async def test_offer_removing_slots_rejected(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    bot = Bot(server.url, room["room"].id, room["guest"].token, "Shrinker", slots=2)
    try:
        await bot.join()
        await bot.send({"type": "offer", "sdp": await make_offer(1)})
        error = await bot.wait_ws("error")
        await bot.send({"type": "ping"})
        await bot.wait_ws("pong")
    finally:
        await bot.close()

    assert error["code"] == "bad_sdp"
    assert "remove" in error["message"]
    assert [m["type"] for m in bot.ws_messages].count("answer") == 1


async def make_offer(slots: int) -> str:
    """Return an offer with the layout the server expects, as a client makes it."""
    pc = RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )
    try:
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver("video", direction="sendonly")
        pc.createDataChannel("state")
        for _ in range(slots):
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


def without_lines(sdp: str, prefix: str) -> str:
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith(prefix)
    )


def swap_first_sections(sdp: str) -> str:
    """Put the offer's video section before its audio section."""
    head, *sections = sdp.split("m=")
    sections[0], sections[1] = sections[1], sections[0]
    return "m=".join([head, *sections])


def with_bad_port(sdp: str) -> str:
    """Replace the port of the first audio section with a word."""
    return re.sub(r"^m=audio [0-9]+ ", "m=audio nine ", sdp, count=1, flags=re.M)


BAD_SDP_CASES = {
    "garbage": lambda offer: "garbage",
    "empty": lambda offer: "",
    "version only": lambda offer: "v=0\r\n",
    "truncated": lambda offer: offer[: len(offer) // 2],
    "video first": swap_first_sections,
    "no ice credentials": lambda offer: without_lines(offer, "a=ice-"),
    "bad port": with_bad_port,
    "too many slots": None,
}


@pytest.mark.parametrize("case", list(BAD_SDP_CASES))
async def test_bad_sdp_rejected(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    case: str,
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    ws, welcome = await join_raw(http, server, room_id, token)
    mangle = BAD_SDP_CASES[case]
    if mangle is None:
        # A room of N people has at most N - 1 others to receive.
        sdp = await make_offer(room["room"].limit)
    else:
        sdp = mangle(await make_offer(welcome["slots"]))

    await send_json(ws, {"type": "offer", "sdp": sdp})
    reply = await receive_json(ws, timeout=10)

    assert reply["type"] == "error"
    assert reply["code"] == "bad_sdp"
    assert reply["message"]
    await assert_open(ws)
    await ws.close()

    # The server still serves a participant with a good offer.
    bot = Bot(server.url, room_id, token, "After")
    try:
        await bot.join()
        await bot.wait_ws("tracks")
    finally:
        await bot.close()


async def test_offer_without_fingerprint_rejected(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, welcome = await join_raw(http, server, room["room"].id, room["guest"].token)
    sdp = without_lines(await make_offer(welcome["slots"]), "a=fingerprint")

    await send_json(ws, {"type": "offer", "sdp": sdp})
    reply = await receive_json(ws, timeout=10)
    await ws.close()

    assert reply["type"] == "error"
    assert reply["code"] == "bad_sdp"


@pytest.mark.parametrize(
    "sdp",
    [None, 42, ["v=0"], "v=0\r\na=" + "x" * 200_000],
    ids=["null", "number", "array", "over 200000 characters"],
)
async def test_offer_bad_sdp_field(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    sdp: object,
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)
    await send_json(ws, {"type": "offer", "sdp": sdp})

    reply = await receive_json(ws)

    assert reply["type"] == "error"
    assert reply["code"] == "bad_message"
    await assert_open(ws)
    await ws.close()


async def test_candidate_before_offer_ignored(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)
    candidate = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    await send_json(ws, {"type": "candidate", "candidate": candidate, "sdpMid": "0"})

    await assert_open(ws)
    await ws.close()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "candidate", "candidate": "candidate:garbage", "sdpMid": "0"},
        {"type": "candidate", "candidate": 42, "sdpMid": "0"},
        {"type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 1 typ host"},
        {"type": "candidate", "candidate": None, "sdpMLineIndex": -1},
        {"type": "candidate", "candidate": "x" * 2000, "sdpMid": "0"},
        {
            "type": "candidate",
            "candidate": "candidate:1 1 udp 1 224.0.0.251 5353 typ host",
            "sdpMid": "0",
        },
        {
            "type": "candidate",
            "candidate": "candidate:1 1 udp 1 0.0.0.0 9 typ host",
            "sdpMid": "0",
        },
    ],
    ids=[
        "unparsable",
        "not a string",
        "no mid",
        "negative index",
        "too long",
        "multicast",
        "unspecified",
    ],
)
async def test_bad_candidate_rejected(
    server: ServerProcess, room: dict[str, Any], message: dict[str, Any]
) -> None:
    bot = Bot(server.url, room["room"].id, room["guest"].token, "Trickle")
    try:
        await bot.join()
        await bot.send(message)
        error = await bot.wait_ws("error")
        await bot.send({"type": "ping"})
        await bot.wait_ws("pong")
    finally:
        await bot.close()

    assert error["code"] == "bad_message"


async def test_candidate_flood_capped(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    bot = Bot(server.url, room["room"].id, room["guest"].token, "Flood")
    candidate = "candidate:{} 1 udp 2122260223 127.0.0.1 {} typ host"
    try:
        await bot.join()
        for index in range(100):
            await bot.send(
                {
                    "type": "candidate",
                    "candidate": candidate.format(index, 40000 + index),
                    "sdpMid": "0",
                }
            )
        await bot.send({"type": "ping"})
        await bot.wait_ws("pong")
    finally:
        await bot.close()

    errors = [m for m in bot.ws_messages if m["type"] == "error"]
    assert len(errors) == 1
    assert "64" in errors[0]["message"]


async def test_ping_burst_answered(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)
    log_start = len(server.log_text())
    for _ in range(3000):
        await ws.send_str('{"type": "ping"}')
    pongs = 0
    closed = None
    while pongs < 3000:
        msg = await ws.receive(timeout=10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            closed = msg.data
            break
        pongs += json.loads(msg.data)["type"] == "pong"
    await ws.close()

    # Either every ping is answered, or the client is closed once as too slow.
    assert pongs == 3000 or closed == CLOSE_POLICY_VIOLATION
    assert server.log_text()[log_start:].count("unsent") <= 1


async def test_corrected_offer_publishes(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    from tests.integration.test_forwarding import publisher_tracks, wait_until

    room_id, token = room["room"].id, room["guest"].token
    alice = Bot(server.url, room_id, token, "Alice", **publisher_tracks())
    bob = Bot(server.url, room_id, token, "Bob")
    try:
        await alice.connect()
        await alice.send(join_message(room_id, token, "Alice"))
        alice.welcome = await alice.receive()
        # Codecs the server does not know make aiortc reject the offer.
        offer = await make_offer(0)
        unknown = offer.replace("VP8/", "XV8/").replace("opus/", "xopus/")
        await alice.send({"type": "offer", "sdp": unknown})
        error = await alice.receive()
        await alice.negotiate(0)
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 10)
    finally:
        await bob.close()
        await alice.close()

    assert error["code"] == "bad_sdp"
