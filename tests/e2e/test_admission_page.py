"""What the room page shows for invite links that do not admit their holder."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Page, WebSocket

from server.storage import ROLE_GUEST
from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import (
    INVALID_INVITE_MESSAGE,
    e2e_state,
    invite_link,
    join,
    message,
    page_text,
    wait_phase,
)
from tests.support.server import ServerProcess

logger = logging.getLogger(__name__)

# Distinctive, so finding it in the page cannot be a coincidence.
ROOM_NAME = "Quiet Orchard 4821"


async def revoke_guest_invite(server: ServerProcess, room: dict[str, Any]) -> None:
    storage = await server.storage()
    try:
        revoked = await storage.revoke_invite(room["guest"].id)
    finally:
        await storage.close()
    assert revoked is not None and revoked.revoked_at is not None


async def unknown_token_link(server: ServerProcess, room: dict[str, Any]) -> str:
    return f"{server.url}/r/{room['room'].id}?name=Eve#{secrets.token_urlsafe(24)}"


async def other_room_token_link(server: ServerProcess, room: dict[str, Any]) -> str:
    other = await server.create_room("Other room")
    return f"{server.url}/r/{room['room'].id}?name=Eve#{other['guest'].token}"


async def revoked_invite_link(server: ServerProcess, room: dict[str, Any]) -> str:
    await revoke_guest_invite(server, room)
    return invite_link(server, room, "Eve")


async def expired_invite_link(server: ServerProcess, room: dict[str, Any]) -> str:
    storage = await server.storage()
    try:
        expired = await storage.create_invite(
            room["room"].id, ROLE_GUEST, expires_at=time.time() - 60
        )
    finally:
        await storage.close()
    return f"{server.url}/r/{room['room'].id}?name=Eve#{expired.token}"


async def tokenless_link(server: ServerProcess, room: dict[str, Any]) -> str:
    return f"{server.url}/r/{room['room'].id}?name=Eve"


MakeLink = Callable[[ServerProcess, dict[str, Any]], Awaitable[str]]


async def assert_refused_page(page: Page) -> None:
    """Check that the page shows only the invalid-invite message."""
    await wait_phase(page, "error")
    assert await message(page) == INVALID_INVITE_MESSAGE
    state = await e2e_state(page)
    assert state["error"] == "invalid_invite"
    assert not await page.locator("#join").is_visible()
    assert not await page.locator("#tiles .tile").count()


def record_socket_messages(page: Page) -> list[dict[str, Any]]:
    """Collect the JSON messages the page receives on its WebSockets."""
    received: list[dict[str, Any]] = []

    def on_socket(socket: WebSocket) -> None:
        socket.on(
            "framereceived",
            lambda payload: (
                received.append(json.loads(payload))
                if isinstance(payload, str)
                else None
            ),
        )

    page.on("websocket", on_socket)
    return received


@pytest.mark.parametrize(
    "make_link",
    [
        unknown_token_link,
        other_room_token_link,
        revoked_invite_link,
        expired_invite_link,
        tokenless_link,
    ],
    ids=["unknown-token", "other-room-token", "revoked", "expired", "no-token"],
)
async def test_invalid_link_shows_only_message(
    server: ServerProcess, open_page: OpenPage, make_link: MakeLink
) -> None:
    room = await server.create_room(ROOM_NAME)
    page = await open_page("red", await make_link(server, room))

    await assert_refused_page(page)
    assert ROOM_NAME not in await page_text(page)
    assert ROOM_NAME not in await page.content()


async def test_revoked_invite_refused_on_reload(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room(ROOM_NAME)
    page = await open_page("red", invite_link(server, room, "Ada"))
    await join(page)
    assert ROOM_NAME in await page_text(page)

    await revoke_guest_invite(server, room)
    received = record_socket_messages(page)
    await page.reload()

    await assert_refused_page(page)
    assert ROOM_NAME not in await page_text(page)
    assert not [m for m in received if m["type"] == "welcome"]


async def test_revoked_invite_refused_on_socket(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room(ROOM_NAME)
    page = await open_page("red", invite_link(server, room, "Ada"))
    await wait_phase(page, "prejoin")
    received = record_socket_messages(page)

    await revoke_guest_invite(server, room)
    await page.click("#join")

    await assert_refused_page(page)
    errors = [m for m in received if m["type"] == "error"]
    assert [e["code"] for e in errors] == ["invalid_invite"]
    assert not [m for m in received if m["type"] == "welcome"]


async def test_tokenless_link_explains_hint(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room(ROOM_NAME)
    page = await open_page("red", await tokenless_link(server, room))
    await assert_refused_page(page)

    hint = page.locator("#message-hint")
    assert await hint.is_visible()
    assert "no invite code" in await hint.inner_text()


async def test_wrong_token_has_no_hint(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room(ROOM_NAME)
    page = await open_page("red", await unknown_token_link(server, room))
    await assert_refused_page(page)

    assert not await page.locator("#message-hint").is_visible()


async def test_host_told_when_no_guest_link(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room(ROOM_NAME)
    await revoke_guest_invite(server, room)
    host_link = f"{server.url}/r/{room['room'].id}?name=Host#{room['host'].token}"
    page = await open_page("red", host_link)
    await wait_phase(page, "prejoin")

    assert not await page.locator("#invite-url").is_visible()
    missing = page.locator("#invite-missing")
    assert await missing.is_visible()
    assert f"coworking invite create {room['room'].id}" in await missing.inner_text()
