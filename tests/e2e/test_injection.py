"""Script and markup payloads in names, goals and chat are shown as text."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import invite_link, join, poll, tile
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

PAYLOADS = [
    '<img src=x onerror="window.pwned=1">',
    '<svg onload="window.pwned=2"></svg>',
    '<a href="javascript:window.pwned=3">link</a>',
    '<iframe srcdoc="<script>parent.pwned=4</script>"></iframe>',
    "{{constructor.constructor('window.pwned=5')()}} ${window.pwned=6}",
    "\u202egnp.exe\u202c <script>window.pwned=7</script>",
]
# Elements and attributes a payload would create if it were parsed as HTML.
INJECTED = (
    "#tiles img, #tiles iframe, #tiles script, #chat img, #chat svg, #chat iframe, "
    "#chat script, [onerror], [onload], [srcdoc], a[href^=javascript]"
)


def cleaned(text: str) -> str:
    """Return ``text`` as the page sends names and goals: formatting characters
    such as right-to-left overrides removed and runs of spaces collapsed."""
    return " ".join(text.replace("\u202e", "").replace("\u202c", "").split())


async def chat_texts(page: Page) -> list[str]:
    return await page.evaluate(
        "() => [...document.querySelectorAll('#chat .chat-text')]"
        ".map((e) => e.textContent)"
    )


async def send_chat(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


async def goal_of(page: Page, participant_id: str) -> str | None:
    return await page.evaluate(
        "(id) => document.querySelector(`.tile[data-participant=\"${id}\"] .tile-goal`)"
        "?.textContent ?? null",
        participant_id,
    )


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
async def test_payload_shown_as_text(
    server: ServerProcess, open_page: OpenPage, index: int
) -> None:
    payload = PAYLOADS[index]
    room = await server.create_room()
    red = await open_page("red", invite_link(server, room, payload[:64]))
    blue = await open_page("blue", invite_link(server, room, "Blue"))
    dialogs: list[str] = []
    for page in (red, blue):
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    red_id = await join(red)
    await join(blue)

    await red.fill("#goal-input", payload[:140])
    await red.press("#goal-input", "Enter")
    await send_chat(red, payload)
    goal = await poll(
        lambda: goal_of(blue, red_id),
        lambda g: g == cleaned(payload[:140]),
        10,
        "the goal",
    )
    # The server rejects chat with formatting characters (bad_message), so
    # the right-to-left payload never reaches the other page.
    rejected = payload != cleaned(payload) and "\u202e" in payload
    if not rejected:
        await poll(lambda: chat_texts(blue), lambda t: len(t) == 1, 10, "chat")
    await asyncio.sleep(0.5)
    texts = await chat_texts(blue)
    shown = await tile(blue, red_id)

    assert shown is not None
    assert shown["name"] == cleaned(payload[:64])
    assert goal == cleaned(payload[:140])
    assert texts == ([] if rejected else [payload])
    for page in (red, blue):
        assert await page.locator(INJECTED).count() == 0
        assert await page.evaluate("() => typeof window.pwned") == "undefined"
    assert dialogs == []
