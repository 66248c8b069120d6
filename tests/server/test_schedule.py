"""Slots, bookings and attendance in the real SQLite storage, and the migration."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from pathlib import Path

import pytest

from server.invites import admit
from server.protocol import clean_name
from server.schedule import (
    Plan,
    ScheduleError,
    SlotWindowError,
    parse_utc,
    validate_plan,
)
from server.storage import ROLE_GUEST, SCHEMA_VERSION, SqliteStorage

PLAN_50_10 = {"focus": 3000, "break": 600}


@pytest.fixture
async def storage(tmp_path: Path):
    opened = await SqliteStorage.open(tmp_path / "db.sqlite3")
    yield opened
    await opened.close()


def write_version_1_database(path: Path) -> None:
    """Write a database as the schema-1 server left it, with one room and invite."""
    connection = sqlite3.connect(path)
    connection.executescript(
        """
        CREATE TABLE rooms (id TEXT PRIMARY KEY, name TEXT NOT NULL,
            max_participants INTEGER NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE invites (id TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE,
            room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('guest', 'host')),
            created_at REAL NOT NULL, expires_at REAL, revoked_at REAL);
        CREATE INDEX invites_room_id ON invites (room_id);
        INSERT INTO rooms VALUES ('Room1Room1Room1R', 'Old room', 7, 1700000000.0);
        INSERT INTO invites VALUES ('i0000abcd', 'TokenTokenTokenTokenTokenToken12',
            'Room1Room1Room1R', 'guest', 1700000001.0, NULL, NULL);
        PRAGMA user_version = 1;
        """
    )
    connection.commit()
    connection.close()


async def test_migration_keeps_rooms_and_invites(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    write_version_1_database(path)

    storage = await SqliteStorage.open(path)
    try:
        rooms = await storage.list_rooms()
        assert [(r.id, r.name, r.limit) for r in rooms] == [
            ("Room1Room1Room1R", "Old room", 7)
        ]
        invite = await storage.get_invite_by_token("TokenTokenTokenTokenTokenToken12")
        assert invite is not None
        assert invite.id == "i0000abcd"
        assert invite.slot_id is None
        room, admitted = await admit(storage, "Room1Room1Room1R", invite.token)
        assert admitted == invite
        slot = await storage.create_slot(room.id, time.time() + 3600, 3600, PLAN_50_10)
        assert slot.capacity == 7
    finally:
        await storage.close()

    connection = sqlite3.connect(path)
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    connection.close()
    assert version == SCHEMA_VERSION


async def test_slot_round_trip_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first = await SqliteStorage.open(path)
    room = await first.create_room("Room", 10)
    starts_at = time.time() + 600
    slot = await first.create_slot(
        room.id,
        starts_at,
        5400,
        {"focus": 1500, "break": 300, "long_break": 900, "rounds_before_long": 4},
        capacity=4,
        title="  Deep   work ",
    )
    booking, secret = await first.create_booking(slot.id, "Ada")
    await first.close()

    second = await SqliteStorage.open(path)
    try:
        reloaded = await second.get_slot(slot.id)
        assert reloaded is not None
        assert reloaded.plan == Plan(1500, 300, 900, 4)
        assert reloaded.title == "Deep work"
        assert reloaded.capacity == 4
        assert reloaded.booked == 1
        assert reloaded.starts_at == pytest.approx(starts_at)
        assert await second.list_bookings(slot.id) == [booking]
        cancelled = await second.cancel_booking(booking.id, secret)
        assert cancelled.cancelled_at is not None
    finally:
        await second.close()


async def test_current_slot_gives_plan_in_seconds(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    # Whole seconds, as the storage rounds a start up to a whole second.
    now = float(math.ceil(time.time()))
    slot = await storage.create_slot(
        room.id,
        now + 100,
        1800,
        {"focus": 1500, "break": 300, "long_break": 600, "rounds_before_long": 3},
    )
    assert await storage.current_slot(room.id, now) is None
    current = await storage.current_slot(room.id, now + 100)
    assert current is not None and current.id == slot.id
    assert current.plan.as_dict() == {
        "focus": 1500,
        "break": 300,
        "long_break": 600,
        "rounds_before_long": 3,
    }
    assert await storage.current_slot(room.id, now + 1900) is None
    await storage.cancel_slot(slot.id)
    assert await storage.current_slot(room.id, now + 200) is None


@pytest.mark.parametrize(
    ("plan", "length", "message"),
    [
        ({"focus": 0, "break": 60}, 3600, "Plan focus must be a whole number"),
        ({"focus": 60, "break": -1}, 3600, "Plan break must be a whole number"),
        ({"focus": 4000, "break": 60}, 3600, "longer than the slot"),
        ({"focus": 60, "break": 60, "rounds_before_long": 2}, 3600, "long_break"),
        ({"focus": 60, "pause": 60}, 3600, "unknown fields: pause"),
        ({"focus": "50", "break": 10}, 3600, "Plan focus must be a whole number"),
        ({"focus": True, "break": 10}, 3600, "Plan focus must be a whole number"),
        ([50, 10], 3600, "Plan must be an object"),
    ],
)
def test_plan_validation(plan: object, length: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_plan(plan, length)


@pytest.mark.parametrize(
    "text", ["2026-05-04T09:00:00", "tomorrow", "", "2026-13-01T00:00Z", 1700000000]
)
def test_parse_utc_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_utc(text)


def test_parse_utc_offsets() -> None:
    assert parse_utc("2026-05-04T09:00:00Z") == parse_utc("2026-05-04T11:00:00+02:00")


async def test_slot_input_errors(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    now = time.time()
    cases = [
        ((now - 60, 3600, PLAN_50_10), {}, "in the past"),
        ((now + 400 * 86400, 3600, PLAN_50_10), {}, "more than a year ahead"),
        ((now + 60, 5, PLAN_50_10), {}, "Length must be a whole number from 10"),
        ((now + 60, 3600, PLAN_50_10), {"capacity": 11}, "Capacity must be"),
        ((now + 60, 3600, PLAN_50_10), {"capacity": 0}, "Capacity must be"),
        ((now + 60, 3600, PLAN_50_10), {"title": "x" * 81}, "at most 80"),
        ((now + 60, 3600, PLAN_50_10), {"title": "a\x00b"}, "control characters"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            await storage.create_slot(room.id, *args, **kwargs)
    assert await storage.list_slots(room.id, include_cancelled=True) == []


async def test_overlapping_slots_rejected(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    now = time.time()
    first = await storage.create_slot(room.id, now + 3600, 3600, PLAN_50_10)
    with pytest.raises(ScheduleError) as raised:
        await storage.create_slot(room.id, now + 5400, 3600, PLAN_50_10)
    assert raised.value.code == "slot_overlap"
    assert first.id in raised.value.message
    # Back to back is fine, and so is the same time once the first is cancelled.
    await storage.create_slot(room.id, now + 7200, 3600, PLAN_50_10)
    await storage.cancel_slot(first.id)
    await storage.create_slot(room.id, now + 3600, 3600, PLAN_50_10)


async def test_edit_slot(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    slot = await storage.create_slot(room.id, time.time() + 600, 3600, PLAN_50_10)
    await storage.create_booking(slot.id, "Ada")
    await storage.create_booking(slot.id, "Grace")

    edited = await storage.update_slot(
        slot.id, {"title": "Writing", "plan": {"focus": 1500, "break": 300}}
    )
    assert edited.title == "Writing"
    assert edited.plan == Plan(1500, 300)
    assert edited.sequence == slot.sequence + 1
    with pytest.raises(ScheduleError) as raised:
        await storage.update_slot(slot.id, {"capacity": 1})
    assert raised.value.code == "capacity_below_bookings"
    await storage.cancel_slot(slot.id)
    with pytest.raises(ScheduleError) as raised:
        await storage.update_slot(slot.id, {"title": "Again"})
    assert raised.value.code == "slot_cancelled"


async def test_capacity_full(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    slot = await storage.create_slot(
        room.id, time.time() + 600, 3600, PLAN_50_10, capacity=1
    )
    first, secret = await storage.create_booking(slot.id, "Ada")
    with pytest.raises(ScheduleError) as raised:
        await storage.create_booking(slot.id, "Grace")
    assert raised.value.code == "slot_full"
    assert "full" in raised.value.message
    await storage.cancel_booking(first.id, secret)
    await storage.create_booking(slot.id, "Grace")


async def test_last_seat_from_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    one = await SqliteStorage.open(path)
    two = await SqliteStorage.open(path)
    try:
        room = await one.create_room("Room", 10)
        for _ in range(20):
            slot = await one.create_slot(
                room.id, time.time() + 600, 10, {"focus": 10}, capacity=1
            )
            results = await asyncio.gather(
                one.create_booking(slot.id, "Ada"),
                two.create_booking(slot.id, "Grace"),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, ScheduleError)]
            assert len(errors) == 1, results
            assert errors[0].code == "slot_full"
            reloaded = await one.get_slot(slot.id)
            assert reloaded is not None and reloaded.booked == 1
            await one.cancel_slot(slot.id)
    finally:
        await one.close()
        await two.close()


async def test_cancel_booking_wrong_secret(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    slot = await storage.create_slot(room.id, time.time() + 600, 3600, PLAN_50_10)
    booking, _ = await storage.create_booking(slot.id, "Ada")
    with pytest.raises(ScheduleError) as raised:
        await storage.cancel_booking(booking.id, "not the secret")
    assert raised.value.code == "booking_not_found"
    assert (await storage.get_slot(slot.id)).booked == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "a\u202eb", None, 5])
async def test_booking_name_rejected(storage: SqliteStorage, name: object) -> None:
    room = await storage.create_room("Room", 10)
    slot = await storage.create_slot(room.id, time.time() + 600, 3600, PLAN_50_10)
    with pytest.raises(ValueError, match="Name"):
        await storage.create_booking(slot.id, name)  # type: ignore[arg-type]


# A technologist emoji: woman, zero-width joiner, laptop.
EMOJI_SEQUENCE = "\U0001F469\u200d\U0001F4BB"


async def test_booking_name_keeps_emoji_sequence(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    slot = await storage.create_slot(room.id, time.time() + 600, 3600, PLAN_50_10)
    booking, _ = await storage.create_booking(slot.id, f"Ada {EMOJI_SEQUENCE}")
    assert booking.name == f"Ada {EMOJI_SEQUENCE}"


def test_join_name_keeps_emoji_sequence() -> None:
    assert clean_name(f"Ada {EMOJI_SEQUENCE}") == f"Ada {EMOJI_SEQUENCE}"
    assert clean_name("Ada\u202e") == "Ada"


async def test_attendance_window(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    other = await storage.create_room("Other", 10)
    # Whole seconds, as the storage rounds a start up to a whole second.
    now = float(math.ceil(time.time()))
    slot = await storage.create_slot(room.id, now + 1000, 600, {"focus": 300})
    booking, secret = await storage.create_booking(slot.id, "Ada")

    assert await storage.mark_attended(booking.id, secret, room.id, now, 600) is None
    assert (
        await storage.mark_attended(booking.id, "wrong", room.id, now + 1000, 0) is None
    )
    assert (
        await storage.mark_attended(booking.id, secret, other.id, now + 1000, 0) is None
    )
    assert (
        await storage.mark_attended(booking.id, secret, room.id, now + 1600, 0) is None
    )
    attended = await storage.mark_attended(booking.id, secret, room.id, now + 500, 600)
    assert attended is not None and attended.attended_at == pytest.approx(now + 500)
    again = await storage.mark_attended(booking.id, secret, room.id, now + 1100, 600)
    assert again is not None and again.attended_at == pytest.approx(now + 500)

    slot_now = await storage.get_slot(slot.id)
    assert slot_now is not None
    assert attended.attendance(slot_now, now + 2000) == "attended"
    missed, _ = await storage.create_booking(slot.id, "Grace")
    assert missed.attendance(slot_now, now + 1500) == "pending"
    assert missed.attendance(slot_now, now + 1600) == "no_show"


async def test_bound_invite_window(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    # Whole seconds, as the storage rounds a start up to a whole second.
    now = float(math.ceil(time.time()))
    slot = await storage.create_slot(room.id, now + 1000, 600, {"focus": 300})
    invite = await storage.create_invite(room.id, ROLE_GUEST, slot_id=slot.id)

    with pytest.raises(SlotWindowError) as raised:
        await admit(storage, room.id, invite.token, now=now, early_seconds=600)
    assert raised.value.code == "slot_not_open"
    assert raised.value.opens_at == pytest.approx(now + 400)
    await admit(storage, room.id, invite.token, now=now + 400, early_seconds=600)
    await admit(storage, room.id, invite.token, now=now + 1599, early_seconds=600)
    with pytest.raises(SlotWindowError) as raised:
        await admit(storage, room.id, invite.token, now=now + 1600, early_seconds=600)
    assert raised.value.code == "slot_ended"
    await storage.cancel_slot(slot.id)
    with pytest.raises(SlotWindowError) as raised:
        await admit(storage, room.id, invite.token, now=now + 1000, early_seconds=600)
    assert raised.value.code == "slot_cancelled"


async def test_invite_slot_of_other_room_rejected(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    other = await storage.create_room("Other", 10)
    slot = await storage.create_slot(other.id, time.time() + 600, 600, {"focus": 60})
    with pytest.raises(ValueError, match="Slot not found in this room"):
        await storage.create_invite(room.id, ROLE_GUEST, slot_id=slot.id)


async def test_start_rounded_to_whole_second(storage: SqliteStorage) -> None:
    room = await storage.create_room("Room", 10)
    requested = time.time() + 60.25
    slot = await storage.create_slot(room.id, requested, 600, {"focus": 60})
    assert slot.starts_at == math.ceil(requested)
