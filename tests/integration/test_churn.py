"""Coming and going around one publisher: churn, many subscribers, joins at once.

The churn test's size is set by the environment: COWORKING_CHURN_ROUNDS
(default 5) joins and leaves, each receiving for COWORKING_CHURN_SECONDS
(default 1). The full-size run is 100 rounds of 3 s:

    COWORKING_CHURN_ROUNDS=100 COWORKING_CHURN_SECONDS=3 \\
        scripts/test -q tests/integration/test_churn.py -k churn --timeout=900
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

import sfu.frames
import sfu.ice
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets, vp8_clip
from tests.support.server import ServerProcess

CLIP = vp8_clip(frames=60)
TONE = opus_packets(seconds=1.0)
CHURN_ROUNDS = int(os.environ.get("COWORKING_CHURN_ROUNDS", "5"))
CHURN_SECONDS = float(os.environ.get("COWORKING_CHURN_SECONDS", "1"))
# Asyncio tasks and open files the server may hold above the baseline after
# churn: idle HTTP connections of the test's own client come and go.
TASK_MARGIN = 6
FILE_MARGIN = 6
# Resident memory the server's processes may gain over the whole churn run,
# after one warm-up round. Leaking one peer connection per round costs more
# than this over 100 rounds.
MEMORY_MARGIN = 40 * 1024 * 1024
# Growth of resident memory per round, fitted over the second half of a run of
# at least SLOPE_MIN_ROUNDS rounds. 100 rounds of 1 s on a shared 2-CPU machine
# grew by about 30 KiB per round there, after about 1.3 MiB per round in the
# first ten (allocator and aiortc warm-up).
MAX_SLOPE = 200 * 1024
SLOPE_MIN_ROUNDS = 20


@pytest.fixture(scope="module", autouse=True)
def passthrough_peers() -> None:
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])


def publisher(server: ServerProcess, room: dict[str, Any], name: str) -> Bot:
    return Bot(
        server.url,
        room["room"].id,
        room["guest"].token,
        name,
        audio=LoopTrack("audio", TONE, 0.02),
        video=LoopTrack("video", CLIP, 1 / 30),
    )


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


async def wait_other_rooms_closed(server: ServerProcess, room_id: str) -> None:
    deadline = time.monotonic() + 15
    while set((await server.stats())["rooms"]) - {room_id}:
        if time.monotonic() > deadline:
            raise AssertionError("rooms of earlier tests are still open")
        await asyncio.sleep(0.1)


async def resources(server: ServerProcess) -> dict[str, int]:
    """Return the server's totals over the front and worker processes."""
    report = await server.stats()
    workers = report["workers"]
    return {
        "peer_connections": report["sfu"]["peer_connections"],
        "forwarders": report["sfu"]["forwarders"],
        "forwarded_tracks": sum(w["gauges"]["forwarded_tracks"] for w in workers),
        "subscriptions": sum(w["gauges"]["subscriptions"] for w in workers),
        "tasks": report["process"]["tasks"],
        "open_files": report["process"]["open_files"],
        "rss_bytes": report["process"]["rss_bytes"],
        "frames_forwarded": report["sfu"]["frames_forwarded"],
    }


async def churn_round(
    server: ServerProcess, room: dict[str, Any], alice: Bot, index: int
) -> None:
    bob = Bot(server.url, room["room"].id, room["guest"].token, f"Bob {index}")
    try:
        await bob.join()
        await wait_until(
            lambda: len(bob.frames_from(alice.id)) >= 3, 15, f"video in round {index}"
        )
        camera = "off" if index % 2 else "on"
        alice.send_state(index + 1, mic="on", camera=camera)
        await asyncio.sleep(CHURN_SECONDS)
        await bob.leave()
        await wait_until(lambda: bob.close_code is not None, 5, "Bob's close")
    finally:
        await bob.close()


async def test_churn_returns_to_baseline(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    room_id = room["room"].id
    alice = publisher(server, room, "Alice")
    try:
        await alice.join()
        alice.keepalive()
        await wait_other_rooms_closed(server, room_id)
        await churn_round(server, room, alice, 0)
        await asyncio.sleep(1)
        baseline = await resources(server)
        memory = []
        for index in range(1, CHURN_ROUNDS + 1):
            await churn_round(server, room, alice, index)
            memory.append((await resources(server))["rss_bytes"])
        await asyncio.sleep(1)
        after = await resources(server)
        left = [m for m in alice.data_messages if m["type"] == "left"]
    finally:
        await alice.close()

    print(f"churn {CHURN_ROUNDS} x {CHURN_SECONDS} s: before {baseline}")
    print(f"after {after}, memory per round {memory}")
    assert len(left) == CHURN_ROUNDS + 1
    assert after["peer_connections"] == baseline["peer_connections"]
    assert after["forwarders"] == baseline["forwarders"]
    assert after["forwarded_tracks"] == baseline["forwarded_tracks"]
    assert after["subscriptions"] == baseline["subscriptions"]
    assert after["tasks"] <= baseline["tasks"] + TASK_MARGIN
    assert after["open_files"] <= baseline["open_files"] + FILE_MARGIN
    assert after["rss_bytes"] - baseline["rss_bytes"] <= MEMORY_MARGIN
    if CHURN_ROUNDS >= SLOPE_MIN_ROUNDS:
        assert memory_slope(memory[len(memory) // 2 :]) <= MAX_SLOPE


def memory_slope(samples: list[int]) -> float:
    """Return the least-squares slope of ``samples``, in bytes per round."""
    count = len(samples)
    mean_x = (count - 1) / 2
    mean_y = sum(samples) / count
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(samples))
    denominator = sum((x - mean_x) ** 2 for x in range(count))
    return numerator / denominator


async def test_one_track_many_subscribers(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    room_id = room["room"].id
    alice = publisher(server, room, "Alice")
    subscribers = [
        Bot(server.url, room_id, room["guest"].token, name)
        for name in ("Bob", "Carol", "Dave")
    ]
    try:
        await alice.join()
        alice.keepalive()
        await wait_other_rooms_closed(server, room_id)
        for bot in subscribers:
            await bot.join()
            bot.keepalive()
        for bot in subscribers:
            await wait_until(
                lambda bot=bot: len(bot.frames_from(alice.id)) >= 5, 15, "first video"
            )
        window_start = time.monotonic()
        sent_before = len(alice.video.sent)
        await asyncio.sleep(3)
        sent = len(alice.video.sent) - sent_before
        received = [
            sum(1 for t in bot.arrival_times(alice.id) if t >= window_start)
            for bot in subscribers
        ]

        dave = subscribers.pop()
        await dave.leave()
        left_at = time.monotonic()
        await asyncio.sleep(2)
        gaps = [gap_since(bot.arrival_times(alice.id), left_at) for bot in subscribers]

        for bot in subscribers:
            await bot.leave()
        for bot in subscribers:
            await wait_until(lambda bot=bot: bot.close_code is not None, 5, "close")
        idle = await wait_idle(server)
        await asyncio.sleep(1)
        later = await resources(server)
    finally:
        for bot in [*subscribers, dave]:
            await bot.close()
        await alice.close()

    print(f"sent {sent} frames, subscribers received {received}, gaps {gaps}")
    for count in received:
        assert count >= 0.9 * sent
    assert max(gaps) < 1.0
    # Nobody subscribes any more: no slot track has Alice as its source, and
    # the forwarder sends nothing although Alice still publishes.
    assert idle["forwarded_tracks"] == 0
    assert idle["subscriptions"] == 0
    assert later["frames_forwarded"] == idle["frames_forwarded"]


def gap_since(times: list[float], since: float) -> float:
    recent = [t for t in times if t >= since]
    if len(recent) < 2:
        return float("inf")
    return max(max(b - a for a, b in zip(recent, recent[1:])), recent[0] - since)


async def wait_idle(server: ServerProcess) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while True:
        counts = await resources(server)
        idle = counts["forwarded_tracks"] == 0 and counts["subscriptions"] == 0
        if idle or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


async def test_five_join_at_once(server: ServerProcess) -> None:
    room = await server.create_room()
    bots = [publisher(server, room, f"P{i}") for i in range(5)]
    started = time.monotonic()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(bot.join() for bot in bots)), timeout=10
        )

        def everyone_has_everyone() -> bool:
            return all(
                bot.frames_from(other.id, kind)
                for bot in bots
                for other in bots
                if other is not bot
                for kind in ("audio", "video")
            )

        await wait_until(
            everyone_has_everyone, 10 - (time.monotonic() - started), "all media"
        )
        elapsed = time.monotonic() - started
    finally:
        await asyncio.gather(*(bot.close() for bot in bots))

    print(f"five joins: everyone had everyone's media after {elapsed:.1f} s")
    errors = [m for bot in bots for m in bot.ws_messages if m["type"] == "error"]
    assert errors == []
    assert elapsed < 10
