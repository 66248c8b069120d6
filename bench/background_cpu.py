"""Measure the browser CPU that the virtual background effect costs.

Starts the real server and one headless Chromium whose fake camera plays a
640x480 y4m clip at 15 frames per second, and joins a room. For each
background choice it lets the page settle, then reads the CPU time of every
Chromium process (browser, renderer, GPU and utility processes) over a window. It
prints the CPU share per choice (100 % is one core) and the page's own
measured time per effect frame. Run it inside a loopback-only network
namespace, e.g.:

    unshare -n -- sh -c \
        'ip link set lo up && exec .venv/bin/python bench/background_cpu.py'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, async_playwright  # noqa: E402

from tests.support.browser import BROWSER_ARGS, write_y4m  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

CHROMIUM_BINARY = "/usr/lib/chromium/chromium"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHOICES = ["none", "blur-light", "blur-strong", "builtin:forest", "none"]


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU time of a process and all its descendants still running."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            total += tree_cpu_seconds(int(child))
    return total


async def wait_for(page: Page, script: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await page.evaluate(script)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {script!r}")


async def start_chromium(
    folder: Path, camera: Path
) -> tuple[asyncio.subprocess.Process, str]:
    profile = folder / "profile"
    profile.mkdir()
    process = await asyncio.create_subprocess_exec(
        CHROMIUM_BINARY,
        "--headless",
        "--no-sandbox",
        "--mute-audio",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        *BROWSER_ARGS,
        f"--use-file-for-fake-video-capture={camera}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    active_port = profile / "DevToolsActivePort"
    for _ in range(150):
        lines = active_port.read_text().split("\n") if active_port.exists() else []
        if len(lines) >= 2 and lines[1]:
            return process, f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.1)
    process.kill()
    raise TimeoutError("Chromium did not open its DevTools port")


async def measure(
    page: Page, pid: int, choice: str, settle: float, window: float
) -> dict:
    await page.select_option("#background-select", choice)
    if choice != "none":
        await wait_for(
            page,
            "() => { const s = window.e2eBackground();"
            " return s && s.modelReady && s.segmented > 5; }",
        )
    await asyncio.sleep(settle)
    before = await page.evaluate("() => window.e2eBackground()")
    start_cpu, start = tree_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    cpu = tree_cpu_seconds(pid) - start_cpu
    elapsed = time.monotonic() - start
    after = await page.evaluate("() => window.e2eBackground()")
    return {
        "choice": choice,
        "cpu_percent": 100 * cpu / elapsed,
        "effect_fps": (after["frames"] - before["frames"]) / elapsed,
        "ms_per_frame": after["msPerFrame"],
        "ms_model": after["msModel"],
        "applied": after["choice"],
    }


async def run(settle: float, window: float, keep_effect: bool) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        camera = write_y4m(folder / "camera.y4m", "red", 640, 480)
        server = ServerProcess(folder / "coworking.sqlite3", workers=1)
        await server.start()
        process, url = await start_chromium(folder, camera)
        try:
            room = await server.create_room()
            link = f"{server.url}/r/{room['room'].id}?name=Bench#{room['guest'].token}"
            async with async_playwright() as playwright:
                browser = await playwright.chromium.connect_over_cdp(url)
                page = await browser.new_page()
                await page.goto(link)
                await wait_for(
                    page, "() => window.e2e && window.e2e.phase === 'prejoin'"
                )
                if keep_effect:
                    await page.evaluate(
                        "() => window.e2eTuneBackground("
                        "{slowShare: 1e6, slowWindowMs: 1e9})"
                    )
                await page.click("#join")
                await wait_for(page, "() => window.e2e.phase === 'joined'")
                print(
                    f"{'choice':<16}{'CPU %':>8}{'effect fps':>12}"
                    f"{'ms/frame':>10}{'model':>8}"
                )
                for choice in CHOICES:
                    row = await measure(page, process.pid, choice, settle, window)
                    print(
                        f"{row['choice']:<16}{row['cpu_percent']:>8.1f}"
                        f"{row['effect_fps']:>12.1f}{row['ms_per_frame']:>10.1f}"
                        f"{row['ms_model']:>8.1f}"
                        + (
                            ""
                            if row["applied"] == choice
                            else f"  (now {row['applied']})"
                        )
                    )
                await browser.close()
        finally:
            process.kill()
            await process.wait()
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds before each window"
    )
    parser.add_argument(
        "--window", type=float, default=20.0, help="seconds measured per choice"
    )
    parser.add_argument(
        "--keep-effect",
        action="store_true",
        help="never turn the effect down, to measure its full cost",
    )
    options = parser.parse_args()
    asyncio.run(run(options.settle, options.window, options.keep_effect))


if __name__ == "__main__":
    main()
