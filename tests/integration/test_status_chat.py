"""Presence fields of the state (status, goal, profile) and room chat."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.test_presence import Party, roster_entry, wait_until
from tests.support.bot import Bot
from tests.support.server import ServerProcess

PROFILE = {
    "role": "Backend developer",
    "work": "A scheduler for volunteer shifts",
    "open_to_chat": True,
    "link": "https://example.org/ada",
}


@pytest.fixture
async def party(server: ServerProcess, room: dict[str, Any]) -> AsyncIterator[Party]:
    party = Party(server, room)
    try:
        yield party
    finally:
        await party.close()


def presence_state(version: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "state",
        "version": version,
        "state": {"mic": "on", "camera": "on", **fields},
    }


def chats(bot: Bot) -> list[dict[str, Any]]:
    return [m for m in bot.data_messages if m["type"] == "chat"]


def errors(bot: Bot) -> list[dict[str, Any]]:
    return [m for m in bot.data_messages if m["type"] == "error"]


async def test_presence_relayed_and_in_roster(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    alice.send_data(
        presence_state(1, status="dnd", goal="  Finish chapter 3  ", profile=PROFILE)
    )
    relayed = await bob.wait_data("state")
    carol = await party.join("Carol")

    expected = {
        "mic": "on",
        "camera": "on",
        "status": "dnd",
        "goal": "Finish chapter 3",
        "profile": PROFILE,
    }
    assert relayed["state"] == expected
    assert relayed["id"] == alice.id
    assert roster_entry(carol, alice)["state"] == expected
    assert roster_entry(carol, alice)["version"] == 1


async def test_profile_null_clears_card(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    alice.send_data(presence_state(1, profile=PROFILE))
    alice.send_data(presence_state(2, status="focus", profile=None))
    relayed = await bob.wait_data("state", lambda m: m["version"] == 2)

    assert relayed["state"] == {"mic": "on", "camera": "on", "status": "focus"}


INVALID_PRESENCE: dict[str, tuple[dict[str, Any], str]] = {
    "unknown status": ({"status": "sleeping"}, 'State field "status" must be one of'),
    "status not string": ({"status": 1}, 'State field "status" must be one of'),
    "goal too long": ({"goal": "g" * 141}, '"goal" can have at most 140 characters'),
    "goal not string": ({"goal": ["a"]}, 'Field "goal" must be a string'),
    "goal control character": ({"goal": "a\x1b[2Jb"}, '"goal" must not contain'),
    "goal bidi override": ({"goal": "abc\u202edef"}, '"goal" must not contain'),
    "javascript link": (
        {"profile": {**PROFILE, "link": "javascript:alert(1)"}},
        "must be an http:// or https:// address",
    ),
    "data link": (
        {"profile": {**PROFILE, "link": "data:text/html,<b>x</b>"}},
        "must be an http:// or https:// address",
    ),
    "link without host": (
        {"profile": {**PROFILE, "link": "https:///path"}},
        "must be an http:// or https:// address",
    ),
    "link with space": (
        {"profile": {**PROFILE, "link": "https://a.org/x y"}},
        '"link" must not contain spaces',
    ),
    "link too long": (
        {"profile": {**PROFILE, "link": "https://a.org/" + "x" * 300}},
        '"link" can have at most 300 characters',
    ),
    "role too long": (
        {"profile": {**PROFILE, "role": "r" * 65}},
        '"role" can have at most 64 characters',
    ),
    "work too long": (
        {"profile": {**PROFILE, "work": "w" * 201}},
        '"work" can have at most 200 characters',
    ),
    "open_to_chat not bool": (
        {"profile": {**PROFILE, "open_to_chat": "yes"}},
        '"open_to_chat" must be true or false',
    ),
    "profile unknown field": (
        {"profile": {**PROFILE, "photo": "x"}},
        'Profile field "photo" is not known',
    ),
    "profile missing field": (
        {"profile": {"role": "", "work": "", "open_to_chat": False}},
        'Profile field "link" is missing',
    ),
    "profile not object": ({"profile": "hi"}, '"profile" must be an object or null'),
}


async def test_invalid_presence_rejected(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    for case, (fields, expected) in INVALID_PRESENCE.items():
        before = len(alice.data_messages)
        alice.send_data(presence_state(1, **fields))
        await wait_until(
            lambda count=before: len(alice.data_messages) > count, what=case
        )
        reply = alice.data_messages[before]
        assert reply["type"] == "error", case
        assert reply["code"] == "bad_message", case
        assert expected in reply["message"], (case, reply["message"])
    alice.send_data(presence_state(1, status="focus"))
    await bob.wait_data("state")

    assert [m["version"] for m in bob.data_messages if m["type"] == "state"] == [1]
    assert errors(bob) == []


async def test_chat_delivered_with_server_fields(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    before = int(time.time() * 1000)
    alice.send_data({"type": "chat", "text": "  Coffee at the break?\nAnyone "})
    received = await bob.wait_data("chat")
    echoed = await alice.wait_data("chat")
    after = int(time.time() * 1000)

    assert received == echoed
    assert received["from"] == alice.id
    assert received["name"] == "Alice"
    assert received["text"] == "Coffee at the break?\nAnyone"
    assert received["id"].startswith("m")
    assert len(received["id"]) == 17
    assert before - 1000 <= received["at"] <= after + 1000


async def test_late_joiner_gets_chat_history(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")
    texts = ["one", "<b>two</b>", "three"]
    for text in texts:
        alice.send_data({"type": "chat", "text": text})
    await bob.wait_data("chat", lambda m: m["text"] == "three")
    bob.send_data({"type": "chat", "text": "four"})
    await alice.wait_data("chat", lambda m: m["text"] == "four")
    sent = chats(alice)

    carol = await party.join("Carol")
    history = await carol.wait_data("chat_history")
    first = await alice.wait_data("chat_history")

    assert first["messages"] == []
    assert [m["text"] for m in history["messages"]] == [*texts, "four"]
    assert history["messages"] == sent
    assert [m["from"] for m in history["messages"]] == [alice.id] * 3 + [bob.id]


async def test_chat_rate_limit(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    for index in range(8):
        alice.send_data({"type": "chat", "text": f"spam {index}"})
    await wait_until(lambda: len(errors(alice)) >= 3, what="rate limit errors")
    await bob.wait_data("chat", lambda m: m["text"] == "spam 4")

    limited = errors(alice)
    assert len(limited) == 3
    assert {e["code"] for e in limited} == {"rate_limited"}
    assert "too fast" in limited[0]["message"]
    assert [m["text"] for m in chats(bob)] == [f"spam {i}" for i in range(5)]


CHAT_INVALID: dict[str, tuple[object, str]] = {
    "too long": ("x" * 1001, "at most 1000 characters; this one has 1001"),
    "empty": ("   \n ", "must not be empty"),
    "not string": (42, 'Field "text" must be a string'),
    "control character": ("bell\x07", "must not contain control"),
}


async def test_chat_size_and_content_limits(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    for case, (text, expected) in CHAT_INVALID.items():
        before = len(alice.data_messages)
        alice.send_data({"type": "chat", "text": text})
        await wait_until(
            lambda count=before: len(alice.data_messages) > count, what=case
        )
        reply = alice.data_messages[before]
        assert reply["type"] == "error", case
        assert reply["code"] == "bad_message", case
        assert expected in reply["message"], (case, reply["message"])
    longest = "y" * 1000
    alice.send_data({"type": "chat", "text": longest})
    received = await bob.wait_data("chat")

    assert received["text"] == longest
    assert len(chats(bob)) == 1


async def test_chat_history_dropped_with_room(
    server: ServerProcess, room: dict[str, Any]
) -> None:
    first = Party(server, room)
    try:
        alice = await first.join("Alice")
        alice.send_data({"type": "chat", "text": "before everyone left"})
        await alice.wait_data("chat")
    finally:
        await first.close()
    room_id = room["room"].id
    deadline = time.monotonic() + 10
    while room_id in (await server.stats())["rooms"]:
        assert time.monotonic() < deadline, "room did not close"
        await asyncio.sleep(0.1)

    second = Party(server, room)
    try:
        bob = await second.join("Bob")
        history = await bob.wait_data("chat_history")
    finally:
        await second.close()

    assert history["messages"] == []


async def test_chat_message_id_field_ignored(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    alice.channel.send(
        json.dumps({"type": "chat", "text": "hi", "from": bob.id, "name": "Bob"})
    )
    received = await bob.wait_data("chat")

    assert received["from"] == alice.id
    assert received["name"] == "Alice"
