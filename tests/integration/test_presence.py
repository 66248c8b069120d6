"""Presence and state over the data channel, and what happens when someone leaves."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.support.bot import Bot
from tests.support.server import ServerProcess

INITIAL_STATE = {"mic": "none", "camera": "none"}
CLOSE_OK = 1000
CLOSE_MEDIA_FAILED = 4001


async def wait_until(
    condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)


class Party:
    """Bots in one room, closed together at the end of a test."""

    def __init__(self, server: ServerProcess, room: dict[str, Any]) -> None:
        self.server = server
        self.room = room
        self.bots: list[Bot] = []

    async def join(self, name: str, role: str = "guest") -> Bot:
        """Join a bot and wait until its data channel has delivered the roster."""
        bot = Bot(self.server.url, self.room["room"].id, self.room[role].token, name)
        self.bots.append(bot)
        await bot.join()
        await bot.wait_data("roster")
        return bot

    async def close(self) -> None:
        for bot in reversed(self.bots):
            await bot.close()


@pytest.fixture
async def party(server: ServerProcess, room: dict[str, Any]) -> AsyncIterator[Party]:
    party = Party(server, room)
    try:
        yield party
    finally:
        await party.close()


def states_from(bot: Bot, sender: Bot) -> list[dict[str, Any]]:
    return [
        m for m in bot.data_messages if m["type"] == "state" and m["id"] == sender.id
    ]


def roster_entry(bot: Bot, participant: Bot) -> dict[str, Any]:
    roster = next(m for m in bot.data_messages if m["type"] == "roster")
    return next(p for p in roster["participants"] if p["id"] == participant.id)


async def test_roster_lists_earlier_participant(party: Party) -> None:
    alice = await party.join("Alice", role="host")
    bob = await party.join("Bob")
    joined = await alice.wait_data("joined")

    assert alice.data_messages[0] == {"type": "roster", "participants": []}
    roster = await bob.wait_data("roster")
    assert roster["participants"] == [
        {
            "id": alice.id,
            "name": "Alice",
            "role": "host",
            "state": INITIAL_STATE,
            "version": 0,
        }
    ]
    assert joined["participant"] == {
        "id": bob.id,
        "name": "Bob",
        "role": "guest",
        "state": INITIAL_STATE,
        "version": 0,
    }


async def test_state_relayed_with_sender_id(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    alice.send_state(1, mic="off", camera="on")
    message = await bob.wait_data("state")

    assert message == {
        "type": "state",
        "id": alice.id,
        "version": 1,
        "state": {"mic": "off", "camera": "on"},
    }


async def test_stale_state_ignored(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    alice.send_state(1, mic="off")
    alice.send_state(3, camera="off")
    alice.send_state(2, mic="on", camera="on")
    alice.send_state(3, mic="none")
    # The channel is ordered, so version 4 arrives after the server has handled
    # the stale messages.
    alice.send_state(4, mic="off", camera="off")
    await bob.wait_data("state", lambda m: m["version"] == 4)

    relayed = states_from(bob, alice)
    assert [m["version"] for m in relayed] == [1, 3, 4]
    assert relayed[1]["state"] == {"mic": "on", "camera": "off"}


async def test_state_id_field_ignored(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    alice.channel.send(
        json.dumps(
            {
                "type": "state",
                "version": 1,
                "id": bob.id,
                "state": {"mic": "off", "camera": "off"},
            }
        )
    )
    message = await bob.wait_data("state")
    carol = await party.join("Carol")

    assert message["id"] == alice.id
    assert states_from(alice, bob) == []
    assert roster_entry(carol, alice)["state"] == {"mic": "off", "camera": "off"}
    assert roster_entry(carol, alice)["version"] == 1
    assert roster_entry(carol, bob)["state"] == INITIAL_STATE
    assert roster_entry(carol, bob)["version"] == 0


async def test_roster_has_current_state(party: Party) -> None:
    alice = await party.join("Alice", role="host")
    bob = await party.join("Bob")
    alice.send_state(1, mic="off", camera="on")
    alice.send_state(2, mic="off", camera="off")
    bob.send_state(1, mic="on", camera="none")
    await bob.wait_data("state", lambda m: m["version"] == 2)
    await alice.wait_data("state", lambda m: m["id"] == bob.id)

    carol = await party.join("Carol")

    assert roster_entry(carol, alice) == {
        "id": alice.id,
        "name": "Alice",
        "role": "host",
        "state": {"mic": "off", "camera": "off"},
        "version": 2,
    }
    assert roster_entry(carol, bob)["state"] == {"mic": "on", "camera": "none"}
    assert roster_entry(carol, bob)["version"] == 1
    roster = await carol.wait_data("roster")
    assert len(roster["participants"]) == 2


def state_text(version: object = 1, **state: object) -> str:
    return json.dumps(
        {"type": "state", "version": version, "state": state or {"mic": "on"}}
    )


INVALID_DATA_MESSAGES: dict[str, str | bytes] = {
    "mic value": state_text(mic="loud", camera="on"),
    "camera value": state_text(mic="on", camera=True),
    "camera missing": state_text(mic="on"),
    "state not object": json.dumps({"type": "state", "version": 1, "state": "on"}),
    "state missing": json.dumps({"type": "state", "version": 1}),
    "version zero": state_text(0, mic="on", camera="on"),
    "version string": state_text("1", mic="on", camera="on"),
    "version true": state_text(True, mic="on", camera="on"),
    "version float": state_text(1.5, mic="on", camera="on"),
    "version 2**53": state_text(2**53, mic="on", camera="on"),
    "not json": "{nope",
    "array": "[]",
    "unknown type": json.dumps({"type": "hello"}),
    "binary": b'{"type": "state"}',
    "over 16 KiB": state_text(1, mic="on", camera="on", pad="x" * 17_000),
}


async def test_invalid_state_gets_error(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    for case, message in INVALID_DATA_MESSAGES.items():
        before = len(alice.data_messages)
        alice.channel.send(message)
        await wait_until(
            lambda count=before: len(alice.data_messages) > count, what=case
        )
        reply = alice.data_messages[before]
        assert reply["type"] == "error", case
        assert reply["code"] == "bad_message", case
        assert reply["message"], case
    alice.send_state(1, mic="off", camera="off")
    await bob.wait_data("state")

    assert [m["version"] for m in states_from(bob, alice)] == [1]
    assert [m["type"] for m in bob.data_messages].count("error") == 0


async def wait_for_other_rooms_closed(server: ServerProcess, room_id: str) -> None:
    """Wait until earlier tests' participants are gone, so that the server's
    peer connection count changes only with this test's bots."""
    deadline = time.monotonic() + 10
    while True:
        stats = await server.stats()
        if set(stats["rooms"]) <= {room_id}:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"rooms of earlier tests still open: {stats['rooms']}")
        await asyncio.sleep(0.1)


async def test_leave_notifies_others(
    party: Party, server: ServerProcess, room: dict[str, Any]
) -> None:
    room_id = room["room"].id
    alice = await party.join("Alice")
    await wait_for_other_rooms_closed(server, room_id)
    before = (await server.stats())["sfu"]["peer_connections"]
    bob = await party.join("Bob")
    await wait_until(lambda: bob.id in alice.mids.values(), what="slot for Bob")
    bob_mids = [mid for mid, owner in alice.mids.items() if owner == bob.id]
    during = (await server.stats())["sfu"]["peer_connections"]

    await bob.leave()
    started = time.monotonic()
    left = await alice.wait_data("left", timeout=2)
    elapsed = time.monotonic() - started
    await wait_until(lambda: bob.close_code is not None, what="Bob's close")
    await wait_until(
        lambda: all(alice.mids[mid] is None for mid in bob_mids), what="slot freed"
    )
    after = (await server.stats())["sfu"]["peer_connections"]

    assert left == {"type": "left", "id": bob.id, "reason": "leave"}
    assert elapsed < 2
    assert bob.close_code == CLOSE_OK
    assert len(bob_mids) == 2
    assert during == before + 1
    assert after == before


@pytest.mark.parametrize("how", ["websocket", "peer connection"])
async def test_drop_notifies_others(party: Party, how: str) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")
    await wait_until(lambda: bob.id in alice.mids.values(), what="slot for Bob")
    bob_mids = [mid for mid, owner in alice.mids.items() if owner == bob.id]

    if how == "websocket":
        # No leave and no close frame, and the peer connection stays open.
        await bob.drop()
    else:
        # The WebSocket stays open and quiet, so only the media side ends.
        assert bob.pc is not None
        await bob.pc.close()
    left = await alice.wait_data("left", timeout=5)
    await wait_until(
        lambda: all(alice.mids[mid] is None for mid in bob_mids), what="slot freed"
    )

    assert left["id"] == bob.id
    assert left["reason"] == "closed"
    if how == "peer connection":
        await wait_until(lambda: bob.close_code is not None, what="Bob's close")
        assert bob.close_code == CLOSE_MEDIA_FAILED


async def test_state_burst_keeps_newest(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    for version in range(1, 61):
        alice.send_state(version, mic="off" if version % 2 else "on")
    await asyncio.sleep(1.5)
    carol = await party.join("Carol")

    assert states_from(bob, alice)[-1]["version"] == 60
    assert roster_entry(carol, alice)["version"] == 60
    assert roster_entry(carol, alice)["state"]["mic"] == "on"
