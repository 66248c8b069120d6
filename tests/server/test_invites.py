import logging
import time
from pathlib import Path

import pytest

from server.invites import (
    INVALID_INVITE_MESSAGE,
    InviteError,
    admit,
    make_link,
)
from server.storage import ROLE_GUEST, ROLE_HOST, SqliteStorage


@pytest.fixture
async def storage(tmp_path: Path):
    opened = await SqliteStorage.open(tmp_path / "db.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
async def closed_storage(tmp_path: Path):
    """A storage that raises on every query, to prove admit made none."""
    storage = await SqliteStorage.open(tmp_path / "closed.sqlite3")
    await storage.close()
    return storage


def flip_first_character(token: str) -> str:
    replacement = "B" if token[0] == "A" else "A"
    return replacement + token[1:]


@pytest.mark.parametrize(
    "public_url",
    ["https://cowork.example.org", "https://cowork.example.org/", "https://x.org//"],
)
def test_make_link_strips_slash(public_url: str) -> None:
    link = make_link(public_url, "q0Zf7cTQ3rB9wHk1", "T" * 32)
    base = public_url.rstrip("/")
    assert link == f"{base}/r/q0Zf7cTQ3rB9wHk1#{'T' * 32}"


def test_make_link_keeps_path() -> None:
    link = make_link("https://example.org/cowork/", "q0Zf7cTQ3rB9wHk1", "tok" * 6)
    assert link == "https://example.org/cowork/r/q0Zf7cTQ3rB9wHk1#" + "tok" * 6


def test_invite_error_code_and_message() -> None:
    error = InviteError()
    assert error.code == "invalid_invite"
    assert str(error) == INVALID_INVITE_MESSAGE
    assert INVALID_INVITE_MESSAGE == "This invite link is not valid or has expired."


async def test_admit_guest_and_host(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    guest = await storage.create_invite(room.id, ROLE_GUEST)
    host = await storage.create_invite(room.id, ROLE_HOST)

    assert await admit(storage, room.id, guest.token) == (room, guest)
    assert await admit(storage, room.id, host.token) == (room, host)


async def test_admit_revoked(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_GUEST)
    await storage.revoke_invite(invite.id)

    with pytest.raises(InviteError):
        await admit(storage, room.id, invite.token)


async def test_admit_expired(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(
        room.id, ROLE_GUEST, expires_at=time.time() - 1
    )

    with pytest.raises(InviteError):
        await admit(storage, room.id, invite.token)


async def test_admit_expiry_uses_now(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_GUEST, expires_at=1000.0)

    assert await admit(storage, room.id, invite.token, now=999.0) == (room, invite)
    with pytest.raises(InviteError):
        await admit(storage, room.id, invite.token, now=1000.0)


async def test_admit_other_room(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    other = await storage.create_room("Other", 10)
    await storage.create_invite(room.id, ROLE_GUEST)
    other_invite = await storage.create_invite(other.id, ROLE_HOST)

    with pytest.raises(InviteError):
        await admit(storage, room.id, other_invite.token)


async def test_admit_flipped_character(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_GUEST)

    with pytest.raises(InviteError):
        await admit(storage, room.id, flip_first_character(invite.token))


async def test_admit_unknown_room(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_GUEST)
    unknown_room = flip_first_character(room.id)

    with pytest.raises(InviteError) as unknown_room_error:
        await admit(storage, unknown_room, invite.token)
    with pytest.raises(InviteError) as wrong_token_error:
        await admit(storage, room.id, flip_first_character(invite.token))

    assert str(unknown_room_error.value) == str(wrong_token_error.value)
    assert unknown_room_error.value.code == wrong_token_error.value.code


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "A" * 1_000_000,
        "A" * 65,
        "A" * 15,
        "A" * 31 + "=",
        "A" * 31 + "/",
        "A" * 32 + "\n",
        "A" * 31 + "\u00e9",
        b"A" * 32,
        12345678901234567890,
        ["A" * 32],
    ],
)
async def test_admit_malformed_token_skips_database(closed_storage, token) -> None:
    with pytest.raises(InviteError):
        await admit(closed_storage, "q0Zf7cTQ3rB9wHk1", token)


@pytest.mark.parametrize(
    "room_id",
    [None, "", "short", "R" * 65, "R" * 1_000_000, "../../etc/passwd", b"R" * 16],
)
async def test_admit_malformed_room_skips_database(closed_storage, room_id) -> None:
    with pytest.raises(InviteError):
        await admit(closed_storage, room_id, "A" * 32)


async def test_admit_closed_storage_raises(closed_storage) -> None:
    # The malformed-input tests rely on a closed storage raising something other
    # than InviteError when admit does query it.
    with pytest.raises(Exception) as raised:
        await admit(closed_storage, "q0Zf7cTQ3rB9wHk1", "A" * 32)
    assert not isinstance(raised.value, InviteError)


async def test_admit_logs_no_token(
    storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_GUEST)
    await storage.revoke_invite(invite.id)
    wrong_token = flip_first_character(invite.token)

    with caplog.at_level(logging.DEBUG, logger="server"):
        with pytest.raises(InviteError):
            await admit(storage, room.id, invite.token)
        with pytest.raises(InviteError):
            await admit(storage, room.id, wrong_token)

    assert room.id in caplog.text
    assert "revoked" in caplog.text
    assert "unknown token" in caplog.text
    assert invite.token not in caplog.text
    assert wrong_token not in caplog.text
