"""Host actions on the data channel: mute, remove, lock and unlock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import sfu.frames
from tests.integration.test_presence import Party, roster_entry, wait_until
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets
from tests.support.server import ServerProcess

CLOSE_POLICY_VIOLATION = 1008
TONE = opus_packets(seconds=1.0)
# Seconds for the audio frames already in flight at the mute to arrive.
MUTE_SETTLE = 0.5
GUEST_KEY = "guest-browser-key-0001"
OTHER_KEY = "other-browser-key-0002"


class Moderated(Party):
    """A party whose bots may carry a browser key."""

    async def join_as(
        self, name: str, role: str = "guest", client_key: str | None = None
    ) -> Bot:
        bot = Bot(self.server.url, self.room["room"].id, self.room[role].token, name)
        bot.client_key = client_key
        self.bots.append(bot)
        await bot.join()
        await bot.wait_data("roster")
        return bot

    async def refused(
        self, name: str, role: str = "guest", client_key: str | None = None
    ) -> dict[str, Any]:
        """Try to join, and return the error the server sent in place of welcome."""
        bot = Bot(self.server.url, self.room["room"].id, self.room[role].token, name)
        bot.client_key = client_key
        self.bots.append(bot)
        with pytest.raises(RuntimeError, match="join refused") as refusal:
            await bot.join()
        assert bot.welcome["type"] == "error", refusal
        return bot.welcome


@pytest.fixture
async def party(
    server: ServerProcess, room: dict[str, Any]
) -> AsyncIterator[Moderated]:
    party = Moderated(server, room)
    try:
        yield party
    finally:
        await party.close()


def host(action: str, target: str | None = None) -> dict[str, Any]:
    message = {"type": "host", "action": action}
    if target is not None:
        message["target"] = target
    return message


def of_type(bot: Bot, kind: str) -> list[dict[str, Any]]:
    return [m for m in bot.data_messages if m["type"] == kind]


async def reply_to(bot: Bot, message: dict[str, Any]) -> dict[str, Any]:
    """Send a data-channel message and return the first message after it."""
    before = len(bot.data_messages)
    bot.send_data(message)
    await wait_until(lambda: len(bot.data_messages) > before, what="reply")
    return bot.data_messages[before]


async def test_guest_host_actions_rejected(party: Moderated) -> None:
    alice = await party.join_as("Alice", role="host")
    bob = await party.join_as("Bob")
    carol = await party.join_as("Carol")
    carol.send_state(1, mic="on", camera="on")
    await bob.wait_data("state")

    for message in (
        host("mute", carol.id),
        host("remove", carol.id),
        host("mute", alice.id),
        host("remove", alice.id),
        host("lock"),
    ):
        reply = await reply_to(bob, message)
        assert reply["type"] == "error", message
        assert reply["code"] == "forbidden", message
        assert f"Only a host can {message['action']}" in reply["message"], reply
    dave = await party.join_as("Dave")

    assert carol.close_code is None
    assert roster_entry(dave, carol)["state"]["mic"] == "on"
    assert {p["id"] for p in (await dave.wait_data("roster"))["participants"]} == {
        alice.id,
        bob.id,
        carol.id,
    }
    for bot in (alice, carol, dave):
        assert of_type(bot, "muted") == []
        assert of_type(bot, "lock") == []
        assert of_type(bot, "left") == []


async def test_host_mute_marks_state(party: Moderated) -> None:
    alice = await party.join_as("Alice", role="host")
    bob = await party.join_as("Bob")
    bob.send_state(1, mic="on", camera="on")
    await alice.wait_data("state")

    alice.send_data(host("mute", bob.id))
    told = await bob.wait_data("muted")
    seen = await alice.wait_data("muted")
    carol = await party.join_as("Carol")

    assert told == {"type": "muted", "id": bob.id, "by": alice.id}
    assert seen == told
    assert roster_entry(carol, bob)["state"]["mic"] == "off"
    assert roster_entry(carol, bob)["version"] == 1
    # Only Bob can unmute himself, with his next state.
    bob.send_state(2, mic="on", camera="on")
    relayed = await carol.wait_data("state", lambda m: m["id"] == bob.id)
    assert relayed["state"]["mic"] == "on"


async def test_host_remove_closes_and_bars(party: Moderated) -> None:
    alice = await party.join_as("Alice", role="host")
    bob = await party.join_as("Bob", client_key=GUEST_KEY)
    carol = await party.join_as("Carol")

    alice.send_data(host("remove", bob.id))
    left = await alice.wait_data("left", lambda m: m["id"] == bob.id)
    await carol.wait_data("left", lambda m: m["id"] == bob.id)
    await wait_until(lambda: bob.close_code is not None, what="Bob's close")

    assert left["reason"] == "removed"
    error = next(m for m in bob.ws_messages if m["type"] == "error")
    assert error["code"] == "removed"
    assert error["message"] == "The host removed you from this room."
    assert bob.close_code == CLOSE_POLICY_VIOLATION

    same_browser = await party.refused("Robert", client_key=GUEST_KEY)
    same_name = await party.refused("bob", client_key=OTHER_KEY)
    assert same_browser["code"] == "removed"
    assert same_name["code"] == "removed"
    dave = await party.join_as("Dave", client_key=OTHER_KEY)
    assert dave.close_code is None


async def test_host_cannot_remove_host(party: Moderated) -> None:
    alice = await party.join_as("Alice", role="host")
    grace = await party.join_as("Grace", role="host")

    reply = await reply_to(alice, host("remove", grace.id))

    assert reply["code"] == "not_allowed"
    assert grace.close_code is None


async def test_host_lock_and_unlock(party: Moderated) -> None:
    alice = await party.join_as("Alice", role="host")
    bob = await party.join_as("Bob")

    alice.send_data(host("lock"))
    notice = await bob.wait_data("lock")
    refused = await party.refused("Carol")
    grace = await party.join_as("Grace", role="host")
    late_notice = await grace.wait_data("lock")

    assert notice == {"type": "lock", "locked": True, "by": alice.id}
    assert refused["code"] == "room_locked"
    assert "locked this room" in refused["message"]
    assert late_notice == {"type": "lock", "locked": True}

    alice.send_data(host("unlock"))
    unlocked = await bob.wait_data("lock", lambda m: m["locked"] is False)
    carol = await party.join_as("Carol")

    assert unlocked == {"type": "lock", "locked": False, "by": alice.id}
    assert of_type(carol, "lock") == []


async def test_host_action_errors(party: Moderated) -> None:
    alice = await party.join_as("Alice", role="host")
    bob = await party.join_as("Bob")

    cases = {
        "unknown action": (host("explode", bob.id), "bad_message", '"action"'),
        "action missing": ({"type": "host"}, "bad_message", '"action"'),
        "target missing": (host("mute"), "bad_message", '"target"'),
        "target unknown": (host("remove", "p000000000000"), "not_found", "Nobody"),
    }
    for case, (message, code, text) in cases.items():
        reply = await reply_to(alice, message)
        assert reply["type"] == "error", case
        assert reply["code"] == code, case
        assert text in reply["message"], (case, reply)

    assert bob.close_code is None
    assert of_type(bob, "muted") == []


async def test_join_client_key_checked(party: Moderated) -> None:
    refused = await party.refused("Eve", client_key="short")

    assert refused["code"] == "bad_message"
    assert '"client"' in refused["message"]


async def test_host_mute_drops_audio(party: Moderated) -> None:
    # The bot sends pre-encoded Opus packets, which only a passthrough
    # decoder in this process hands on unchanged.
    sfu.frames.install_passthrough()
    alice = await party.join_as("Alice", role="host")
    bob = Bot(party.server.url, party.room["room"].id, party.room["guest"].token, "Bob")
    bob.audio = LoopTrack("audio", TONE, 0.02)
    party.bots.append(bob)
    await bob.join()
    await bob.wait_data("roster")
    bob.send_state(1, mic="on", camera="none")
    await wait_until(lambda: len(alice.frames_from(bob.id, "audio")) > 20, what="audio")

    # Bob's bot ignores "muted" and keeps sending, as a page too old to know it.
    alice.send_data(host("mute", bob.id))
    await alice.wait_data("muted")
    await asyncio.sleep(MUTE_SETTLE)
    muted_from = len(alice.frames_from(bob.id, "audio"))
    await asyncio.sleep(1.0)
    during_mute = len(alice.frames_from(bob.id, "audio")) - muted_from

    bob.send_state(2, mic="on", camera="none")
    await wait_until(
        lambda: len(alice.frames_from(bob.id, "audio")) > muted_from + during_mute + 20,
        what="audio after unmute",
    )

    assert during_mute == 0
