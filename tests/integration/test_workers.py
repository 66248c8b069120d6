"""Rooms spread over worker processes, and the single-process mode."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from server.workers import worker_index
from tests.integration.test_forwarding import publisher_tracks, wait_until
from tests.support.bot import Bot
from tests.support.server import ServerProcess


@pytest.fixture
async def single_process(
    tmp_path: Path, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path / "single.sqlite3", workers=1)
    await process.start()
    yield process
    await process.stop()


async def exchange_video(server: ServerProcess, room_id: str, token: str) -> int:
    """Join a publisher and a subscriber and return the frames received."""
    alice = Bot(server.url, room_id, token, "Alice", **publisher_tracks())
    bob = Bot(server.url, room_id, token, "Bob")
    try:
        await alice.join()
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 10, timeout=15)
    finally:
        await bob.close()
        await alice.close()
    return len(bob.frames_from(alice.id))


async def test_single_process_forwards(single_process: ServerProcess) -> None:
    room = await single_process.create_room()
    frames = await exchange_video(single_process, room["room"].id, room["guest"].token)
    stats = await single_process.stats()

    assert frames >= 10
    assert "workers" not in stats


async def rooms_on_two_workers(server: ServerProcess) -> list[dict]:
    """Create rooms until two of them belong to different workers."""
    rooms: dict[int, dict] = {}
    while len(rooms) < 2:
        room = await server.create_room()
        rooms.setdefault(worker_index(room["room"].id, 2), room)
    return list(rooms.values())


async def test_rooms_spread_over_workers(server: ServerProcess) -> None:
    stats = await server.stats()
    assert len(stats["workers"]) == 2

    first, second = await rooms_on_two_workers(server)
    bots = []
    for room in (first, second):
        bot = Bot(server.url, room["room"].id, room["guest"].token, "Idle")
        await bot.join()
        bots.append(bot)
    try:
        stats = await server.stats()
    finally:
        for bot in bots:
            await bot.close()

    hosting = [
        index
        for index, worker in enumerate(stats["workers"])
        for room in (first, second)
        if room["room"].id in worker["rooms"]
    ]
    assert sorted(hosting) == [0, 1]


async def test_dead_worker_restarted(tmp_path: Path, loopback_only: None) -> None:
    server = ServerProcess(tmp_path / "restart.sqlite3", workers=2)
    await server.start()
    try:
        before = await server.stats()
        victim = before["workers"][0]["process"]["pid"]
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            try:
                pids = [w["process"]["pid"] for w in (await server.stats())["workers"]]
            except Exception:
                return False
            return victim not in pids

        for _ in range(100):
            if await replaced():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the killed worker was not replaced in 10 s")

        rooms = await rooms_on_two_workers(server)
        for room in rooms:
            frames = await exchange_video(server, room["room"].id, room["guest"].token)
            assert frames >= 10
    finally:
        await server.stop()
    assert "exited with status -9" in server.log_text()


async def test_room_api_unavailable_during_restart(
    tmp_path: Path, loopback_only: None
) -> None:
    server = ServerProcess(tmp_path / "api.sqlite3", workers=2)
    await server.start()
    statuses: list[int] = []
    try:
        rooms = await rooms_on_two_workers(server)
        victim = (await server.stats())["workers"][0]["process"]["pid"]
        room = next(r for r in rooms if worker_index(r["room"].id, 2) == 0)
        headers = {"Authorization": f"Bearer {room['guest'].token}"}
        os.kill(victim, signal.SIGKILL)
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                url = f"{server.url}/api/rooms/{room['room'].id}"
                async with http.get(url, headers=headers) as response:
                    statuses.append(response.status)
                if statuses[-1] == 200 and 503 in statuses:
                    break
                await asyncio.sleep(0.05)
    finally:
        await server.stop()

    assert 503 in statuses
    assert statuses[-1] == 200
    assert set(statuses) <= {200, 503}
    assert "Traceback" not in server.log_text()


async def test_workers_stop_with_front(tmp_path: Path, loopback_only: None) -> None:
    server = ServerProcess(tmp_path / "orphans.sqlite3", workers=2)
    await server.start()
    pids = [w["process"]["pid"] for w in (await server.stats())["workers"]]
    assert server.process is not None
    server.process.kill()
    await server.stop()

    async def all_gone() -> bool:
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            return False
        return True

    for _ in range(100):
        if await all_gone():
            break
        await asyncio.sleep(0.1)
    assert await all_gone()
