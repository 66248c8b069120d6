"""Raw signalling WebSocket helpers for tests that send what no real client sends."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.support.server import ServerProcess

INVALID_INVITE_MESSAGE = "This invite link is not valid or has expired."
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_LIVENESS = 4000


async def open_socket(
    http: aiohttp.ClientSession, server: ServerProcess, **kwargs: Any
) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(server.url.replace("http", "ws", 1) + "/ws", **kwargs)


def join_message(
    room_id: str, token: object, name: str = "Tester", version: object = 1
) -> dict[str, Any]:
    return {
        "type": "join",
        "version": version,
        "token": token,
        "room": room_id,
        "name": name,
    }


async def send_json(ws: aiohttp.ClientWebSocketResponse, message: object) -> None:
    await ws.send_str(json.dumps(message))


async def receive_json(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0
) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg}"
    return json.loads(msg.data)


async def read_until_closed(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0
) -> tuple[list[str], int | None]:
    """Return the text frames that arrive before the close, and the close code."""
    texts = []
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            texts.append(msg.data)
            continue
        assert msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ), f"expected a close, got {msg}"
        return texts, ws.close_code


async def assert_open(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Check with a ping that the server still reads and replies on this socket."""
    await send_json(ws, {"type": "ping"})
    reply = await receive_json(ws)
    assert reply == {"type": "pong"}


async def join_raw(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    room_id: str,
    token: str,
    name: str = "Tester",
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Join over a bare WebSocket without a peer connection and return the welcome."""
    ws = await open_socket(http, server)
    await send_json(ws, join_message(room_id, token, name))
    welcome = await receive_json(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome
