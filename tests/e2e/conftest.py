"""Playwright fixtures: one Chromium per participant, each with its own camera."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright

from tests.support.browser import BROWSER_ARGS, CHROMIUM, write_y4m

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
async def playwright(loopback_only: None) -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


Launch = Callable[[str], Awaitable[Browser]]
OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture(scope="session")
async def launch_browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Launch]:
    """Browsers keyed by camera colour, started on first use and kept."""
    started: dict[str, Browser] = {}
    folder = tmp_path_factory.mktemp("cameras")

    async def launch(colour: str) -> Browser:
        if colour not in started:
            camera = write_y4m(folder / f"{colour}.y4m", colour)
            started[colour] = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"],
            )
        return started[colour]

    yield launch
    for browser in started.values():
        await browser.close()


@pytest.fixture
async def open_page(launch_browser: Launch) -> AsyncIterator[OpenPage]:
    """Open a page in a fresh context of the browser with the given camera."""
    contexts = []

    async def open_(colour: str, url: str, **context_args: object) -> Page:
        browser = await launch_browser(colour)
        context = await browser.new_context(**context_args)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: print(f"[{colour}] page error: {error}"))
        page.on(
            "console",
            lambda msg: (
                print(f"[{colour}] console {msg.type}: {msg.text}")
                if msg.type in ("error", "warning")
                else None
            ),
        )
        await page.goto(url)
        return page

    yield open_
    for context in contexts:
        await context.close()


def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
