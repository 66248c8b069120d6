"""The shared clock and virtual coffee in real Chromium pages.

The server runs a plan of seconds (COWORKING_SESSION_PLAN), so phases change
by themselves within a test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import Page

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import (
    colour_of,
    invite_link,
    join,
    poll,
    remote_stats,
    stats,
    wait_frames,
    wait_tile_state,
)
from tests.support.browser import is_colour
from tests.support.server import ServerProcess

# Focus 6 s, break 20 s, a long break after 2 rounds.
PLAN = "6s/20s/2/20s"
FOCUS_SECONDS = 6
# Audio already in flight still arrives for a moment after the mute.
MUTE_SETTLE = 1.0
SILENCE_WINDOW = 2.0
MAX_CLOCK_DIFFERENCE_MS = 1000
# A page whose own clock is this far ahead must still show the server's time.
SKEW_MS = 3_600_000
SKEW_SCRIPT = f"""(() => {{
    const realNow = Date.now;
    Date.now = () => realNow.call(Date) + {SKEW_MS};
}})();"""


@pytest.fixture(scope="module")
async def session_server(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    db: Path = tmp_path_factory.mktemp("session-e2e") / "coworking.sqlite3"
    process = ServerProcess(db, environment={"COWORKING_SESSION_PLAN": PLAN})
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


def host_link(server: ServerProcess, room: dict[str, Any], name: str) -> str:
    return f"{server.url}/r/{room['room'].id}?name={quote(name)}#{room['host'].token}"


async def clock_view(page: Page) -> dict[str, Any]:
    """Return the clock's phase, remaining milliseconds and text as shown."""
    return await page.evaluate(
        """() => {
            const clock = document.querySelector('.clock');
            const time = document.getElementById('clock-time');
            return {
                phase: clock.dataset.phase,
                paused: clock.dataset.paused,
                remaining: time.dataset.remainingMs === ''
                    ? null : Number(time.dataset.remainingMs),
                text: time.textContent,
            };
        }"""
    )


async def wait_clock_phase(page: Page, phase: str, timeout: float = 10.0) -> None:
    await poll(
        lambda: clock_view(page),
        lambda v: v["phase"] == phase,
        timeout,
        f"clock phase {phase}",
    )


def seconds_of(text: str) -> int:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


async def assert_same_clock(pages: list[Page]) -> None:
    views = await asyncio.gather(*(clock_view(page) for page in pages))
    remaining = [view["remaining"] for view in views]
    assert all(r is not None for r in remaining), views
    # The display refreshes every 200 ms, so two pages read at one moment
    # differ by at most that much plus the real disagreement.
    assert max(remaining) - min(remaining) < MAX_CLOCK_DIFFERENCE_MS, views
    shown = [seconds_of(view["text"]) for view in views]
    assert max(shown) - min(shown) <= 1, views


async def visible(page: Page, selector: str) -> bool:
    return await page.evaluate(
        "(s) => { const e = document.querySelector(s);"
        " return Boolean(e) && !e.hidden && e.offsetParent !== null; }",
        selector,
    )


async def test_clock_same_for_everyone(
    session_server: ServerProcess, open_page: OpenPage
) -> None:
    room = await session_server.create_room()
    host = await open_page("red", host_link(session_server, room, "Host"))
    guest = await open_page("blue", invite_link(session_server, room, "Guest"))
    await join(host)
    await join(guest)
    assert await visible(host, "#clock-start")
    assert not await visible(guest, "#clock-start")
    assert not await visible(guest, ".clock-controls")

    await host.click("#clock-start")
    for page in (host, guest):
        await wait_clock_phase(page, "focus")
    await assert_same_clock([host, guest])
    start = await clock_view(guest)
    assert FOCUS_SECONDS * 1000 - 1500 < start["remaining"] <= FOCUS_SECONDS * 1000

    late = await open_page("green", invite_link(session_server, room, "Late"))
    # The late page's clock runs an hour ahead; it must count from the server's.
    await late.add_init_script(SKEW_SCRIPT)
    await late.reload()
    skew = await late.evaluate("() => Date.now() - new Date().getTime()")
    assert skew == SKEW_MS
    late_id = await join(late)
    await wait_clock_phase(late, "focus")
    # Joining during focus mutes the newcomer too.
    await wait_tile_state(host, late_id, mic="off", camera="on")
    await assert_same_clock([host, guest, late])

    # The focus phase ends by itself after FOCUS_SECONDS.
    for page in (host, guest, late):
        await wait_clock_phase(page, "break", timeout=FOCUS_SECONDS + 3)
    await assert_same_clock([host, guest, late])
    notice = await guest.evaluate(
        "() => document.getElementById('clock-notice').textContent"
    )
    assert "Break" in notice

    await host.click("#clock-pause")
    for page in (host, guest, late):
        await poll(
            lambda p=page: clock_view(p),
            lambda v: v["paused"] == "true",
            5,
            "paused clock",
        )
    paused = await clock_view(guest)
    await asyncio.sleep(1.5)
    assert (await clock_view(guest))["remaining"] == paused["remaining"]
    await assert_same_clock([host, guest, late])


async def audio_packets(page: Page, participant_id: str) -> int:
    return (await remote_stats(page, participant_id)).get("audioPacketsReceived", 0)


async def wait_audio_flowing(page: Page, participant_id: str) -> None:
    first = await audio_packets(page, participant_id)
    await poll(
        lambda: audio_packets(page, participant_id),
        lambda n: n > first + 20,
        10,
        f"audio packets from {participant_id}",
    )


async def packets_in_window(page: Page, participant_id: str) -> int:
    before = await audio_packets(page, participant_id)
    await asyncio.sleep(SILENCE_WINDOW)
    return await audio_packets(page, participant_id) - before


async def send_encoding(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        "() => { const e = window.e2eSendEncoding();"
        " return e ? JSON.parse(JSON.stringify(e)) : null; }"
    )


async def test_focus_mutes_and_break_unmutes(
    session_server: ServerProcess, open_page: OpenPage
) -> None:
    room = await session_server.create_room()
    host = await open_page("red", host_link(session_server, room, "Host"))
    guest = await open_page("blue", invite_link(session_server, room, "Guest"))
    host_id = await join(host)
    guest_id = await join(guest)
    await wait_audio_flowing(host, guest_id)
    await wait_audio_flowing(guest, host_id)
    assert (await send_encoding(guest)).get("maxBitrate") is None

    await host.click("#clock-start")
    await wait_clock_phase(host, "focus")
    # Paused, the focus phase outlasts the checks below.
    await host.click("#clock-pause")
    await wait_tile_state(host, guest_id, mic="off", camera="on")
    await wait_tile_state(guest, host_id, mic="off", camera="on")
    await asyncio.sleep(MUTE_SETTLE)
    assert await packets_in_window(host, guest_id) == 0
    assert await packets_in_window(guest, host_id) == 0
    for page in (host, guest):
        encoding = await poll(
            lambda p=page: send_encoding(p),
            lambda e: e is not None and e.get("maxBitrate") == 300_000,
            5,
            "focus send profile",
        )
        assert encoding["maxFramerate"] == 15
        assert encoding["scaleResolutionDownBy"] == 1

    await host.click("#clock-skip")
    await wait_clock_phase(guest, "break")
    await poll(
        lambda: send_encoding(guest),
        lambda e: e is not None and e.get("maxBitrate") is None,
        5,
        "restored send profile",
    )
    assert await packets_in_window(host, guest_id) == 0, "a break must not unmute"
    await guest.click("#toggle-mic")
    await wait_tile_state(host, guest_id, mic="on", camera="on")
    await wait_audio_flowing(host, guest_id)


async def test_coffee_pairs_at_break(
    session_server: ServerProcess, open_page: OpenPage
) -> None:
    room = await session_server.create_room()
    colours = ("red", "blue", "green", "yellow")
    pages: dict[str, Page] = {}
    for colour in colours:
        link = (
            host_link(session_server, room, colour)
            if colour == "red"
            else invite_link(session_server, room, colour)
        )
        pages[colour] = await open_page(colour, link)
    ids = {colour: await join(page) for colour, page in pages.items()}
    for colour, page in pages.items():
        await wait_frames(page, {ids[c] for c in colours if c != colour}, minimum=5)
        await page.click("#coffee-toggle")

    await pages["red"].click("#clock-start")
    # Four browsers share the machine with the server, so allow for load.
    await wait_clock_phase(pages["red"], "focus", timeout=20)
    # The break starts by itself after the focus phase.
    for page in pages.values():
        await wait_clock_phase(page, "break", timeout=FOCUS_SECONDS + 3)

    partners: dict[str, str] = {}
    for colour, page in pages.items():
        members = await poll(
            lambda p=page: p.evaluate(
                "() => { const t = document.querySelector('.coffee-title');"
                " return document.getElementById('coffee-panel').hidden"
                " ? null : t.textContent; }"
            ),
            lambda text: text is not None,
            5,
            f"{colour} coffee panel",
        )
        others = [c for c in colours if c != colour and c in members]
        assert len(others) == 1, f"{colour} is with {members!r}"
        partners[colour] = others[0]
    for colour, partner in partners.items():
        assert partners[partner] == colour

    for colour, page in pages.items():
        partner = partners[colour]
        await poll(
            lambda p=page: stats(p),
            lambda s, pid=ids[partner]: set(s["participants"]) == {pid},
            5,
            f"{colour} receiving only {partner}",
        )
        rgb = await poll(
            lambda p=page, pid=ids[partner]: colour_of(p, pid),
            lambda value, c=partner: is_colour(value, c),
            5,
            f"{partner} video on the {colour} page",
        )
        assert is_colour(rgb, partner)
        for other in colours:
            if other in (colour, partner):
                continue
            assert await colour_of(page, ids[other]) is None, (
                f"{colour} still shows {other}"
            )

    await pages["red"].click("#clock-skip")
    await wait_clock_phase(pages["red"], "focus")
    # Paused, the focus phase outlasts the checks below.
    await pages["red"].click("#clock-pause")
    for colour, page in pages.items():
        await wait_clock_phase(page, "focus")
        for other in colours:
            if other == colour:
                continue
            await poll(
                lambda p=page, pid=ids[other]: colour_of(p, pid),
                lambda value, c=other: is_colour(value, c),
                10,
                f"{other} video on the {colour} page after the break",
            )
