"""Presence, chat and host controls in real Chromium pages."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Page

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import (
    invite_link,
    join,
    message,
    poll,
    wait_phase,
    wait_tile_ids,
    wait_tile_state,
)
from tests.e2e.test_room import (
    ENERGY_WINDOW,
    MUTE_SETTLE,
    SILENCE_ENERGY,
    energy_gain,
    wait_audio,
)
from tests.support.server import ServerProcess

MARKUP = "<img src=x onerror=alert(1)><b>bold</b>"
PROFILE_LINK = "https://example.org/red"


def host_link(server: ServerProcess, room: dict[str, Any], name: str) -> str:
    return f"{server.url}/r/{room['room'].id}?name={name}#{room['host'].token}"


async def chat_items(page: Page) -> list[dict[str, Any]]:
    return await page.evaluate(
        """() => [...document.querySelectorAll('#chat-log .chat-message')]
            .map((item) => ({
                name: item.querySelector('.chat-name').textContent,
                text: item.querySelector('.chat-text').textContent,
                html: item.querySelector('.chat-text').innerHTML,
                elements: item.querySelector('.chat-text').childElementCount,
                links: [...item.querySelectorAll('a')].map((a) => ({
                    href: a.getAttribute('href'), rel: a.rel,
                })),
            }))"""
    )


async def tile_presence(page: Page, participant_id: str) -> dict[str, Any] | None:
    return await page.evaluate(
        """(id) => {
            const tile = document.querySelector(`.tile[data-participant="${id}"]`);
            if (!tile) return null;
            const link = tile.querySelector('.tile-profile a');
            return {
                status: tile.dataset.status ?? null,
                goal: tile.querySelector('.tile-goal')?.textContent ?? null,
                profile: tile.querySelector('.tile-profile dl')?.textContent ?? null,
                href: link ? link.getAttribute('href') : null,
                rel: link ? link.rel : null,
            };
        }""",
        participant_id,
    )


async def wait_presence(
    page: Page, participant_id: str, field: str, expected: object
) -> dict[str, Any]:
    return await poll(
        lambda: tile_presence(page, participant_id),
        lambda p: p is not None and p[field] == expected,
        10.0,
        f"tile {participant_id} {field}={expected!r}",
    )


async def send_chat(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


async def test_chat_markup_shown_literally(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    red = await open_page("red", invite_link(server, room, "Red <i>x</i>"))
    blue = await open_page("blue", invite_link(server, room, "blue"))
    dialogs: list[str] = []
    for page in (red, blue):
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await join(red)
    await join(blue)

    await send_chat(red, MARKUP)
    await send_chat(red, "see https://example.org/a?b=1. or javascript:alert(2)")
    items = await poll(
        lambda: chat_items(blue), lambda i: len(i) == 2, 10.0, "two chat messages"
    )
    await asyncio.sleep(0.5)

    assert items[0]["text"] == MARKUP
    assert items[0]["elements"] == 0
    assert items[0]["name"] == "Red <i>x</i>"
    assert "&lt;img" in items[0]["html"]
    assert items[1]["links"] == [
        {"href": "https://example.org/a?b=1", "rel": "noopener noreferrer"}
    ]
    assert (
        await blue.evaluate("() => document.querySelectorAll('#chat img').length") == 0
    )
    assert dialogs == []
    assert len(await chat_items(red)) == 2


async def test_presence_shown_on_other_tile(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    red = await open_page("red", invite_link(server, room, "red"))
    blue = await open_page("blue", invite_link(server, room, "blue"))
    red_id = await join(red)
    await join(blue)

    await red.fill("#goal-input", "Finish <b>chapter</b> 3")
    await red.press("#goal-input", "Enter")
    await wait_presence(blue, red_id, "goal", "Finish <b>chapter</b> 3")

    await red.select_option("#status-select", "dnd")
    await wait_presence(blue, red_id, "status", "dnd")
    await red.select_option("#status-select", "")
    await wait_presence(blue, red_id, "status", "available")

    # The session clock drives the automatic status.
    await red.evaluate("() => window.e2eInject({type: 'clock', phase: 'focus'})")
    await wait_presence(blue, red_id, "status", "focus")
    await red.evaluate("() => window.e2eInject({type: 'clock', phase: 'long_break'})")
    await wait_presence(blue, red_id, "status", "break")

    await red.click("#edit-profile")
    await red.fill("#profile-role", "Illustrator")
    await red.fill("#profile-link", "javascript:alert(1)")
    await red.click("#profile-form button[type=submit]")
    error = await red.text_content("#profile-error")
    assert error is not None and "http://" in error
    await red.fill("#profile-link", PROFILE_LINK)
    await red.click("#profile-form button[type=submit]")
    shown = await wait_presence(blue, red_id, "href", PROFILE_LINK)

    assert shown["rel"] == "noopener noreferrer"
    assert "Illustrator" in shown["profile"]
    stored = await red.evaluate("() => localStorage.getItem('coworking.profile')")
    assert stored is not None and PROFILE_LINK in stored

    green = await open_page("green", invite_link(server, room, "green"))
    await join(green)
    late = await wait_presence(green, red_id, "href", PROFILE_LINK)
    assert late["goal"] == "Finish <b>chapter</b> 3"
    assert late["status"] == "break"


async def test_goal_keeps_emoji_sequence(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    red = await open_page("red", invite_link(server, room, "red"))
    blue = await open_page("blue", invite_link(server, room, "blue"))
    red_id = await join(red)
    await join(blue)
    # Woman, zero-width joiner, laptop: one technologist emoji.
    goal = "Ship it \U0001F469\u200d\U0001F4BB"

    await red.fill("#goal-input", goal)
    await red.press("#goal-input", "Enter")

    await wait_presence(blue, red_id, "goal", goal)


async def test_host_mutes_guest_audio_stops(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    host = await open_page("red", host_link(server, room, "host"))
    guest = await open_page("blue", invite_link(server, room, "guest"))
    host_id = await join(host)
    guest_id = await join(guest)
    await wait_tile_ids(host, {host_id, guest_id})
    await wait_audio(host, guest_id)
    assert await guest.locator(".tile-mute").count() == 0

    speaking = await energy_gain(host, guest_id, ENERGY_WINDOW)
    await host.click(f'.tile[data-participant="{guest_id}"] .tile-mute')
    await wait_tile_state(host, guest_id, mic="off", camera="on")
    await poll(
        lambda: message(guest),
        lambda text: "The host muted you" in text,
        5.0,
        "muted message",
    )
    await asyncio.sleep(MUTE_SETTLE)
    muted = await energy_gain(host, guest_id, ENERGY_WINDOW)
    print(f"audio energy gain over {ENERGY_WINDOW} s: {speaking} on, {muted} muted")

    assert speaking > SILENCE_ENERGY
    assert muted < SILENCE_ENERGY
    assert await guest.get_attribute("#toggle-mic", "data-state") == "off"

    # Only the guest can unmute.
    await guest.click("#toggle-mic")
    await wait_tile_state(host, guest_id, mic="on", camera="on")
    assert "The host muted you" not in await message(guest)


async def test_host_buttons_clear_of_name(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    host = await open_page("red", host_link(server, room, "host"))
    guest_name = "Grace with a long name that fills the label"
    guest = await open_page("blue", invite_link(server, room, guest_name))
    host_id = await join(host)
    guest_id = await join(guest)
    await wait_tile_ids(host, {host_id, guest_id})

    tile = f'.tile[data-participant="{guest_id}"]'
    label = await host.locator(f"{tile} .tile-label").bounding_box()
    buttons = await host.locator(f"{tile} .tile-host").bounding_box()

    assert label is not None
    assert buttons is not None
    label_top = label["y"]
    buttons_bottom = buttons["y"] + buttons["height"]
    label_right = label["x"] + label["width"]
    apart = buttons_bottom <= label_top or buttons["x"] >= label_right
    assert apart, f"host buttons {buttons} overlap the name label {label}"


async def test_host_removes_and_locks(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    host = await open_page("red", host_link(server, room, "host"))
    guest = await open_page("blue", invite_link(server, room, "guest"))
    host_id = await join(host)
    guest_id = await join(guest)
    await wait_tile_ids(host, {host_id, guest_id})

    await host.click("#toggle-lock")
    await poll(
        lambda: guest.is_visible("#lock-notice"), bool, 5.0, "lock notice on guest"
    )
    late = await open_page("green", invite_link(server, room, "late"))
    await wait_phase(late, "prejoin")
    await late.click("#join")
    await poll(lambda: message(late), lambda t: "locked" in t, 10.0, "locked error")
    await host.click("#toggle-lock")
    await poll(lambda: guest.is_hidden("#lock-notice"), bool, 5.0, "lock notice hidden")

    remove = f'.tile[data-participant="{guest_id}"] .tile-remove'
    await host.click(remove)
    await host.click(remove)
    await wait_tile_ids(host, {host_id})
    await poll(
        lambda: message(guest), lambda t: "removed you" in t, 5.0, "removed message"
    )
    await guest.reload()
    await wait_phase(guest, "prejoin")
    await guest.click("#join")
    await poll(
        lambda: message(guest), lambda t: "removed you" in t, 10.0, "barred again"
    )


PRESENCE_RULES = """async () => {
    const {PresenceState} = await import('/static/js/presence.js');
    const state = new PresenceState();
    const seen = {start: state.status};
    state.setIdle(true);
    seen.idle = state.status;
    state.setIdle(false);
    seen.back = state.status;
    state.setPhase('focus');
    state.setIdle(true);
    seen.focusIdle = state.status;
    state.setPhase('break');
    seen.breakIdle = state.status;
    state.setIdle(false);
    seen.breakActive = state.status;
    state.setManual('focus');
    seen.manualFocus = state.status;
    state.setPhase('focus');
    state.setPhase('long_break');
    seen.afterPhase = state.status;
    state.setManual('dnd');
    state.setPhase('focus');
    seen.dndKept = state.status;
    state.setManual('bogus');
    seen.bogus = state.status;
    return seen;
}"""


async def test_presence_status_rules(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    page = await open_page("red", invite_link(server, room, "red"))
    await wait_phase(page, "prejoin")

    seen = await page.evaluate(PRESENCE_RULES)

    assert seen == {
        "start": "available",
        "idle": "away",
        "back": "available",
        "focusIdle": "focus",
        "breakIdle": "away",
        "breakActive": "break",
        "manualFocus": "focus",
        "afterPhase": "break",
        "dndKept": "dnd",
        "bogus": "focus",
    }
