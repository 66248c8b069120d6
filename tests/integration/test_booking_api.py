"""The slot and booking API and slot-bound invites, against the real server.

The server runs with two workers, so every request also passes the front's relay.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.schedule import format_utc, parse_utc
from tests.integration.wire import (
    CLOSE_POLICY_VIOLATION,
    join_message,
    join_raw,
    open_socket,
    read_until_closed,
    send_json,
)
from tests.support.server import ServerProcess

PLAN = {"focus": 300, "break": 60}


@pytest.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    """A server whose slot-bound invites admit from the start, not minutes before."""
    process = ServerProcess(
        tmp_path_factory.mktemp("booking") / "coworking.sqlite3",
        environment={"COWORKING_SLOT_EARLY_MINUTES": "0"},
    )
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


def api(server: ServerProcess, room: dict[str, Any], path: str = "") -> str:
    return f"{server.url}/api/rooms/{room['room'].id}{path}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str,
    body: object = None,
) -> tuple[int, Any]:
    async with http.request(method, url, headers=auth(token), json=body) as response:
        return response.status, await response.json()


async def wait_until(iso_time: str) -> None:
    await asyncio.sleep(max(0.0, parse_utc(iso_time) - time.time() + 0.2))


async def create_slot(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    room: dict[str, Any],
    starts_in: float = 3600,
    **fields: Any,
) -> dict[str, Any]:
    body = {
        # Whole seconds, so the time sent is the time stored.
        "starts_at": format_utc(math.ceil(time.time() + starts_in)),
        "length": 3600,
        "plan": PLAN,
        **fields,
    }
    status, answer = await call(
        http, "POST", api(server, room, "/slots"), room["host"].token, body
    )
    assert status == 201, answer
    return answer["slot"]


async def test_host_creates_guest_lists(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room, title="<b>Deep</b> work", capacity=3)
    assert slot["plan"] == {
        "focus": 300,
        "break": 60,
        "long_break": 0,
        "rounds_before_long": 0,
    }
    status, listing = await call(
        http, "GET", api(server, room, "/slots"), room["guest"].token
    )
    assert status == 200
    assert [s["id"] for s in listing["slots"]] == [slot["id"]]
    assert listing["slots"][0]["title"] == "<b>Deep</b> work"
    assert listing["slots"][0]["capacity"] == 3
    assert "bookings" not in listing["slots"][0]


async def test_guest_cannot_change_slots(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room)
    guest = room["guest"].token
    slot_url = api(server, room, f"/slots/{slot['id']}")
    attempts = [
        (
            "POST",
            api(server, room, "/slots"),
            {"starts_at": slot["starts_at"], "length": 600, "plan": PLAN},
        ),
        ("PATCH", slot_url, {"title": "Taken over"}),
        ("DELETE", slot_url, None),
        ("POST", slot_url + "/invites", {}),
    ]
    for method, url, body in attempts:
        status, answer = await call(http, method, url, guest, body)
        assert status == 403, (method, url, answer)
        assert answer["error"]["code"] == "forbidden"
    _, listing = await call(http, "GET", api(server, room, "/slots"), guest)
    assert [(s["id"], s["title"], s["cancelled"]) for s in listing["slots"]] == [
        (slot["id"], "", False)
    ]


async def test_invalid_slot_requests(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    host = room["host"].token
    url = api(server, room, "/slots")
    start = format_utc(time.time() + 3600)
    cases = [
        ({"starts_at": "2026-05-04T09:00", "length": 600, "plan": PLAN}, "time zone"),
        ({"starts_at": start, "length": 600}, "Missing slot fields: plan"),
        ({"starts_at": start, "length": 600, "plan": PLAN, "x": 1}, "Unknown"),
        ({"starts_at": start, "length": "600", "plan": PLAN}, "Length must be"),
        ({"starts_at": start, "length": 200, "plan": {"focus": 300}}, "longer than"),
    ]
    for body, message in cases:
        status, answer = await call(http, "POST", url, host, body)
        assert status == 400, answer
        assert answer["error"]["code"] == "bad_request"
        assert message in answer["error"]["message"]

    async with http.post(url, headers=auth(host), data=b"{not json") as response:
        assert response.status == 400
        assert "not valid JSON" in (await response.json())["error"]["message"]
    async with http.post(
        url, headers=auth(host), data=b'{"title": "' + b"x" * 20000 + b'"}'
    ) as response:
        assert response.status == 413


async def test_booking_capacity_and_cancel(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room, capacity=1)
    guest = room["guest"].token
    bookings_url = api(server, room, f"/slots/{slot['id']}/bookings")

    status, first = await call(http, "POST", bookings_url, guest, {"name": "Ada"})
    assert status == 201, first
    assert first["slot"]["booked"] == 1
    assert len(first["secret"]) >= 32

    status, full = await call(http, "POST", bookings_url, guest, {"name": "Grace"})
    assert status == 409
    assert full["error"]["code"] == "slot_full"
    assert full["error"]["message"] == (
        "This slot is full: all 1 places are booked. Choose another slot."
    )

    cancel_url = api(server, room, f"/bookings/{first['booking']['id']}/cancel")
    status, wrong = await call(http, "POST", cancel_url, guest, {"secret": "nope"})
    assert status == 404
    assert wrong["error"]["code"] == "booking_not_found"
    status, cancelled = await call(
        http, "POST", cancel_url, guest, {"secret": first["secret"]}
    )
    assert status == 200
    assert cancelled["booking"]["cancelled"] is True

    status, second = await call(http, "POST", bookings_url, guest, {"name": "Grace"})
    assert status == 201, second
    _, listing = await call(
        http, "GET", api(server, room, "/slots"), room["host"].token
    )
    names = [
        (b["name"], b["attendance"])
        for s in listing["slots"]
        if s["id"] == slot["id"]
        for b in s["bookings"]
    ]
    assert names == [("Ada", "cancelled"), ("Grace", "pending")]


async def test_last_seat_race(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room, capacity=2)
    url = api(server, room, f"/slots/{slot['id']}/bookings")
    guest = room["guest"].token
    status, _ = await call(http, "POST", url, guest, {"name": "First"})
    assert status == 201

    results = await asyncio.gather(
        *(call(http, "POST", url, guest, {"name": f"Racer {i}"}) for i in range(6))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409, 409, 409, 409, 409]
    _, listing = await call(http, "GET", api(server, room, "/slots"), guest)
    assert listing["slots"][0]["booked"] == 2


async def test_calendar_download(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room, title="Write, edit; rest")
    url = api(server, room, f"/slots/{slot['id']}/calendar.ics")
    async with http.get(url, headers=auth(room["guest"].token)) as response:
        assert response.status == 200
        assert response.content_type == "text/calendar"
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="{slot["id"]}.ics"'
        )
        text = (await response.read()).decode()
    unfolded = text.replace("\r\n ", "")
    assert f"UID:{slot['id']}@127.0.0.1\r\n" in unfolded
    assert "SUMMARY:Write\\, edit\\; rest\r\n" in unfolded
    start = slot["starts_at"].replace("-", "").replace(":", "")
    assert f"DTSTART:{start}\r\n" in unfolded
    assert f"URL:{server.url}/r/{room['room'].id}#{room['guest'].token}" in unfolded

    async with http.get(url, headers=auth(room["host"].token)) as response:
        host_text = (await response.read()).decode()
    assert room["host"].token not in host_text.replace("\r\n ", "")


async def test_bound_invite_window(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(
        http, server, room, starts_in=4, length=10, plan={"focus": 5, "break": 5}
    )
    status, made = await call(
        http,
        "POST",
        api(server, room, f"/slots/{slot['id']}/invites"),
        room["host"].token,
        {},
    )
    assert status == 201, made
    token = made["invite"]["url"].rsplit("#", 1)[1]

    status, early = await call(http, "GET", api(server, room), token)
    assert status == 403
    assert early["error"]["code"] == "slot_not_open"
    assert early["opens_at"] == slot["starts_at"]
    assert early["slot"]["id"] == slot["id"]
    assert early["room"]["name"] == room["room"].name
    status, early_list = await call(http, "GET", api(server, room, "/slots"), token)
    assert status == 403
    assert early_list["error"]["code"] == "slot_not_open"

    ws = await open_socket(http, server)
    await send_json(ws, join_message(room["room"].id, token))
    texts, code = await read_until_closed(ws)
    assert code == CLOSE_POLICY_VIOLATION
    assert '"code": "slot_not_open"' in texts[0]

    await wait_until(slot["starts_at"])
    status, inside = await call(http, "GET", api(server, room), token)
    assert status == 200, inside
    ws, welcome = await join_raw(http, server, room["room"].id, token)
    assert welcome["participant"]["role"] == "guest"
    await ws.close()

    await asyncio.sleep(10)
    status, late = await call(http, "GET", api(server, room), token)
    assert status == 403
    assert late["error"]["code"] == "slot_ended"


async def test_cancelled_slot_invite(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room, starts_in=1, length=600)
    _, made = await call(
        http,
        "POST",
        api(server, room, f"/slots/{slot['id']}/invites"),
        room["host"].token,
        {},
    )
    token = made["invite"]["url"].rsplit("#", 1)[1]
    await wait_until(slot["starts_at"])
    status, _ = await call(http, "GET", api(server, room), token)
    assert status == 200
    status, _ = await call(
        http, "DELETE", api(server, room, f"/slots/{slot['id']}"), room["host"].token
    )
    assert status == 200
    status, refused = await call(http, "GET", api(server, room), token)
    assert status == 403
    assert refused["error"]["code"] == "slot_cancelled"
    status, listing = await call(
        http, "GET", api(server, room, "/slots"), room["guest"].token
    )
    assert status == 200
    assert [(s["id"], s["cancelled"]) for s in listing["slots"]] == [(slot["id"], True)]


async def test_join_marks_booking_attended(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room, starts_in=1, length=600)
    guest = room["guest"].token
    url = api(server, room, f"/slots/{slot['id']}/bookings")
    _, came = await call(http, "POST", url, guest, {"name": "Ada"})
    _, stayed_away = await call(http, "POST", url, guest, {"name": "Grace"})
    await wait_until(slot["starts_at"])

    ws = await open_socket(http, server)
    message = join_message(room["room"].id, guest, "Ada")
    message["booking"] = {"id": came["booking"]["id"], "secret": came["secret"]}
    await send_json(ws, message)
    welcome = await ws.receive_json(timeout=5)
    assert welcome["type"] == "welcome", welcome
    await ws.close()

    storage = await server.storage()
    try:
        bookings = {b.name: b for b in await storage.list_bookings(slot["id"])}
    finally:
        await storage.close()
    assert bookings["Ada"].attended_at is not None
    assert bookings["Grace"].attended_at is None
    assert stayed_away["booking"]["id"] == bookings["Grace"].id


async def test_join_with_malformed_booking(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    ws = await open_socket(http, server)
    message = join_message(room["room"].id, room["guest"].token)
    message["booking"] = "b123"
    await send_json(ws, message)
    reply = await ws.receive_json(timeout=5)
    assert reply["type"] == "error"
    assert reply["code"] == "bad_message"
    assert "booking" in reply["message"]
    await ws.close()


async def test_unknown_slot_and_other_room(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    other = await server.create_room("Other")
    slot = await create_slot(http, server, other)
    status, answer = await call(
        http,
        "POST",
        api(server, room, f"/slots/{slot['id']}/bookings"),
        room["guest"].token,
        {"name": "Ada"},
    )
    assert status == 404
    assert answer["error"]["code"] == "not_found"
    status, answer = await call(
        http, "GET", api(server, room, "/slots"), other["guest"].token
    )
    assert status == 403
    assert answer["error"]["code"] == "invalid_invite"


async def test_host_sees_who_came_after_the_end(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(
        http, server, room, starts_in=1, length=10, plan={"focus": 5, "break": 5}
    )
    guest = room["guest"].token
    url = api(server, room, f"/slots/{slot['id']}/bookings")
    _, came = await call(http, "POST", url, guest, {"name": "Ada"})
    await call(http, "POST", url, guest, {"name": "Grace"})
    await wait_until(slot["starts_at"])
    ws = await open_socket(http, server)
    message = join_message(room["room"].id, guest, "Ada")
    message["booking"] = {"id": came["booking"]["id"], "secret": came["secret"]}
    await send_json(ws, message)
    assert (await ws.receive_json(timeout=5))["type"] == "welcome"
    await ws.close()
    await wait_until(slot["ends_at"])

    _, hosts = await call(http, "GET", api(server, room, "/slots"), room["host"].token)
    ended = [s for s in hosts["slots"] if s["id"] == slot["id"]]
    assert len(ended) == 1
    assert [(b["name"], b["attendance"]) for b in ended[0]["bookings"]] == [
        ("Ada", "attended"),
        ("Grace", "no_show"),
    ]
    _, guests = await call(http, "GET", api(server, room, "/slots"), guest)
    assert slot["id"] not in [s["id"] for s in guests["slots"]]


async def test_host_removes_booking(
    http: aiohttp.ClientSession, server: ServerProcess, room: dict[str, Any]
) -> None:
    slot = await create_slot(http, server, room, capacity=1)
    guest = room["guest"].token
    _, made = await call(
        http,
        "POST",
        api(server, room, f"/slots/{slot['id']}/bookings"),
        guest,
        {"name": "Mallory"},
    )
    booking_url = api(server, room, f"/bookings/{made['booking']['id']}")

    status, refused = await call(http, "DELETE", booking_url, guest)
    assert status == 403
    assert refused["error"]["code"] == "forbidden"
    other = await server.create_room("Other")
    status, elsewhere = await call(
        http,
        "DELETE",
        f"{server.url}/api/rooms/{other['room'].id}/bookings/{made['booking']['id']}",
        other["host"].token,
    )
    assert status == 404
    assert elsewhere["error"]["code"] == "booking_not_found"

    status, removed = await call(http, "DELETE", booking_url, room["host"].token)
    assert status == 200
    assert removed["booking"]["cancelled"] is True
    _, listing = await call(http, "GET", api(server, room, "/slots"), guest)
    assert listing["slots"][0]["booked"] == 0
