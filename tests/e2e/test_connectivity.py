"""The page's connection test against a real TURN server, and without one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import invite_link, join, poll
from tests.support.server import ServerProcess, free_port
from tests.support.turn import TurnServer

CHECK_TIMEOUT = 20.0


async def turn_app(folder: Any, turn_urls: str, secret: str) -> ServerProcess:
    process = ServerProcess(
        folder / "coworking.sqlite3",
        workers=1,
        environment={
            "COWORKING_TURN_URLS": turn_urls,
            "COWORKING_TURN_SECRET": secret,
        },
    )
    await process.start()
    return process


@pytest.fixture
async def relayed_server(
    tmp_path: Any, turn_relay: TurnServer
) -> AsyncIterator[ServerProcess]:
    process = await turn_app(tmp_path, turn_relay.url, turn_relay.secret)
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


@pytest.fixture
async def unreachable_turn_server(
    tmp_path: Any, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    # Nothing listens on this port, as when a firewall drops the packets.
    url = f"turn:127.0.0.1:{free_port()}?transport=udp"
    process = await turn_app(tmp_path, url, "s" * 24)
    yield process
    await process.stop()


async def run_check(page: Page) -> dict[str, Any]:
    await page.click("#check-connection")
    return await poll(
        lambda: page.evaluate(
            """() => {
                const section = document.getElementById('connectivity');
                return {
                    direct: section.dataset.direct ?? null,
                    turn: section.dataset.turn ?? null,
                    lines: [...section.querySelectorAll('li')]
                        .map((item) => item.textContent),
                };
            }"""
        ),
        lambda result: result["turn"] is not None,
        CHECK_TIMEOUT,
        "the connection test's result",
    )


async def wait_connected(page: Page) -> None:
    await poll(
        lambda: page.evaluate("async () => (await window.e2eStats()).pair"),
        lambda pair: pair is not None,
        10.0,
        "a selected candidate pair",
    )


async def test_check_direct_and_turn_work(
    relayed_server: ServerProcess, open_page: OpenPage
) -> None:
    room = await relayed_server.create_room()
    page = await open_page("red", invite_link(relayed_server, room, "Ada"))
    await join(page)
    await wait_connected(page)

    result = await run_check(page)

    assert result["direct"] == "ok"
    assert result["turn"] == "ok"
    assert result["lines"][0].startswith("Direct media: works.")
    assert result["lines"][1].startswith("TURN relay: works.")


async def test_check_reports_unreachable_turn(
    unreachable_turn_server: ServerProcess, open_page: OpenPage
) -> None:
    room = await unreachable_turn_server.create_room()
    page = await open_page("red", invite_link(unreachable_turn_server, room, "Ada"))
    await join(page)
    await wait_connected(page)

    result = await run_check(page)

    assert result["direct"] == "ok"
    assert result["turn"] == "unreachable"
    assert result["lines"][1].startswith("TURN relay: blocked.")


async def test_check_without_turn_server(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    page = await open_page("red", invite_link(server, room, "Ada"))
    await join(page)
    await wait_connected(page)

    result = await run_check(page)

    assert result["direct"] == "ok"
    assert result["turn"] == "none"
    assert result["lines"][1] == "TURN relay: this server offers none."
