"""Admission to a room over the signalling WebSocket and the room API."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.storage import ROLE_GUEST, ROLE_HOST
from tests.integration.wire import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    INVALID_INVITE_MESSAGE,
    join_message,
    join_raw,
    open_socket,
    read_until_closed,
    send_json,
)
from tests.support.server import ServerProcess

INVALID_INVITE = {"code": "invalid_invite", "message": INVALID_INVITE_MESSAGE}

# Kinds of bad invite. The rooms fixture maps each to a (room id, token) pair, and a
# token of None leaves the field out of the join message and the Authorization
# header out of the request.
BAD_INVITE_CASES = [
    "no token",
    "empty token",
    "random token",
    "other room's token",
    "other room's host token",
    "expired invite",
    "revoked invite",
    "flipped character",
    "100 KB token",
    "unknown room",
    "number token",
]


def flip_character(token: str, index: int) -> str:
    replacement = "B" if token[index] == "A" else "A"
    return token[:index] + replacement + token[index + 1 :]


@pytest.fixture
async def rooms(server: ServerProcess) -> dict[str, Any]:
    """A room with a name that must never leak, another room, and bad invites."""
    secret_name = "Hidden room " + secrets.token_hex(4)
    target = await server.create_room(secret_name)
    other = await server.create_room("Other room " + secrets.token_hex(4))
    room_id = target["room"].id
    storage = await server.storage()
    try:
        expired = await storage.create_invite(
            room_id, ROLE_GUEST, expires_at=time.time() - 60
        )
        revoked = await storage.create_invite(room_id, ROLE_GUEST)
        assert await storage.revoke_invite(revoked.id) is not None
    finally:
        await storage.close()
    guest_token = target["guest"].token
    cases: dict[str, tuple[str, object]] = {
        "no token": (room_id, None),
        "empty token": (room_id, ""),
        "random token": (room_id, secrets.token_urlsafe(24)),
        "other room's token": (room_id, other["guest"].token),
        "other room's host token": (room_id, other["host"].token),
        "expired invite": (room_id, expired.token),
        "revoked invite": (room_id, revoked.token),
        "flipped character": (room_id, flip_character(guest_token, 16)),
        "100 KB token": (room_id, "A" * 100_000),
        "unknown room": (secrets.token_urlsafe(12), guest_token),
        "number token": (room_id, 12345),
    }
    assert set(cases) == set(BAD_INVITE_CASES)
    return {"target": target, "other": other, "name": secret_name, "cases": cases}


def assert_no_room_data(text: str, room_name: str) -> None:
    assert room_name not in text
    assert "participants" not in text
    assert "sdp" not in text
    assert "welcome" not in text


@pytest.mark.parametrize("case", BAD_INVITE_CASES)
async def test_join_bad_invite_rejected(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    rooms: dict[str, Any],
    case: str,
) -> None:
    room_id, token = rooms["cases"][case]
    message = join_message(room_id, token)
    if token is None:
        del message["token"]
    ws = await open_socket(http, server)
    await send_json(ws, message)

    texts, code = await read_until_closed(ws)

    assert len(texts) == 1
    assert json.loads(texts[0]) == {"type": "error", **INVALID_INVITE}
    assert code == CLOSE_POLICY_VIOLATION
    for text in texts:
        assert_no_room_data(text, rooms["name"])


async def test_join_megabyte_token_closes_1009(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any]
) -> None:
    ws = await open_socket(http, server)
    await send_json(ws, join_message(rooms["target"]["room"].id, "A" * 1_000_000))

    texts, code = await read_until_closed(ws)

    assert code == CLOSE_MESSAGE_TOO_BIG
    for text in texts:
        assert_no_room_data(text, rooms["name"])


async def test_join_refusals_add_nobody(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any]
) -> None:
    target = rooms["target"]
    for room_id, token in rooms["cases"].values():
        ws = await open_socket(http, server)
        await send_json(ws, join_message(room_id, token))
        await read_until_closed(ws)

    info = await get_room(http, server, target["room"].id, target["guest"].token)

    assert info["status"] == 200
    assert info["body"]["room"]["participants"] == 0


@pytest.mark.parametrize("role", [ROLE_GUEST, ROLE_HOST])
async def test_join_valid_invite_welcomed(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any], role: str
) -> None:
    target = rooms["target"]
    ws, welcome = await join_raw(
        http, server, target["room"].id, target[role].token, "Ada"
    )
    await ws.close()

    assert welcome["version"] == 1
    assert welcome["participant"]["name"] == "Ada"
    assert welcome["participant"]["role"] == role
    assert welcome["participant"]["id"].startswith("p")
    assert welcome["room"] == {
        "id": target["room"].id,
        "name": rooms["name"],
        "limit": target["room"].limit,
    }
    # An empty room: the first offer has a few slots and grows on request.
    assert welcome["slots"] == 4
    assert welcome["ice_servers"] == []


async def get_room(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    room_id: str,
    token: object,
    scheme: str = "Bearer",
) -> dict[str, Any]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    async with http.get(f"{server.url}/api/rooms/{room_id}", headers=headers) as r:
        raw = await r.read()
        body = json.loads(raw) if r.content_type == "application/json" else None
        return {"status": r.status, "raw": raw, "body": body, "headers": r.headers}


# The room API reads the token from a header, and a 100 KB header is over aiohttp's
# header size limit, so test_room_api_huge_header_rejected covers that case.
HTTP_CASES = [case for case in BAD_INVITE_CASES if case != "100 KB token"]


@pytest.mark.parametrize("case", HTTP_CASES)
async def test_room_api_bad_invite_rejected(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    rooms: dict[str, Any],
    case: str,
) -> None:
    room_id, token = rooms["cases"][case]

    answer = await get_room(http, server, room_id, token)

    assert answer["status"] == 403
    assert answer["body"] == {"error": INVALID_INVITE}
    assert_no_room_data(answer["raw"].decode(), rooms["name"])


async def test_room_api_rejections_identical(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any]
) -> None:
    target = rooms["target"]
    unknown_room = await get_room(
        http, server, secrets.token_urlsafe(12), target["guest"].token
    )
    answers = {"unknown room": unknown_room}
    for case in HTTP_CASES:
        room_id, token = rooms["cases"][case]
        answers[case] = await get_room(http, server, room_id, token)
    answers["basic scheme"] = await get_room(
        http, server, target["room"].id, target["guest"].token, scheme="Basic"
    )

    for case, answer in answers.items():
        assert answer["status"] == unknown_room["status"], case
        assert answer["raw"] == unknown_room["raw"], case


async def test_room_api_huge_header_rejected(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any]
) -> None:
    answer = await get_room(http, server, rooms["target"]["room"].id, "A" * 100_000)

    assert 400 <= answer["status"] < 500
    assert_no_room_data(answer["raw"].decode(errors="replace"), rooms["name"])


async def test_room_api_guest_answer(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any]
) -> None:
    target = rooms["target"]

    answer = await get_room(http, server, target["room"].id, target["guest"].token)

    assert answer["status"] == 200
    assert answer["body"] == {
        "room": {
            "id": target["room"].id,
            "name": rooms["name"],
            "limit": target["room"].limit,
            "participants": 0,
        },
        "role": "guest",
        "invite_url": None,
    }


async def test_room_api_host_gets_guest_link(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any]
) -> None:
    # The fixture made a revoked and an expired guest invite after the usable
    # one, so the link must skip the newer, unusable invites.
    target = rooms["target"]
    room_id = target["room"].id

    answer = await get_room(http, server, room_id, target["host"].token)

    assert answer["status"] == 200
    assert answer["body"]["role"] == "host"
    assert answer["body"]["room"]["name"] == rooms["name"]
    expected = f"{server.url}/r/{room_id}#{target['guest'].token}"
    assert answer["body"]["invite_url"] == expected


async def test_room_api_host_link_not_slot_bound(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    room = await server.create_room("Slot links")
    room_id = room["room"].id
    storage = await server.storage()
    try:
        plan = {"focus": 3000, "break": 600}
        slot = await storage.create_slot(room_id, time.time() + 3600, 3600, plan)
        bound = await storage.create_invite(room_id, ROLE_GUEST, slot_id=slot.id)
    finally:
        await storage.close()

    answer = await get_room(http, server, room_id, room["host"].token)

    assert answer["status"] == 200
    expected = f"{server.url}/r/{room_id}#{room['guest'].token}"
    assert answer["body"]["invite_url"] == expected
    assert bound.token not in answer["body"]["invite_url"]


async def test_room_api_host_without_guest_link(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    room = await server.create_room("No guests")
    storage = await server.storage()
    try:
        assert await storage.revoke_invite(room["guest"].id) is not None
    finally:
        await storage.close()

    answer = await get_room(http, server, room["room"].id, room["host"].token)

    assert answer["status"] == 200
    assert answer["body"]["role"] == "host"
    assert answer["body"]["invite_url"] is None


async def test_room_api_counts_participants(
    server: ServerProcess, http: aiohttp.ClientSession, rooms: dict[str, Any]
) -> None:
    target = rooms["target"]
    room_id, token = target["room"].id, target["guest"].token
    ws, _ = await join_raw(http, server, room_id, token)
    try:
        during = await get_room(http, server, room_id, token)
    finally:
        await ws.close()

    assert during["body"]["room"]["participants"] == 1


async def test_invalid_invite_flood_limited(
    tmp_path: Path, loopback_only: None
) -> None:
    server = ServerProcess(tmp_path / "limit.sqlite3", workers=1, admission_failures=5)
    await server.start()
    try:
        room = await server.create_room()
        room_id, token = room["room"].id, room["guest"].token
        async with aiohttp.ClientSession() as http:
            url = f"{server.url}/api/rooms/{room_id}"
            statuses = []
            for _ in range(6):
                headers = {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
                async with http.get(url, headers=headers) as response:
                    statuses.append(response.status)
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(url, headers=headers) as response:
                valid_status = response.status
                body = await response.json()
            ws = await open_socket(http, server)
            await send_json(ws, join_message(room_id, token))
            texts, code = await read_until_closed(ws)
    finally:
        await server.stop()

    assert statuses == [403] * 5 + [429]
    # Once blocked, the address cannot use even a valid invite for a minute.
    assert valid_status == 429
    assert body["error"]["code"] == "too_many_attempts"
    assert json.loads(texts[0])["code"] == "too_many_attempts"
    assert code == CLOSE_POLICY_VIOLATION


async def test_limit_per_client_behind_proxy(
    tmp_path: Path, loopback_only: None
) -> None:
    # The test client plays a reverse proxy on 127.0.0.1 that relays two
    # clients; their addresses only appear in headers.
    server = ServerProcess(
        tmp_path / "proxy.sqlite3",
        admission_failures=3,
        environment={"COWORKING_TRUSTED_PROXIES": "127.0.0.1"},
    )
    await server.start()
    try:
        room = await server.create_room()
        url = f"{server.url}/api/rooms/{room['room'].id}"
        guessing = {"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}
        honest = {
            "X-Forwarded-For": "203.0.113.6",
            "Authorization": f"Bearer {room['guest'].token}",
        }
        statuses = []
        async with aiohttp.ClientSession() as http:
            for _ in range(4):
                bad = {**guessing, "Authorization": "Bearer " + "x" * 32}
                async with http.get(url, headers=bad) as response:
                    statuses.append(response.status)
            async with http.get(url, headers=honest) as response:
                honest_status = response.status
    finally:
        await server.stop()

    assert statuses == [403, 403, 403, 429]
    assert honest_status == 200
