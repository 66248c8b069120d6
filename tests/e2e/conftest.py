"""Playwright fixtures: one Chromium per participant, each with its own camera."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    async_playwright,
)

from tests.support.browser import BROWSER_ARGS, CHROMIUM, write_y4m

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.browser

# The real binary behind Debian's /usr/bin/chromium shell wrapper. Started
# directly, its process id is the browser process, which a test can kill.
CHROMIUM_BINARY = "/usr/lib/chromium/chromium"
# Makes getUserMedia succeed without a prompt. Without it, and without a
# granted permission, headless Chromium rejects with NotAllowedError.
AUTO_ALLOW_MEDIA = "--use-fake-ui-for-media-stream"
FAKE_DEVICES = "--use-fake-device-for-media-stream"
DEVTOOLS_START_TIMEOUT = 15.0

CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Fixtures read this at teardown to save screenshots of a failed test.
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


def call_failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(CALL_FAILED, False)


async def save_screenshots(request: pytest.FixtureRequest, pages: list[Page]) -> None:
    """Save a screenshot of every open page into test-artifacts/."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    for index, page in enumerate(pages):
        if page.is_closed():
            continue
        path = artifacts_dir() / f"{stem}-{index}.png"
        try:
            await page.screenshot(path=str(path), timeout=5000)
        except Exception as error:  # a crashed page must not hide the failure
            logger.warning("could not save screenshot %s: %s", path, error)
        else:
            print(f"screenshot saved: {path}")


def log_page_events(page: Page, label: str) -> None:
    """Print page errors and console warnings, which pytest shows for a failed test."""
    page.on("pageerror", lambda error: print(f"[{label}] page error: {error}"))
    page.on(
        "console",
        lambda msg: (
            print(f"[{label}] console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None
        ),
    )


@pytest.fixture(scope="session")
async def playwright(loopback_only: None) -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def cameras(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Return the y4m clip for a colour, written on first use."""
    folder = tmp_path_factory.mktemp("cameras")

    def camera(colour: str) -> Path:
        path = folder / f"{colour}.y4m"
        if not path.exists():
            write_y4m(path, colour)
        return path

    return camera


def browser_args(camera: Path, auto_allow_media: bool, fake_devices: bool) -> list[str]:
    args = [*BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"]
    if not auto_allow_media:
        args.remove(AUTO_ALLOW_MEDIA)
    if not fake_devices:
        args.remove(FAKE_DEVICES)
    return args


Launch = Callable[..., Awaitable[Browser]]
OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture(scope="session")
async def launch_browser(
    playwright: Playwright, cameras: Callable[[str], Path]
) -> Launch:
    """Return a function that starts a Chromium with the given camera colour.

    With `auto_allow_media=False` the browser lacks --use-fake-ui-for-media-stream,
    so its pages are denied the camera and microphone. With `fake_devices=False`
    it has no fake devices, and this machine has no real ones.
    """

    async def launch(
        colour: str, auto_allow_media: bool = True, fake_devices: bool = True
    ) -> Browser:
        return await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=browser_args(cameras(colour), auto_allow_media, fake_devices),
        )

    return launch


@pytest.fixture(scope="session")
async def shared_browser(launch_browser: Launch) -> AsyncIterator[Launch]:
    """Browsers with the default flags, one per camera colour, kept for the session."""
    started: dict[str, Browser] = {}

    async def get(colour: str) -> Browser:
        if colour not in started:
            started[colour] = await launch_browser(colour)
        return started[colour]

    yield get
    for browser in started.values():
        await browser.close()


@pytest.fixture
async def open_page(
    launch_browser: Launch, shared_browser: Launch, request: pytest.FixtureRequest
) -> AsyncIterator[OpenPage]:
    """Open a page in a fresh context of the browser with the given camera.

    `auto_allow_media=False` or `fake_devices=False` open it in a browser of its
    own, started for this test and closed after it. Other keyword arguments go
    to `Browser.new_context`.
    """
    contexts: list[BrowserContext] = []
    own_browsers: list[Browser] = []

    async def open_(
        colour: str,
        url: str,
        auto_allow_media: bool = True,
        fake_devices: bool = True,
        **context_args: object,
    ) -> Page:
        if auto_allow_media and fake_devices:
            browser = await shared_browser(colour)
        else:
            browser = await launch_browser(colour, auto_allow_media, fake_devices)
            own_browsers.append(browser)
        context = await browser.new_context(**context_args)
        contexts.append(context)
        page = await context.new_page()
        log_page_events(page, colour)
        await page.goto(url)
        return page

    yield open_
    if call_failed(request):
        await save_screenshots(request, [p for c in contexts for p in c.pages])
    for context in contexts:
        await context.close()
    for browser in own_browsers:
        await browser.close()


@dataclass
class KillableBrowser:
    """A Chromium started as a subprocess and driven over the DevTools protocol."""

    process: asyncio.subprocess.Process
    browser: Browser
    user_data_dir: Path
    pages: list[Page] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def open(self, url: str, label: str) -> Page:
        context = await self.browser.new_context()
        page = await context.new_page()
        log_page_events(page, label)
        self.pages.append(page)
        await page.goto(url)
        return page

    async def kill(self) -> None:
        """Kill the browser process with SIGKILL, as a crash or `kill -9` would."""
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()


SpawnBrowser = Callable[[str], Awaitable[KillableBrowser]]


async def read_devtools_url(
    user_data_dir: Path, process: asyncio.subprocess.Process
) -> str:
    """Wait for Chromium to write its DevTools port, and return the WebSocket URL."""
    active_port = user_data_dir / "DevToolsActivePort"
    deadline = time.monotonic() + DEVTOOLS_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"Chromium exited with code {process.returncode}")
        lines = active_port.read_text().split("\n") if active_port.exists() else []
        if len(lines) >= 2 and lines[1]:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.05)
    raise TimeoutError(f"Chromium did not write {active_port} in time")


@pytest.fixture
async def spawn_browser(
    playwright: Playwright,
    cameras: Callable[[str], Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[SpawnBrowser]:
    """Start Chromium processes that a test may kill, and kill the rest at teardown.

    Playwright's async API does not expose the process id of a browser it
    launched, so this starts the binary itself and connects over CDP.
    """
    spawned: list[KillableBrowser] = []

    async def spawn(colour: str) -> KillableBrowser:
        user_data_dir = tmp_path / f"chromium-{colour}-{len(spawned)}"
        user_data_dir.mkdir()
        log = (tmp_path / f"{user_data_dir.name}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            CHROMIUM_BINARY,
            "--headless",
            "--no-sandbox",
            "--mute-audio",
            "--disable-dev-shm-usage",
            "--remote-debugging-port=0",
            f"--user-data-dir={user_data_dir}",
            *browser_args(cameras(colour), auto_allow_media=True, fake_devices=True),
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        try:
            url = await read_devtools_url(user_data_dir, process)
            browser = await playwright.chromium.connect_over_cdp(url)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        spawned.append(KillableBrowser(process, browser, user_data_dir))
        return spawned[-1]

    yield spawn
    if call_failed(request):
        await save_screenshots(request, [p for b in spawned for p in b.pages])
    for item in spawned:
        await item.kill()
        await item.browser.close()
