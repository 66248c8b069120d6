"""The virtual background state field over the data channel, with real bots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.test_presence import Party, roster_entry, wait_until
from tests.integration.test_status_chat import presence_state
from tests.support.server import ServerProcess

UPLOAD_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def party(server: ServerProcess, room: dict[str, Any]) -> AsyncIterator[Party]:
    party = Party(server, room)
    try:
        yield party
    finally:
        await party.close()


@pytest.mark.parametrize(
    "background",
    ["none", "blur-light", "blur-strong", "builtin:night-sky", f"upload:{UPLOAD_ID}"],
)
async def test_background_relayed_and_in_roster(party: Party, background: str) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    alice.send_data(presence_state(1, background=background))
    relayed = await bob.wait_data("state")
    carol = await party.join("Carol")

    assert relayed["state"]["background"] == background
    assert roster_entry(carol, alice)["state"]["background"] == background


INVALID_BACKGROUNDS = {
    "unknown word": "blur",
    "builtin upper case": "builtin:Night-Sky",
    "builtin empty id": "builtin:",
    "builtin path": "builtin:../secret",
    "upload short id": "upload:abc",
    "upload upper hex": f"upload:{UPLOAD_ID.upper()}",
    "url": "https://example.org/bg.png",
    "not string": 3,
    "null": None,
}


async def test_invalid_background_rejected(party: Party) -> None:
    alice = await party.join("Alice")
    bob = await party.join("Bob")

    for case, value in INVALID_BACKGROUNDS.items():
        before = len(alice.data_messages)
        alice.send_data(presence_state(1, background=value))
        await wait_until(
            lambda count=before: len(alice.data_messages) > count, what=case
        )
        reply = alice.data_messages[before]
        assert reply["type"] == "error", case
        assert reply["code"] == "bad_message", case
        assert 'State field "background"' in reply["message"], case
    alice.send_data(presence_state(1, background="blur-strong"))
    relayed = await bob.wait_data("state")

    assert relayed["version"] == 1
    assert relayed["state"]["background"] == "blur-strong"
