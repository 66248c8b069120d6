"""A server restart with people in a room: stored data stays, pages come back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import e2e_state, invite_link, join, poll, wait_frames
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

# The page retries after 1, 2, 4, 8 and then every 10 s, so it is back within
# about 10 s of the server's start. The rest is room for a busy machine.
RECONNECT_TIMEOUT = 40.0
PLAN = {"focus": 1500, "break": 300, "long_break": 900, "rounds_before_long": 4}


@pytest.fixture
async def own_server(
    tmp_path: Path, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path / "coworking.sqlite3")
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


async def new_participant_id(page: Page, old: str) -> str:
    state = await poll(
        lambda: e2e_state(page),
        lambda s: s.get("phase") == "joined"
        and s.get("participantId") not in (None, old),
        RECONNECT_TIMEOUT,
        "a new participant id after the restart",
    )
    return state["participantId"]


async def room_status(server: ServerProcess, room_id: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/rooms/{room_id}", headers=headers) as r:
            return r.status


async def test_restart_keeps_data_and_reconnects(
    own_server: ServerProcess, open_page: OpenPage
) -> None:
    room = await own_server.create_room("Restarted room")
    room_id = room["room"].id
    storage = await own_server.storage()
    try:
        slot = await storage.create_slot(room_id, time.time() + 86400, 3600, PLAN)
        booking, _ = await storage.create_booking(slot.id, "Ada")
    finally:
        await storage.close()
    pages = {
        colour: await open_page(colour, invite_link(own_server, room, colour))
        for colour in ("red", "blue")
    }
    ids = {colour: await join(page) for colour, page in pages.items()}
    await wait_frames(pages["red"], {ids["blue"]})

    await own_server.stop()
    await own_server.start()
    new_ids = {
        colour: await new_participant_id(page, ids[colour])
        for colour, page in pages.items()
    }
    await wait_frames(pages["red"], {new_ids["blue"]}, timeout=20)
    await wait_frames(pages["blue"], {new_ids["red"]}, timeout=20)

    storage = await own_server.storage()
    try:
        slots = await storage.list_slots(room_id)
        bookings = await storage.list_bookings(slot.id)
    finally:
        await storage.close()
    assert await room_status(own_server, room_id, room["guest"].token) == 200
    assert await room_status(own_server, room_id, room["host"].token) == 200
    assert [s.id for s in slots] == [slot.id]
    assert [b.id for b in bookings] == [booking.id]
