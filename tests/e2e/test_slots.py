"""A browser in a room with more people than its first offer has slots for."""

from __future__ import annotations

import asyncio
import time

import pytest

import sfu.frames
import sfu.ice
from server.rooms import SLOT_STEP
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets, vp8_clip
from tests.support.server import ServerProcess

CLIP = vp8_clip(frames=60)
TONE = opus_packets(seconds=1.0)


@pytest.fixture(scope="module", autouse=True)
def scripted_peers() -> None:
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])


async def poll(page, script: str, timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {script}")
        await asyncio.sleep(0.1)


async def test_browser_grows_slots(server: ServerProcess, open_page) -> None:
    room = await server.create_room()
    room_id, token = room["room"].id, room["guest"].token
    page = await open_page("red", f"{server.url}/r/{room_id}?name=Ada#{token}")
    await poll(page, "window.e2e.phase === 'prejoin'")
    await page.click("#join")
    await poll(page, "window.e2e.phase === 'joined'")

    # The browser's first offer has SLOT_STEP slots; one more publisher
    # makes the server ask it for more.
    bots = [
        Bot(
            server.url,
            room_id,
            token,
            f"Bot {index}",
            audio=LoopTrack("audio", TONE, 0.02),
            video=LoopTrack("video", CLIP, 1 / 30),
            slots=0,
        )
        for index in range(SLOT_STEP + 1)
    ]
    try:
        for bot in bots:
            await bot.join()
        ids = [bot.id for bot in bots]
        script = (
            "window.e2eStats().then(s => "
            f"{ids!r}.every(id => s.participants[id] "
            "&& s.participants[id].framesDecoded > 10))"
        )
        await poll(page, script, timeout=20)
        tiles = await page.evaluate(
            "[...document.querySelectorAll('#tiles .tile')]"
            ".map(t => t.dataset.participant)"
        )
    finally:
        for bot in bots:
            await bot.close()

    assert set(ids) <= set(tiles)
    assert len(tiles) == len(bots) + 1
