"""Reloading the room page and opening the invite in a second tab.

The rules under test: a reload is a new visit, so the page sends `leave` as it
unloads, the server removes the old participant at once, and the reloaded page
joins again as a new participant. Two tabs of one browser are two
participants, each with its own tile and connections. A reload does not keep
the microphone muted: the reloaded page opens its pre-join screen with the
microphone on when allowed, and sends nothing until the person clicks Join.
"""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Page

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import (
    invite_link,
    join,
    poll,
    server_counts,
    tile_ids,
    wait_frames,
    wait_server_idle,
    wait_tile_state,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

# How long another page may still show a participant who reloaded.
GHOST_LIMIT = 2.0
RELOADS = 5


async def wait_tiles(
    page: Page, expected: set[str], since: float, what: str
) -> float:
    """Wait until the page shows exactly the tiles ``expected``; return the
    seconds from ``since``, a time.monotonic() reading."""
    timeout = GHOST_LIMIT + 3
    await poll(lambda: tile_ids(page), lambda shown: shown == expected, timeout, what)
    return time.monotonic() - since


async def test_reload_leaves_no_ghost(
    server: ServerProcess, open_page: OpenPage
) -> None:
    await wait_server_idle(server)
    room = await server.create_room()
    room_id = room["room"].id
    blue = await open_page("blue", invite_link(server, room, "Blue"))
    red = await open_page("red", invite_link(server, room, "Red"))
    await join(blue)
    red_id = await join(red)
    await wait_frames(blue, {red_id})
    own = (await tile_ids(blue)) - {red_id}
    await red.click("#toggle-mic")
    await wait_tile_state(blue, red_id, mic="off", camera="on")

    ghost_times = []
    started = time.monotonic()
    for _ in range(RELOADS):
        reloaded_at = time.monotonic()
        await red.reload()
        ghost_times.append(
            await wait_tiles(blue, own, reloaded_at, "the reloaded tile's removal")
        )
        red_id = await join(red)
    elapsed = time.monotonic() - started
    await wait_frames(blue, {red_id})
    await wait_tile_state(blue, red_id, mic="on", camera="on")
    counts = await server_counts(server, room_id)

    print(f"{RELOADS} reloads in {elapsed:.1f} s, ghost tile for {ghost_times} s")
    assert max(ghost_times) <= GHOST_LIMIT
    assert await tile_ids(blue) == own | {red_id}
    assert counts["participants"] == 2
    assert counts["peer_connections"] == 2


async def test_second_tab_is_second_participant(
    server: ServerProcess, open_page: OpenPage
) -> None:
    await wait_server_idle(server)
    room = await server.create_room()
    room_id = room["room"].id
    link = invite_link(server, room, "Red")
    blue = await open_page("blue", invite_link(server, room, "Blue"))
    first = await open_page("red", link)
    second = await first.context.new_page()
    await second.goto(link)
    await join(blue)
    first_id = await join(first)
    second_id = await join(second)
    await wait_frames(blue, {first_id, second_id})
    counts = await server_counts(server, room_id)

    closed_at = time.monotonic()
    await second.close()
    own = (await tile_ids(blue)) - {second_id}
    gone_after = await wait_tiles(blue, own, closed_at, "the closed tab's tile")
    await wait_frames(blue, {first_id}, minimum=5)
    after = await server_counts(server, room_id)

    assert first_id != second_id
    assert counts["participants"] == 3
    assert counts["peer_connections"] == 3
    assert gone_after <= GHOST_LIMIT
    assert first_id in own
    assert after["participants"] == 2
