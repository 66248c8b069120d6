import asyncio
import re
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from server.storage import (
    ROLE_GUEST,
    ROLE_HOST,
    SCHEMA_VERSION,
    Invite,
    SqliteStorage,
    StorageError,
    new_room_id,
)

ROOM_ID = re.compile(r"[A-Za-z0-9_-]{16}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
INVITE_ID = re.compile(r"i[0-9a-f]{8}")


@pytest.fixture
async def storage(tmp_path: Path):
    opened = await SqliteStorage.open(tmp_path / "db.sqlite3")
    yield opened
    await opened.close()


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "coworking.sqlite3"
    first = await SqliteStorage.open(path)
    room = await first.create_room("Writers' corner", 12)
    guest = await first.create_invite(room.id, ROLE_GUEST)
    host = await first.create_invite(room.id, ROLE_HOST, expires_at=2e9)
    await first.revoke_invite(guest.id)
    revoked_guest = await first.get_invite_by_token(guest.token)
    await first.close()

    second = await SqliteStorage.open(path)
    try:
        assert await second.list_rooms() == [room]
        assert await second.get_room(room.id) == room
        assert await second.get_invite_by_token(host.token) == host
        assert await second.get_invite_by_token(guest.token) == revoked_guest
        assert await second.list_invites(room.id) == [revoked_guest, host]
    finally:
        await second.close()


async def test_open_creates_private_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "db.sqlite3"
    storage = await SqliteStorage.open(path)
    try:
        await storage.create_room("Room", 5)
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600
        # While the connection is open, SQLite keeps the WAL beside the file.
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        await storage.close()


async def test_open_sets_wal_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    storage = await SqliteStorage.open(path)
    await storage.close()

    connection = sqlite3.connect(path)
    try:
        journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        user_version = connection.execute("PRAGMA user_version").fetchone()[0]
    finally:
        connection.close()
    assert journal_mode == "wal"
    assert user_version == SCHEMA_VERSION


async def test_open_rejects_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()

    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        await SqliteStorage.open(path)


async def test_open_rejects_non_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some text that is long enough" * 20)

    with pytest.raises(StorageError, match=re.escape(str(path))):
        await SqliteStorage.open(path)


async def test_queries_run_on_one_worker_thread(storage: SqliteStorage) -> None:
    threads = {await storage._run(threading.current_thread) for _ in range(5)}

    assert len(threads) == 1
    assert threading.current_thread() not in threads


async def test_create_room_fields(storage: SqliteStorage) -> None:
    before = time.time()
    room = await storage.create_room("  Quiet room  ", 25)

    assert ROOM_ID.fullmatch(room.id)
    assert room.name == "Quiet room"
    assert room.limit == 25
    assert before <= room.created_at <= time.time()


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 81, "line\nbreak", "nul\x00byte", "bell\x07", "sep\u2028x", 7],
)
async def test_create_room_rejects_name(storage: SqliteStorage, name) -> None:
    with pytest.raises(ValueError, match="Room name"):
        await storage.create_room(name, 10)
    assert await storage.list_rooms() == []


async def test_create_room_accepts_edge_names(storage: SqliteStorage) -> None:
    longest = await storage.create_room("x" * 80, 10)
    emoji = await storage.create_room("Caf\u00e9 \U0001f468\u200d\U0001f469", 10)
    assert longest.name == "x" * 80
    assert emoji.name == "Caf\u00e9 \U0001f468\u200d\U0001f469"


@pytest.mark.parametrize("limit", [1, 101, 0, -5, True, "10", 10.0, None])
async def test_create_room_rejects_limit(storage: SqliteStorage, limit) -> None:
    with pytest.raises(ValueError, match="Room limit must be an integer from 2 to 100"):
        await storage.create_room("Room", limit)


async def test_create_room_accepts_limit_bounds(storage: SqliteStorage) -> None:
    assert (await storage.create_room("Pair", 2)).limit == 2
    assert (await storage.create_room("Hall", 100)).limit == 100


async def test_list_rooms_oldest_first(storage: SqliteStorage) -> None:
    names = [f"Room {n}" for n in range(5)]
    for name in names:
        await storage.create_room(name, 10)

    assert [room.name for room in await storage.list_rooms()] == names


async def test_get_room_unknown(storage: SqliteStorage) -> None:
    assert await storage.get_room("AAAAAAAAAAAAAAAA") is None


async def test_create_invite_fields(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_HOST, expires_at=2e9)

    assert INVITE_ID.fullmatch(invite.id)
    assert TOKEN.fullmatch(invite.token)
    assert invite.room_id == room.id
    assert invite.role == ROLE_HOST
    assert invite.expires_at == 2e9
    assert invite.revoked_at is None


async def test_create_invite_unknown_room(storage: SqliteStorage) -> None:
    with pytest.raises(ValueError, match="Room not found: 'AAAAAAAAAAAAAAAA'"):
        await storage.create_invite("AAAAAAAAAAAAAAAA", ROLE_GUEST)


@pytest.mark.parametrize("role", ["admin", "Guest", "", None])
async def test_create_invite_rejects_role(storage: SqliteStorage, role) -> None:
    room = await storage.create_room("Room", 10)
    with pytest.raises(ValueError, match="Invite role must be 'guest' or 'host'"):
        await storage.create_invite(room.id, role)


@pytest.mark.parametrize("expires_at", [float("nan"), float("inf"), "tomorrow", True])
async def test_create_invite_rejects_expiry(storage: SqliteStorage, expires_at) -> None:
    room = await storage.create_room("Room", 10)
    with pytest.raises(ValueError, match="Invite expiry"):
        await storage.create_invite(room.id, ROLE_GUEST, expires_at)


async def test_create_invite_concurrently(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invites = await asyncio.gather(
        *(storage.create_invite(room.id, ROLE_GUEST) for _ in range(50))
    )

    assert len({invite.id for invite in invites}) == 50
    assert len({invite.token for invite in invites}) == 50
    assert await storage.list_invites(room.id) == sorted(
        invites, key=lambda invite: invite.created_at
    )


async def test_list_invites_per_room(storage: SqliteStorage) -> None:
    first = await storage.create_room("First", 10)
    second = await storage.create_room("Second", 10)
    guest = await storage.create_invite(first.id, ROLE_GUEST)
    host = await storage.create_invite(first.id, ROLE_HOST)
    other = await storage.create_invite(second.id, ROLE_GUEST)

    assert await storage.list_invites(first.id) == [guest, host]
    assert await storage.list_invites(second.id) == [other]
    assert await storage.list_invites("AAAAAAAAAAAAAAAA") == []


async def test_get_invite_by_token_unknown(storage: SqliteStorage) -> None:
    assert await storage.get_invite_by_token("A" * 32) is None


async def test_revoke_invite_sets_time(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_GUEST)
    before = time.time()

    revoked = await storage.revoke_invite(invite.id)

    assert revoked is not None
    assert revoked.id == invite.id
    assert revoked.revoked_at is not None
    assert before <= revoked.revoked_at <= time.time()
    assert await storage.get_invite_by_token(invite.token) == revoked


async def test_revoke_invite_twice_keeps_time(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    invite = await storage.create_invite(room.id, ROLE_GUEST)

    first = await storage.revoke_invite(invite.id)
    second = await storage.revoke_invite(invite.id)

    assert first is not None
    assert second == first


async def test_revoke_invite_unknown(storage: SqliteStorage) -> None:
    assert await storage.revoke_invite("i00000000") is None


async def test_closed_storage_raises(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    await storage.close()
    await storage.close()  # a second close does nothing

    with pytest.raises(StorageError, match="already closed"):
        await storage.list_rooms()
    with pytest.raises(StorageError, match="already closed"):
        await storage.get_invite_by_token("A" * 32)


def test_invite_repr_hides_token() -> None:
    invite = Invite(
        id="i0123abcd",
        token="SECRET-token-value-1234567890abc",
        room_id="R" * 16,
        role=ROLE_GUEST,
        created_at=1.0,
        expires_at=None,
        revoked_at=None,
    )
    assert "SECRET" not in repr(invite)
    assert "i0123abcd" in repr(invite)


@pytest.mark.parametrize(
    ("expires_at", "revoked_at", "now", "usable"),
    [
        (None, None, 1e9, True),
        (100.0, None, 99.9, True),
        (100.0, None, 100.0, False),
        (100.0, None, 200.0, False),
        (None, 50.0, 10.0, False),
        (100.0, 50.0, 10.0, False),
    ],
)
def test_invite_is_usable(expires_at, revoked_at, now, usable) -> None:
    invite = Invite(
        id="i0123abcd",
        token="T" * 32,
        room_id="R" * 16,
        role=ROLE_GUEST,
        created_at=1.0,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )
    assert invite.is_usable(now) is usable


def test_room_ids_never_start_with_dash() -> None:
    # One random id in 64 would start with "-", which the command line reads
    # as an option.
    ids = [new_room_id() for _ in range(2000)]

    assert not [room_id for room_id in ids if room_id.startswith("-")]
    assert all(len(room_id) == 16 for room_id in ids)
