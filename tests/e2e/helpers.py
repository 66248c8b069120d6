"""Waiting and reading helpers for the room page.

The page's Content-Security-Policy forbids eval, so `Page.wait_for_function`
with a string fails there. These helpers poll with `Page.evaluate`, which runs
through the DevTools protocol and is not subject to the policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from playwright.async_api import Page

from tests.support.server import ServerProcess

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_INTERVAL = 0.1
INVALID_INVITE_MESSAGE = "This invite link is not valid or has expired."


async def poll(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    timeout: float,
    what: str,
) -> T:
    """Call `probe` until `check` accepts its value, and return that value.

    Raises AssertionError naming `what` and the last value when `timeout`
    seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; last value {value!r}"
            )
        await asyncio.sleep(POLL_INTERVAL)


def invite_link(
    server: ServerProcess, room: dict[str, Any], name: str | None = None
) -> str:
    """Return the guest invite link of a room made by `create_room`."""
    query = f"?name={quote(name)}" if name is not None else ""
    return f"{server.url}/r/{room['room'].id}{query}#{room['guest'].token}"


async def phase(page: Page) -> str | None:
    return await page.evaluate("() => window.e2e ? window.e2e.phase : null")


async def wait_phase(page: Page, expected: str, timeout: float = 10.0) -> None:
    await poll(
        lambda: phase(page), lambda p: p == expected, timeout, f"phase {expected}"
    )


async def e2e_state(page: Page) -> dict[str, Any]:
    return await page.evaluate("() => JSON.parse(JSON.stringify(window.e2e))")


async def join(page: Page, timeout: float = 10.0) -> str:
    """Click Join once the pre-join screen is ready, and return the participant id."""
    await wait_phase(page, "prejoin", timeout)
    await page.click("#join")
    await wait_phase(page, "joined", timeout)
    state = await e2e_state(page)
    return state["participantId"]


async def tiles(page: Page) -> list[dict[str, Any]]:
    """Describe each tile: participant id, local flag, mic, camera and name."""
    return await page.evaluate(
        """() => [...document.querySelectorAll('#tiles .tile[data-participant]')]
            .map((tile) => ({
                id: tile.dataset.participant,
                local: tile.dataset.local === 'true',
                mic: tile.dataset.mic,
                camera: tile.dataset.camera,
                name: tile.querySelector('.tile-name')?.textContent ?? null,
            }))"""
    )


async def tile_ids(page: Page) -> set[str]:
    return {tile["id"] for tile in await tiles(page)}


async def wait_tile_ids(page: Page, expected: set[str], timeout: float = 10.0) -> None:
    await poll(lambda: tile_ids(page), lambda ids: ids == expected, timeout, "tile ids")


async def tile(page: Page, participant_id: str) -> dict[str, Any] | None:
    return next((t for t in await tiles(page) if t["id"] == participant_id), None)


async def wait_tile_state(
    page: Page, participant_id: str, mic: str, camera: str, timeout: float = 5.0
) -> None:
    await poll(
        lambda: tile(page, participant_id),
        lambda t: t is not None and t["mic"] == mic and t["camera"] == camera,
        timeout,
        f"tile {participant_id} mic={mic} camera={camera}",
    )


async def stats(page: Page) -> dict[str, Any]:
    """Return `e2eStats()`: receive counters per remote participant, and the pair."""
    return await page.evaluate("() => window.e2eStats()")


async def remote_stats(page: Page, participant_id: str) -> dict[str, Any]:
    return (await stats(page))["participants"].get(participant_id) or {}


async def wait_frames(
    page: Page, participant_ids: set[str], minimum: int = 10, timeout: float = 10.0
) -> dict[str, Any]:
    """Wait until more than `minimum` frames of each participant were decoded."""

    def enough(report: dict[str, Any]) -> bool:
        received = report["participants"]
        return all(
            received.get(pid, {}).get("framesDecoded", 0) > minimum
            for pid in participant_ids
        )

    return await poll(lambda: stats(page), enough, timeout, "frames decoded")


async def colour_of(page: Page, participant_id: str) -> list[int] | None:
    return await page.evaluate("(id) => window.e2eColor(id)", participant_id)


async def audio_energy(page: Page, participant_id: str) -> float:
    return (await remote_stats(page, participant_id)).get("totalAudioEnergy", 0.0)


async def page_text(page: Page) -> str:
    """Return the rendered text and the title of the page."""
    return await page.evaluate(
        "() => document.title + '\\n' + document.documentElement.innerText"
    )


async def message(page: Page) -> str:
    return await page.evaluate(
        "() => { const m = document.getElementById('message');"
        " return m.hidden ? '' : m.textContent; }"
    )


async def server_counts(server: ServerProcess, room_id: str) -> dict[str, int]:
    """Return the admin counters a participant adds to and removes from."""
    report = await server.stats()
    room = report["rooms"].get(room_id, {})
    return {
        "peer_connections": report["sfu"]["peer_connections"],
        "forwarders": report["sfu"]["forwarders"],
        "participants": room.get("participants", 0),
        "tasks": report["process"]["tasks"],
    }


async def wait_server_idle(server: ServerProcess, timeout: float = 15.0) -> None:
    """Wait until participants of earlier tests are gone from the server."""

    async def peer_connections() -> int:
        return (await server.stats())["sfu"]["peer_connections"]

    await poll(peer_connections, lambda n: n == 0, timeout, "server peer connections")
