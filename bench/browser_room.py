"""Measure the server with real browsers in one room.

Starts the real server and N headless Chromium participants with small y4m
cameras, waits for every page to decode video from every other, then prints
the server's CPU use over a steady window and each page's time from the Join
click to its first remote frame. Run it inside a loopback-only network
namespace, e.g.:

    unshare -n -- sh -c \
        'ip link set lo up && exec .venv/bin/python bench/browser_room.py'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, async_playwright  # noqa: E402

from tests.support.browser import BROWSER_ARGS, CHROMIUM, write_y4m  # noqa: E402
from tests.support.network import interface_addresses  # noqa: E402
from tests.support.server import free_port  # noqa: E402

COLOURS = ["red", "blue", "green"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the CPU time of a process, its threads and its child processes.

    The server's worker processes are its children.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += cpu_seconds(int(child))
    return total


async def evaluate_until(page: Page, script: str, timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await page.evaluate(script)
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {script!r}")


async def start_server(db: Path, port: int) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "serve",
        f"--port={port}",
        f"--db={db}",
        "--ice-host-address=127.0.0.1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    while True:
        line = (await process.stdout.readline()).decode()
        if not line:
            raise RuntimeError("the server exited before printing its invite link")
        match = re.search(r"Invite link: (\S+)", line)
        if match:
            return process, match.group(1)


async def run(participants: int, window: float) -> None:
    if any(a not in ("127.0.0.1", "::1") for a in interface_addresses()):
        sys.exit("run this inside a loopback-only network namespace (see above)")
    folder = Path(tempfile.mkdtemp(prefix="coworking-bench-"))
    server, link = await start_server(folder / "bench.sqlite3", free_port())
    base, token = link.split("#", 1)
    async with async_playwright() as pw:
        pages = []
        for index in range(participants):
            colour = COLOURS[index % len(COLOURS)]
            camera = write_y4m(folder / f"{colour}.y4m", colour)
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM,
                args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"],
            )
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{base}?name=p{index}#{token}")
            await evaluate_until(page, "window.e2e && window.e2e.phase === 'prejoin'")
            await page.click("#join")
            pages.append(page)
        others = participants - 1
        for page in pages:
            await evaluate_until(
                page,
                f"Object.keys(window.e2e.firstRemoteFrame).length >= {others}",
            )
        await asyncio.sleep(3)
        start_cpu, start = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(window)
        cores = (cpu_seconds(server.pid) - start_cpu) / (time.monotonic() - start)
        stats = [await page.evaluate("window.e2eStats()") for page in pages]
        first_frames = [
            max(await page.evaluate("Object.values(window.e2e.firstRemoteFrame)"))
            for page in pages
        ]
    server.terminate()
    await server.wait()

    streams = participants * others
    print(f"participants: {participants}, forwarded video streams: {streams}")
    print(f"server CPU over {window:.0f} s: {cores:.3f} cores")
    per_pair = cores / streams * 1000
    print(f"server CPU per forwarded video+audio pair: {per_pair:.1f} ms/s")
    decoded = [p["framesDecoded"] for s in stats for p in s["participants"].values()]
    print(f"frames decoded per remote tile: min {min(decoded)}, max {max(decoded)}")
    print(
        "last remote first frame after Join, per page (ms): "
        + ", ".join(f"{ms:.0f}" for ms in first_frames)
    )
    print(f"  the last joiner: {first_frames[-1]:.0f} ms")
    print(f"  median: {statistics.median(first_frames):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    args = parser.parse_args()
    asyncio.run(run(args.participants, args.window))


if __name__ == "__main__":
    main()
