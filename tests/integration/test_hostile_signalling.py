"""Hostile signalling frames that test_signalling.py does not send: huge and
compressed frames, invalid UTF-8, deep JSON, odd SDP and join bursts.

Each must cost only the sending client its message or its socket, while
another participant in the same room keeps being served.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import aiohttp
import pytest

from tests.integration.test_signalling import make_offer
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
from tests.support.server import ServerProcess

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_TEXT = 1007
MAX_BAD_MESSAGES = 20


async def new_log_lines(
    server: ServerProcess, since: int, text: str, timeout: float = 3.0
) -> list[str]:
    """Return the server's log lines after line ``since`` that contain ``text``,
    once at least one is there or ``timeout`` seconds have passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = [line for line in server.output[since:] if text in line]
        if lines or asyncio.get_running_loop().time() > deadline:
            return lines
        await asyncio.sleep(0.1)


async def send_frame(
    ws: aiohttp.ClientWebSocketResponse,
    payload: bytes,
    compress: int | None = None,
) -> None:
    """Send one text frame as is, bypassing the client's own checks."""
    await ws._writer.send_frame(payload, aiohttp.WSMsgType.TEXT, compress=compress)


@pytest.mark.parametrize("mebibytes", [5, 64])
async def test_huge_frame_closes_only_sender(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    mebibytes: int,
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    other, _ = await join_raw(http, server, room_id, token, "Other")
    ws, _ = await join_raw(http, server, room_id, token, "Sender")
    log_start = len(server.output)
    try:
        await send_frame(ws, b" " * (mebibytes * 1024 * 1024))
    except ConnectionError:
        pass  # the server may close before the whole frame is written
    _, code = await read_until_closed(ws, timeout=30)

    # The server closes with 1009 as soon as the frame's header shows its
    # size; a client still writing may see the connection reset instead.
    assert code in (CLOSE_MESSAGE_TOO_BIG, CLOSE_ABNORMAL)
    logged = await new_log_lines(server, log_start, "x WebSocket of")
    assert len(logged) == 1
    assert "1009" in logged[0]
    await assert_open(other)
    await other.close()


def compressed_frame(payload: bytes) -> bytes:
    """Return a masked text frame with RSV1 set, which marks it compressed."""
    header = bytes([0xC1])  # FIN, RSV1, opcode 1 (text)
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    elif len(payload) < 65536:
        header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    else:
        header += bytes([0x80 | 127]) + len(payload).to_bytes(8, "big")
    # An all-zero masking key leaves the payload as it is.
    return header + bytes(4) + payload


@pytest.mark.parametrize(
    ("payload", "compress", "expected"),
    [
        # A compressed frame on a connection that negotiated no compression.
        (zlib.compress(b" " * 100_000_000)[2:-4], 15, CLOSE_PROTOCOL_ERROR),
        (b'{"type": "ping", "x": "\xff\xfe"}', None, CLOSE_INVALID_TEXT),
    ],
    ids=["compressed 100 MB", "invalid UTF-8"],
)
async def test_bad_frame_closes_only_sender(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    payload: bytes,
    compress: int | None,
    expected: int,
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    other, _ = await join_raw(http, server, room_id, token, "Other")
    ws, _ = await join_raw(http, server, room_id, token, "Sender")
    log_start = len(server.output)
    if compress is None:
        await send_frame(ws, payload)
    else:
        ws._writer.transport.write(compressed_frame(payload))
    _, code = await read_until_closed(ws, timeout=10)

    assert code == expected
    logged = await new_log_lines(server, log_start, "x WebSocket of")
    assert len(logged) == 1
    assert str(expected) in logged[0]
    await assert_open(other)
    await other.close()


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"type": "answer", "sdp": "v=0"}',
        '{"type": "offer"}',
    ],
    ids=["nested 100000 deep", "answer without offer", "offer without sdp"],
)
async def test_bad_message_after_join_answered(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    text: str,
) -> None:
    ws, _ = await join_raw(http, server, room["room"].id, room["guest"].token)
    await ws.send_str(text)
    reply = await receive_json(ws)

    assert reply["type"] == "error"
    assert reply["code"] == "bad_message"
    await assert_open(ws)
    await ws.close()


async def test_payload_type_300_rejected(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws, welcome = await join_raw(http, server, room["room"].id, room["guest"].token)
    offer = await make_offer(welcome["slots"])
    lines = offer.split("\r\n")
    video = next(i for i, line in enumerate(lines) if line.startswith("m=video"))
    lines[video] += " 300"
    lines.insert(video + 1, "a=rtpmap:300 VP8/90000")
    await send_json(ws, {"type": "offer", "sdp": "\r\n".join(lines)})
    reply = await receive_json(ws, timeout=10)

    assert reply["type"] == "error"
    assert reply["code"] in ("bad_sdp", "bad_message")
    await assert_open(ws)
    await ws.close()


async def test_join_burst_closes_sender(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    other, _ = await join_raw(http, server, room_id, token, "Other")
    ws, welcome = await join_raw(http, server, room_id, token, "Burst")
    log_start = len(server.output)
    for _ in range(100):
        await send_json(ws, join_message(room_id, token, "Burst"))
    texts, code = await read_until_closed(ws)
    before = await server.stats()

    await new_log_lines(server, log_start, "bad messages; closing")
    logged = [
        line
        for line in server.output[log_start:]
        if welcome["participant"]["id"] in line and " WARNING " in line
    ]

    assert code == CLOSE_POLICY_VIOLATION
    assert len(texts) <= MAX_BAD_MESSAGES + 1
    assert len(logged) == 2
    assert "already joined" in logged[0]
    assert "20 bad messages; closing" in logged[1]
    assert before["rooms"][room_id]["participants"] == 1
    await assert_open(other)
    await other.close()


async def test_joins_on_many_sockets_limited(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    room_id, token = room["room"].id, room["guest"].token
    sockets = [await open_socket(http, server) for _ in range(100)]
    for index, ws in enumerate(sockets):
        await send_json(ws, join_message(room_id, token, f"Guest {index}"))
    replies = [await receive_json(ws) for ws in sockets]
    for ws in sockets:
        await ws.close()

    kinds = [r["type"] if r["type"] == "welcome" else r["code"] for r in replies]
    assert kinds.count("welcome") == room["room"].limit
    assert set(kinds) == {"welcome", "room_full"}
