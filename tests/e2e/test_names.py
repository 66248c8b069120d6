"""Display names: prefilled from the link or from the last visit, shown as text."""

from __future__ import annotations

import logging

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import invite_link, join, tile, wait_phase, wait_tile_state
from tests.support.server import ServerProcess

logger = logging.getLogger(__name__)

HOSTILE_NAME = '<img src=x onerror="window.pwned=1">'


async def test_name_prefilled_from_link_then_storage(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    first = await open_page("red", invite_link(server, room, "Ada Lovelace"))
    await wait_phase(first, "prejoin")
    assert await first.input_value("#name") == "Ada Lovelace"
    await join(first)

    second = await first.context.new_page()
    await second.goto(invite_link(server, room))
    await wait_phase(second, "prejoin")
    assert await second.input_value("#name") == "Ada Lovelace"


async def test_name_without_storage_starts_empty(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    page = await open_page("red", invite_link(server, room))
    await wait_phase(page, "prejoin")
    assert await page.input_value("#name") == ""


async def test_hostile_name_shown_as_text(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    hostile = await open_page("red", invite_link(server, room, HOSTILE_NAME))
    viewer = await open_page("blue", invite_link(server, room, "Viewer"))
    await wait_phase(hostile, "prejoin")
    assert await hostile.input_value("#name") == HOSTILE_NAME
    hostile_id = await join(hostile)
    await join(viewer)
    await wait_tile_state(viewer, hostile_id, mic="on", camera="on")

    for page in (viewer, hostile):
        shown = await tile(page, hostile_id)
        assert shown is not None
        assert shown["name"] == HOSTILE_NAME
        assert await page.locator("#tiles img").count() == 0
        assert await page.evaluate("() => typeof window.pwned") == "undefined"
