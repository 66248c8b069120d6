"""Security headers of pages and API responses, and the WebSocket origin check."""

from __future__ import annotations

import secrets
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.integration.wire import join_message, open_socket, receive_json, send_json
from tests.support.server import ServerProcess


def assert_security_headers(headers: CIMultiDictProxy[str]) -> None:
    policy = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert headers.get("Referrer-Policy") == "no-referrer"
    assert headers.get("X-Content-Type-Options") == "nosniff"


async def test_room_page_headers(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.url + "/r/anything") as response:
        await response.read()

    assert response.status == 200
    assert response.content_type == "text/html"
    assert_security_headers(response.headers)


async def test_room_page_same_for_every_room(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    name = "Page room " + secrets.token_hex(4)
    room = await server.create_room(name)
    async with http.get(server.url + "/r/anything") as response:
        anything = await response.text()
    async with http.get(f"{server.url}/r/{room['room'].id}") as response:
        real = await response.text()

    assert real == anything
    assert name not in real


@pytest.mark.parametrize("valid", [True, False], ids=["valid token", "bad token"])
async def test_room_api_headers(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    room: dict[str, Any],
    valid: bool,
) -> None:
    token = room["guest"].token if valid else secrets.token_urlsafe(24)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/api/rooms/{room['room'].id}"
    async with http.get(url, headers=headers) as response:
        await response.read()

    assert response.status == (200 if valid else 403)
    assert_security_headers(response.headers)
    assert response.headers.get("Cache-Control") == "no-store"


@pytest.mark.parametrize("header", [None, "Bearer wrong-admin-token-1234"])
async def test_admin_stats_needs_token(
    server: ServerProcess, http: aiohttp.ClientSession, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with http.get(server.url + "/api/admin/stats", headers=headers) as response:
        body = await response.text()

    assert response.status == 403
    assert "peer_connections" not in body
    assert_security_headers(response.headers)


def foreign_origins(server: ServerProcess) -> list[str]:
    # These go only into the Origin header of requests to the loopback server.
    authority = server.url.removeprefix("http://")
    return [
        "http://evil.example",
        "null",
        f"http://{authority}.evil.example",
        f"http://{authority}@evil.example",
    ]


@pytest.mark.parametrize("index", range(4), ids=["other", "null", "suffix", "userinfo"])
async def test_websocket_foreign_origin_rejected(
    server: ServerProcess, http: aiohttp.ClientSession, index: int
) -> None:
    origin = foreign_origins(server)[index]

    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await open_socket(http, server, origin=origin)

    assert caught.value.status == 403


async def test_websocket_same_origin_accepted(
    server: ServerProcess, http: aiohttp.ClientSession, room: dict[str, Any]
) -> None:
    ws = await open_socket(http, server, origin=server.url)
    await send_json(ws, join_message(room["room"].id, room["guest"].token))

    welcome = await receive_json(ws)
    await ws.close()

    assert welcome["type"] == "welcome"
