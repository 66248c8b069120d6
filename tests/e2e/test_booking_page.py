"""Booking sessions on the room page, slot-bound invites and the host's schedule."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page

from server.schedule import Slot
from server.storage import ROLE_GUEST
from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import e2e_state, invite_link, join, poll, wait_phase
from tests.support.server import ServerProcess

EARLY_ZERO = {"COWORKING_SLOT_EARLY_MINUTES": "0"}
HOSTILE_TITLE = '<img src=x onerror="window.pwned=1">'
PLAN = {"focus": 30, "break": 10}


@pytest.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    """A server whose slot-bound invites admit from the start, not minutes before."""
    process = ServerProcess(
        tmp_path_factory.mktemp("booking-page") / "coworking.sqlite3",
        environment=EARLY_ZERO,
    )
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


async def add_slot(
    server: ServerProcess, room: dict[str, Any], starts_in: float, **fields: Any
) -> Slot:
    storage = await server.storage()
    try:
        return await storage.create_slot(
            room["room"].id,
            math.ceil(time.time() + starts_in),
            fields.pop("length", 600),
            fields.pop("plan", PLAN),
            **fields,
        )
    finally:
        await storage.close()


async def stored_slot(server: ServerProcess, slot_id: str) -> Slot:
    storage = await server.storage()
    try:
        slot = await storage.get_slot(slot_id)
    finally:
        await storage.close()
    assert slot is not None
    return slot


async def stored_bookings(server: ServerProcess, slot_id: str) -> list[Any]:
    storage = await server.storage()
    try:
        return await storage.list_bookings(slot_id)
    finally:
        await storage.close()


async def slot_text(page: Page, slot_id: str, selector: str) -> str | None:
    return await page.evaluate(
        """([slotId, selector]) => {
            const item = document.querySelector(`.slot[data-slot="${slotId}"]`);
            const node = item ? item.querySelector(selector) : null;
            return node ? node.textContent : null;
        }""",
        [slot_id, selector],
    )


async def wait_slot_text(
    page: Page, slot_id: str, selector: str, expected: str, timeout: float = 10.0
) -> None:
    await poll(
        lambda: slot_text(page, slot_id, selector),
        lambda text: text == expected,
        timeout,
        f"{selector} of slot {slot_id} to read {expected!r}",
    )


async def notice(page: Page) -> str:
    return await page.evaluate(
        "() => { const n = document.getElementById('booking-notice');"
        " return n.hidden ? '' : n.textContent; }"
    )


async def click_in_slot(page: Page, slot_id: str, selector: str) -> None:
    await page.click(f'.slot[data-slot="{slot_id}"] {selector}')


async def test_booking_survives_restart(
    tmp_path: Path, loopback_only: None, open_page: OpenPage
) -> None:
    own = ServerProcess(tmp_path / "coworking.sqlite3", environment=EARLY_ZERO)
    await own.start()
    try:
        room = await own.create_room("Restart room")
        slot = await add_slot(own, room, 3600, capacity=3, title="Morning focus")
        page = await open_page("red", invite_link(own, room, "Ada"))
        await wait_phase(page, "prejoin")
        await wait_slot_text(page, slot.id, ".slot-title", "Morning focus")
        plan_text = await slot_text(page, slot.id, ".slot-plan")
        assert plan_text == "Focus 30 s / break 10 s"
        await wait_slot_text(page, slot.id, ".slot-places", "0 of 3 places booked")

        await click_in_slot(page, slot.id, ".slot-book")
        await wait_slot_text(page, slot.id, ".slot-booked", "Booked as Ada")
        await wait_slot_text(page, slot.id, ".slot-places", "1 of 3 places booked")

        await own.stop()
        await own.start()
        assert [b.name for b in await stored_bookings(own, slot.id)] == ["Ada"]
        await page.reload()
        await wait_phase(page, "prejoin")
        await wait_slot_text(page, slot.id, ".slot-booked", "Booked as Ada")
        await wait_slot_text(page, slot.id, ".slot-places", "1 of 3 places booked")

        await click_in_slot(page, slot.id, ".slot-unbook")
        await wait_slot_text(page, slot.id, ".slot-places", "0 of 3 places booked")
        assert await notice(page) == "Your booking is cancelled."
        bookings = await stored_bookings(own, slot.id)
        assert [b.cancelled_at is not None for b in bookings] == [True]
    finally:
        await own.stop()


async def test_full_slot_message(server: ServerProcess, open_page: OpenPage) -> None:
    room = await server.create_room()
    slot = await add_slot(server, room, 3600, capacity=1)
    ada = await open_page("red", invite_link(server, room, "Ada"))
    grace = await open_page("blue", invite_link(server, room, "Grace"))
    for page in (ada, grace):
        await wait_phase(page, "prejoin")
        await wait_slot_text(page, slot.id, ".slot-places", "0 of 1 places booked")

    await click_in_slot(ada, slot.id, ".slot-book")
    await wait_slot_text(ada, slot.id, ".slot-booked", "Booked as Ada")
    # Grace's list is older than Ada's booking, so her button is still enabled.
    await click_in_slot(grace, slot.id, ".slot-book")
    await poll(
        lambda: notice(grace),
        lambda text: text.startswith("This slot is full"),
        10,
        "the full-slot notice",
    )
    await wait_slot_text(grace, slot.id, ".slot-places", "1 of 1 places booked (full)")
    disabled = await grace.is_disabled(f'.slot[data-slot="{slot.id}"] .slot-book')
    assert disabled


async def test_bound_invite_waits_then_opens(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    slot = await add_slot(server, room, 12, length=120, title="Afternoon sprint")
    # Book through a general invite first; the bookings stay in localStorage.
    booking_page = await open_page("red", invite_link(server, room, "Ada"))
    await wait_phase(booking_page, "prejoin")
    await wait_slot_text(booking_page, slot.id, ".slot-places", "0 of 25 places booked")
    await click_in_slot(booking_page, slot.id, ".slot-book")
    await wait_slot_text(booking_page, slot.id, ".slot-booked", "Booked as Ada")

    storage = await server.storage()
    try:
        bound = await storage.create_invite(
            room["room"].id, ROLE_GUEST, slot_id=slot.id
        )
    finally:
        await storage.close()
    page = await booking_page.context.new_page()
    await page.goto(f"{server.url}/r/{room['room'].id}?name=Ada#{bound.token}")

    await wait_phase(page, "waiting")
    title = await page.text_content("#waiting-title")
    assert title == "Afternoon sprint"
    countdown = await page.text_content("#waiting-countdown")
    assert countdown is not None
    # The slot's start is rounded up to a whole second, so 12 s can read 13.
    assert re.fullmatch(r"Opens in 00:00:(0\d|1[0-3])", countdown), countdown
    assert await page.is_hidden("#prejoin")
    assert time.time() < slot.starts_at

    await wait_phase(page, "prejoin", timeout=20)
    assert time.time() >= slot.starts_at - 0.5
    assert await page.is_hidden("#waiting")
    await join(page)

    async def attended() -> bool:
        bookings = await stored_bookings(server, slot.id)
        return bookings[0].attended_at is not None

    await poll(attended, bool, 10, "the booking marked attended")


async def test_ended_slot_invite(server: ServerProcess, open_page: OpenPage) -> None:
    room = await server.create_room()
    slot = await add_slot(server, room, 1, length=10, plan={"focus": 5})
    storage = await server.storage()
    try:
        bound = await storage.create_invite(
            room["room"].id, ROLE_GUEST, slot_id=slot.id
        )
    finally:
        await storage.close()
    await asyncio.sleep(max(0.0, slot.ends_at - time.time() + 0.2))
    page = await open_page("red", f"{server.url}/r/{room['room'].id}#{bound.token}")
    await wait_phase(page, "error")
    state = await e2e_state(page)
    assert state["error"] == "slot_ended"
    assert state["errorMessage"] == "This session is over."


async def test_slot_form_fields_fit_columns(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room("Form room", limit=10)
    host = await open_page(
        "red", f"{server.url}/r/{room['room'].id}#{room['host'].token}"
    )
    await wait_phase(host, "prejoin")
    await poll(
        lambda: host.is_visible("#slot-form"), bool, 10.0, "the slot form"
    )

    for field in ("#slot-start", "#slot-length", "#slot-title"):
        label = await host.locator(f"label:has({field})").bounding_box()
        box = await host.locator(field).bounding_box()
        assert label is not None
        assert box is not None
        label_right = label["x"] + label["width"]
        field_right = box["x"] + box["width"]
        assert field_right <= label_right + 0.5, f"{field} overflows its column"


async def test_host_schedules_from_page(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room("Schedule room", limit=10)
    zone = "Europe/Berlin"
    host = await open_page(
        "red",
        f"{server.url}/r/{room['room'].id}#{room['host'].token}",
        timezone_id=zone,
    )
    host.on("dialog", lambda dialog: dialog.accept())
    await wait_phase(host, "prejoin")
    assert await host.is_visible("#slot-form")

    local_start = (datetime.now(ZoneInfo(zone)) + timedelta(days=1)).replace(
        hour=10, minute=30, second=0, microsecond=0
    )
    await host.fill("#slot-start", local_start.strftime("%Y-%m-%dT%H:%M"))
    await host.fill("#slot-length", "90")
    await host.fill("#slot-focus", "25")
    await host.fill("#slot-break", "5")
    await host.fill("#slot-long-break", "15")
    await host.fill("#slot-rounds", "3")
    await host.fill("#slot-capacity", "4")
    await host.fill("#slot-title", HOSTILE_TITLE)
    await host.click("#slot-save")
    await poll(lambda: notice(host), lambda t: t == "Session scheduled.", 10, "notice")

    storage = await server.storage()
    try:
        slots = await storage.list_slots(room["room"].id)
    finally:
        await storage.close()
    assert len(slots) == 1
    slot = slots[0]
    assert slot.starts_at == local_start.timestamp()
    assert slot.length == 5400
    assert slot.plan.as_dict() == {
        "focus": 1500,
        "break": 300,
        "long_break": 900,
        "rounds_before_long": 3,
    }
    assert slot.capacity == 4
    assert slot.title == HOSTILE_TITLE

    guest = await open_page("blue", invite_link(server, room, "Grace"))
    await wait_phase(guest, "prejoin")
    await wait_slot_text(guest, slot.id, ".slot-title", HOSTILE_TITLE)
    plan_text = await slot_text(guest, slot.id, ".slot-plan")
    assert plan_text == (
        "Focus 25 min / break 5 min, long break 15 min after every 3 rounds"
    )
    assert await guest.is_hidden("#slot-form")
    assert await guest.locator("#slot-list img").count() == 0
    assert await guest.evaluate("() => typeof window.pwned") == "undefined"
    assert await guest.locator(f'.slot[data-slot="{slot.id}"] .slot-edit').count() == 0

    await click_in_slot(guest, slot.id, ".slot-book")
    await wait_slot_text(guest, slot.id, ".slot-booked", "Booked as Grace")
    await host.reload()
    await wait_phase(host, "prejoin")
    await poll(
        lambda: slot_text(host, slot.id, ".slot-booking"),
        lambda text: text == "Grace: booked Remove",
        10,
        "Grace's booking in the host's list",
    )
    await click_in_slot(host, slot.id, ".slot-remove-booking")
    await wait_slot_text(host, slot.id, ".slot-booking", "Grace: cancelled")
    bookings = await stored_bookings(server, slot.id)
    assert [(b.name, b.cancelled_at is not None) for b in bookings] == [("Grace", True)]

    await click_in_slot(host, slot.id, ".slot-invite")
    link = await poll(
        lambda: slot_text(host, slot.id, ".slot-link"),
        lambda text: text is not None,
        10,
        "the slot invite link",
    )
    assert link.startswith(f"{server.url}/r/{room['room'].id}#")
    storage = await server.storage()
    try:
        bound = await storage.get_invite_by_token(link.rsplit("#", 1)[1])
    finally:
        await storage.close()
    assert bound is not None and bound.slot_id == slot.id

    await click_in_slot(host, slot.id, ".slot-edit")
    await host.fill("#slot-title", "Writing sprint")
    await host.click("#slot-save")
    await wait_slot_text(host, slot.id, ".slot-title", "Writing sprint")
    assert (await stored_slot(server, slot.id)).title == "Writing sprint"

    await click_in_slot(host, slot.id, ".slot-cancel")
    await wait_slot_text(host, slot.id, ".slot-places", "Cancelled by the host")
    assert (await stored_slot(server, slot.id)).cancelled_at is not None
