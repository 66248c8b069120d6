"""The session clock, host actions and coffee groups through the real server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import sfu.frames
import sfu.ice
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets, vp8_clip
from tests.support.server import ServerProcess

CLIP = vp8_clip(frames=30)
TONE = opus_packets(seconds=1.0)
# Long phases, so that only host actions change them during a test.
PLAN = "60s/60s/2/60s"
# Frames in flight when a slot is repointed still arrive for a moment.
SETTLE = 1.0


@pytest.fixture(scope="module", autouse=True)
def passthrough_peers() -> None:
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])


@pytest.fixture(scope="module")
async def session_server(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    db: Path = tmp_path_factory.mktemp("session") / "coworking.sqlite3"
    process = ServerProcess(db, environment={"COWORKING_SESSION_PLAN": PLAN})
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


def send_data(bot: Bot, message: dict[str, Any]) -> None:
    bot.channel.send(json.dumps(message))


def clocks(bot: Bot) -> list[dict[str, Any]]:
    return [m for m in bot.data_messages if m["type"] == "clock"]


async def wait_clock(bot: Bot, phase: str, count: int = 1) -> dict[str, Any]:
    """Wait for the `count`th clock message in `phase` and return it."""
    deadline = time.monotonic() + 5
    while True:
        matching = [m for m in clocks(bot) if m["phase"] == phase]
        if len(matching) >= count:
            return matching[count - 1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no clock message #{count} in {phase}: {clocks(bot)}")
        await asyncio.sleep(0.02)


async def joined_bot(
    server: ServerProcess, room: dict[str, Any], role: str, name: str, media: bool
) -> Bot:
    tracks: dict[str, LoopTrack] = {}
    if media:
        tracks = {
            "audio": LoopTrack("audio", TONE, 0.02),
            "video": LoopTrack("video", CLIP, 1 / 30),
        }
    bot = Bot(server.url, room["room"].id, room[role].token, name, **tracks)
    await bot.join()
    bot.keepalive()
    await bot.wait_data("roster")
    return bot


async def test_clock_sent_on_open_and_start(session_server: ServerProcess) -> None:
    room = await session_server.create_room()
    host = await joined_bot(session_server, room, "host", "Host", media=False)
    guest = await joined_bot(session_server, room, "guest", "Guest", media=False)
    try:
        idle = await wait_clock(guest, "idle")
        assert idle["ends_at"] is None
        assert idle["plan"] == {"focus": 60, "break": 60, "long_break": 60, "rounds": 2}

        send_data(host, {"type": "host", "action": "start"})
        for bot in (host, guest):
            focus = await wait_clock(bot, "focus")
            assert focus["round"] == 1
            assert focus["rounds"] == 2
            assert focus["ends_at"] - focus["started_at"] == 60_000
            assert focus["paused"] is False

        late = await joined_bot(session_server, room, "guest", "Late", media=False)
        try:
            caught_up = await wait_clock(late, "focus")
            assert caught_up["ends_at"] == focus["ends_at"]
            assert caught_up["started_at"] == focus["started_at"]
            assert caught_up["remaining_ms"] <= focus["remaining_ms"]
        finally:
            await late.close()
    finally:
        await guest.close()
        await host.close()


async def test_host_controls_broadcast(session_server: ServerProcess) -> None:
    room = await session_server.create_room()
    host = await joined_bot(session_server, room, "host", "Host", media=False)
    guest = await joined_bot(session_server, room, "guest", "Guest", media=False)
    try:
        send_data(host, {"type": "host", "action": "start"})
        await wait_clock(guest, "focus")

        send_data(host, {"type": "host", "action": "pause"})
        paused = await wait_clock(guest, "focus", 2)
        assert paused["paused"] is True
        assert paused["ends_at"] is None
        assert 55_000 < paused["remaining_ms"] <= 60_000

        send_data(host, {"type": "host", "action": "pause"})
        error = await host.wait_data("error")
        assert error["code"] == "invalid_state"
        assert "already paused" in error["message"]

        send_data(host, {"type": "host", "action": "resume"})
        resumed = await wait_clock(guest, "focus", 3)
        assert resumed["paused"] is False
        assert resumed["ends_at"] is not None

        send_data(host, {"type": "host", "action": "skip"})
        skipped = await wait_clock(guest, "break")
        assert skipped["round"] == 1

        send_data(host, {"type": "host", "action": "end"})
        ended = await wait_clock(guest, "ended")
        assert ended["ends_at"] is None
    finally:
        await guest.close()
        await host.close()


async def test_guest_refused_host_actions(session_server: ServerProcess) -> None:
    room = await session_server.create_room()
    host = await joined_bot(session_server, room, "host", "Host", media=False)
    guest = await joined_bot(session_server, room, "guest", "Guest", media=False)
    try:
        for action in ("start", "pause", "resume", "skip", "end"):
            send_data(guest, {"type": "host", "action": action})
        await asyncio.sleep(0.5)
        errors = [m for m in guest.data_messages if m["type"] == "error"]
        assert [e["code"] for e in errors] == ["forbidden"] * 5
        assert "Only a host can start the session" in errors[0]["message"]
        assert [m["phase"] for m in clocks(host)] == ["idle"]
        assert [m["phase"] for m in clocks(guest)] == ["idle"]
    finally:
        await guest.close()
        await host.close()


@pytest.mark.parametrize(
    ("message", "code", "text"),
    [
        ({"type": "host", "action": "dance"}, "bad_message", "must be one of"),
        ({"type": "host"}, "bad_message", '"action"'),
        ({"type": "host", "action": 5}, "bad_message", '"action"'),
        ({"type": "coffee"}, "bad_message", '"join"'),
        ({"type": "coffee", "join": "yes"}, "bad_message", '"join"'),
        (
            {"type": "coffee", "join": True, "pad": "x" * 2000},
            "bad_message",
            "at most 1024",
        ),
    ],
)
async def test_bad_control_messages(
    session_server: ServerProcess, message: dict[str, Any], code: str, text: str
) -> None:
    room = await session_server.create_room()
    host = await joined_bot(session_server, room, "host", "Host", media=False)
    try:
        send_data(host, message)
        error = await host.wait_data("error")
        assert error["code"] == code
        assert text in error["message"]
        await asyncio.sleep(0.2)
        assert [m["phase"] for m in clocks(host)] == ["idle"]
        coffees = [m for m in host.data_messages if m["type"] == "coffee"]
        assert all(m["opted_in"] == [] for m in coffees)
    finally:
        await host.close()


async def test_control_messages_rate_limited(session_server: ServerProcess) -> None:
    room = await session_server.create_room()
    guest = await joined_bot(session_server, room, "guest", "Guest", media=False)
    try:
        for _ in range(30):
            send_data(guest, {"type": "coffee", "join": True})
        error = await guest.wait_data("error")
        assert error["code"] == "rate_limited"
        await asyncio.sleep(1.5)
        guest.data_messages.clear()
        send_data(guest, {"type": "coffee", "join": False})
        reply = await guest.wait_data("coffee")
        assert reply["opted_in"] == []
    finally:
        await guest.close()


def visible(bot: Bot) -> set[str]:
    """Return the publishers that the server points this bot's slots at."""
    return {publisher for publisher in bot.mids.values() if publisher is not None}


async def wait_visible(bot: Bot, expected: set[str]) -> None:
    deadline = time.monotonic() + 5
    while visible(bot) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{bot.name} sees {visible(bot)}, not {expected}")
        await asyncio.sleep(0.02)


def frame_counts(bot: Bot, others: list[Bot]) -> dict[str, int]:
    return {other.name: len(bot.frames_from(other.id)) for other in others}


async def test_coffee_groups_reroute_media(session_server: ServerProcess) -> None:
    room = await session_server.create_room()
    host = await joined_bot(session_server, room, "host", "Host", media=True)
    coffee = [host]
    for name in ("Ann", "Ben", "Cat"):
        coffee.append(await joined_bot(session_server, room, "guest", name, True))
    stay = await joined_bot(session_server, room, "guest", "Stay", media=True)
    bots = [*coffee, stay]
    late: Bot | None = None
    try:
        for bot in coffee:
            send_data(bot, {"type": "coffee", "join": True})
        await stay.wait_data("coffee", lambda m: len(m["opted_in"]) == 4)
        for bot in bots:
            await wait_visible(bot, {b.id for b in bots if b is not bot})

        send_data(host, {"type": "host", "action": "start"})
        send_data(host, {"type": "host", "action": "skip"})
        groups: dict[str, list[str]] = {}
        for bot in coffee:
            message = await bot.wait_data("coffee", lambda m: m["group"] is not None)
            group = message["group"]
            assert bot.id in group["members"]
            assert len(group["members"]) == 2
            assert group["prompt"]
            groups[bot.id] = group["members"]
        main = await stay.wait_data("coffee", lambda m: len(m["in_groups"]) == 4)
        assert main["group"] is None

        for bot in coffee:
            partner = {m for m in groups[bot.id] if m != bot.id}
            await wait_visible(bot, partner)
        await wait_visible(stay, set())

        late = await joined_bot(session_server, room, "guest", "Late", media=True)
        await wait_visible(late, {stay.id})
        await wait_visible(stay, {late.id})
        late_coffee = await late.wait_data("coffee")
        assert late_coffee["group"] is None

        await asyncio.sleep(SETTLE)
        before = {bot.name: frame_counts(bot, bots) for bot in bots}
        await asyncio.sleep(2.0)
        after = {bot.name: frame_counts(bot, bots) for bot in bots}
        for bot in coffee:
            partner = next(m for m in groups[bot.id] if m != bot.id)
            for other in bots:
                if other is bot:
                    continue
                grown = after[bot.name][other.name] - before[bot.name][other.name]
                if other.id == partner:
                    assert grown > 20, f"{bot.name} got {grown} from {other.name}"
                else:
                    assert grown == 0, f"{bot.name} got {grown} from {other.name}"

        everyone = [*bots, late]
        for bot in everyone:
            bot.data_messages.clear()
        send_data(host, {"type": "host", "action": "skip"})
        await wait_clock(stay, "focus")
        for bot in everyone:
            await wait_visible(bot, {b.id for b in everyone if b is not bot})
            back = await bot.wait_data("coffee")
            assert back["in_groups"] == []
            assert back["group"] is None
    finally:
        for bot in [*bots, *([late] if late else [])]:
            await bot.close()


async def test_coffee_partner_leaving_ends_group(session_server: ServerProcess) -> None:
    room = await session_server.create_room()
    host = await joined_bot(session_server, room, "host", "Host", media=False)
    ann = await joined_bot(session_server, room, "guest", "Ann", media=False)
    other = await joined_bot(session_server, room, "guest", "Other", media=False)
    try:
        for bot in (host, ann):
            send_data(bot, {"type": "coffee", "join": True})
        await other.wait_data("coffee", lambda m: len(m["opted_in"]) == 2)
        send_data(host, {"type": "host", "action": "start"})
        send_data(host, {"type": "host", "action": "skip"})
        await ann.wait_data("coffee", lambda m: m["group"] is not None)
        await wait_visible(other, set())

        await ann.leave()
        await host.wait_data(
            "coffee", lambda m: m["group"] is None and m["in_groups"] == []
        )
        await wait_visible(other, {host.id})
        await wait_visible(host, {other.id})
    finally:
        for bot in (host, ann, other):
            await bot.close()
