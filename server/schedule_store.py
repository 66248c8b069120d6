"""SQL for slots and bookings. Every function runs on the storage thread, and the
writing ones inside a BEGIN IMMEDIATE transaction opened by SqliteStorage."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
from typing import Any

from .schedule import (
    Booking,
    Plan,
    ScheduleError,
    Slot,
    format_utc,
    validate_capacity,
    validate_length,
    validate_plan,
    validate_start,
    validate_title,
)

logger = logging.getLogger(__name__)

# Statements that raise the schema from version 1 to 2. Existing rooms and
# invites stay as they are; old invites get no slot.
MIGRATION_TO_2 = (
    """
    CREATE TABLE slots (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
        starts_at REAL NOT NULL,
        length INTEGER NOT NULL,
        focus INTEGER NOT NULL,
        break_length INTEGER NOT NULL,
        long_break INTEGER NOT NULL,
        rounds_before_long INTEGER NOT NULL,
        capacity INTEGER NOT NULL,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        cancelled_at REAL,
        sequence INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX slots_room_starts_at ON slots (room_id, starts_at)",
    """
    CREATE TABLE bookings (
        id TEXT PRIMARY KEY,
        slot_id TEXT NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        cancelled_at REAL,
        attended_at REAL
    )
    """,
    "CREATE INDEX bookings_slot_id ON bookings (slot_id)",
    "ALTER TABLE invites ADD COLUMN slot_id TEXT REFERENCES slots (id)",
)

_MAX_INSERT_ATTEMPTS = 5
# Bookings per slot, cancelled ones included, so that booking and cancelling in
# a loop cannot grow the database without bound.
MAX_BOOKINGS_PER_SLOT = 1000

_SLOT_COLUMNS = (
    "slots.*, (SELECT COUNT(*) FROM bookings WHERE bookings.slot_id = slots.id"
    " AND bookings.cancelled_at IS NULL) AS booked"
)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def slot_from_row(row: sqlite3.Row) -> Slot:
    return Slot(
        id=row["id"],
        room_id=row["room_id"],
        starts_at=row["starts_at"],
        length=row["length"],
        plan=Plan(
            row["focus"],
            row["break_length"],
            row["long_break"],
            row["rounds_before_long"],
        ),
        capacity=row["capacity"],
        title=row["title"],
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
        sequence=row["sequence"],
        booked=row["booked"],
    )


def booking_from_row(row: sqlite3.Row) -> Booking:
    return Booking(
        id=row["id"],
        slot_id=row["slot_id"],
        name=row["name"],
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
        attended_at=row["attended_at"],
    )


def select_slot(connection: sqlite3.Connection, slot_id: str) -> Slot | None:
    row = connection.execute(
        f"SELECT {_SLOT_COLUMNS} FROM slots WHERE id = ?", (slot_id,)
    ).fetchone()
    return None if row is None else slot_from_row(row)


def select_slots(
    connection: sqlite3.Connection,
    room_id: str,
    ending_after: float | None,
    include_cancelled: bool,
) -> list[Slot]:
    query = f"SELECT {_SLOT_COLUMNS} FROM slots WHERE room_id = ?"
    parameters: list[Any] = [room_id]
    if ending_after is not None:
        query += " AND starts_at + length > ?"
        parameters.append(ending_after)
    if not include_cancelled:
        query += " AND cancelled_at IS NULL"
    query += " ORDER BY starts_at, rowid"
    rows = connection.execute(query, parameters).fetchall()
    return [slot_from_row(row) for row in rows]


def select_current_slot(
    connection: sqlite3.Connection, room_id: str, now: float
) -> Slot | None:
    # Slots of a room never overlap, see _check_overlap, so at most one matches.
    row = connection.execute(
        f"SELECT {_SLOT_COLUMNS} FROM slots WHERE room_id = ?"
        " AND cancelled_at IS NULL AND starts_at <= ? AND starts_at + length > ?"
        " ORDER BY starts_at LIMIT 1",
        (room_id, now, now),
    ).fetchone()
    return None if row is None else slot_from_row(row)


def _room_limit(connection: sqlite3.Connection, room_id: str) -> int:
    row = connection.execute(
        "SELECT max_participants FROM rooms WHERE id = ?", (room_id,)
    ).fetchone()
    if row is None:
        raise ScheduleError("not_found", f"Room not found: {room_id[:64]!r}")
    return int(row[0])


def _check_overlap(
    connection: sqlite3.Connection,
    room_id: str,
    starts_at: float,
    ends_at: float,
    slot_id: str | None,
) -> None:
    row = connection.execute(
        "SELECT id, starts_at, length FROM slots WHERE room_id = ?"
        " AND cancelled_at IS NULL AND id IS NOT ? AND starts_at < ?"
        " AND starts_at + length > ? ORDER BY starts_at LIMIT 1",
        (room_id, slot_id, ends_at, starts_at),
    ).fetchone()
    if row is not None:
        raise ScheduleError(
            "slot_overlap",
            f"This time overlaps slot {row['id']} from"
            f" {format_utc(row['starts_at'])} to"
            f" {format_utc(row['starts_at'] + row['length'])}. A room runs one"
            " session at a time; choose another time.",
        )


def insert_slot(
    connection: sqlite3.Connection,
    room_id: str,
    starts_at: float,
    length: int,
    plan: Plan,
    capacity: int | None,
    title: str,
) -> Slot:
    now = time.time()
    limit = _room_limit(connection, room_id)
    starts_at = validate_start(starts_at, now)
    length = validate_length(length)
    plan = validate_plan(plan, length)
    capacity = validate_capacity(limit if capacity is None else capacity, limit)
    title = validate_title(title)
    _check_overlap(connection, room_id, starts_at, starts_at + length, None)
    for attempt in range(1, _MAX_INSERT_ATTEMPTS + 1):
        slot_id = "s" + secrets.token_hex(6)
        try:
            connection.execute(
                "INSERT INTO slots (id, room_id, starts_at, length, focus,"
                " break_length, long_break, rounds_before_long, capacity, title,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    slot_id,
                    room_id,
                    starts_at,
                    length,
                    plan.focus,
                    plan.break_,
                    plan.long_break,
                    plan.rounds_before_long,
                    capacity,
                    title,
                    now,
                ),
            )
        except sqlite3.IntegrityError:
            if attempt == _MAX_INSERT_ATTEMPTS:
                raise
            logger.warning("Slot id collision on attempt %d, retrying", attempt)
            continue
        break
    slot = select_slot(connection, slot_id)
    assert slot is not None
    return slot


def _require_open_slot(
    connection: sqlite3.Connection, slot_id: str, now: float, action: str
) -> Slot:
    slot = select_slot(connection, slot_id)
    if slot is None:
        raise ScheduleError("not_found", f"Slot not found: {slot_id[:64]!r}")
    if slot.cancelled_at is not None:
        raise ScheduleError(
            "slot_cancelled", f"This slot was cancelled, so you cannot {action} it."
        )
    if now >= slot.ends_at:
        raise ScheduleError(
            "slot_ended", f"This slot is over, so you cannot {action} it."
        )
    return slot


def update_slot(
    connection: sqlite3.Connection, slot_id: str, changes: dict[str, Any]
) -> Slot:
    """Apply `changes` (keys starts_at, length, plan, capacity, title) to a slot
    that is neither cancelled nor over, and raise its sequence."""
    now = time.time()
    slot = _require_open_slot(connection, slot_id, now, "edit")
    limit = _room_limit(connection, slot.room_id)
    starts_at = slot.starts_at
    if "starts_at" in changes and changes["starts_at"] != slot.starts_at:
        if now >= slot.starts_at:
            raise ScheduleError(
                "slot_started", "This slot has started, so its start cannot move."
            )
        starts_at = validate_start(changes["starts_at"], now)
    length = validate_length(changes.get("length", slot.length))
    plan = validate_plan(changes.get("plan", slot.plan), length)
    capacity = validate_capacity(changes.get("capacity", slot.capacity), limit)
    title = validate_title(changes.get("title", slot.title))
    if capacity < slot.booked:
        raise ScheduleError(
            "capacity_below_bookings",
            f"{slot.booked} people have booked this slot, so its capacity cannot be"
            f" less than {slot.booked}.",
        )
    if starts_at + length <= now:
        raise ValueError(
            f"Length {length} s would end the slot in the past; choose a longer one."
        )
    _check_overlap(connection, slot.room_id, starts_at, starts_at + length, slot.id)
    connection.execute(
        "UPDATE slots SET starts_at = ?, length = ?, focus = ?, break_length = ?,"
        " long_break = ?, rounds_before_long = ?, capacity = ?, title = ?,"
        " sequence = sequence + 1 WHERE id = ?",
        (
            starts_at,
            length,
            plan.focus,
            plan.break_,
            plan.long_break,
            plan.rounds_before_long,
            capacity,
            title,
            slot.id,
        ),
    )
    updated = select_slot(connection, slot.id)
    assert updated is not None
    return updated


def cancel_slot(connection: sqlite3.Connection, slot_id: str) -> Slot | None:
    """Mark a slot cancelled; cancelling twice keeps the first time."""
    connection.execute(
        "UPDATE slots SET cancelled_at = ?, sequence = sequence + 1"
        " WHERE id = ? AND cancelled_at IS NULL",
        (time.time(), slot_id),
    )
    return select_slot(connection, slot_id)


def insert_booking(
    connection: sqlite3.Connection, slot_id: str, name: str
) -> tuple[Booking, str]:
    # The count and the insert run in one write transaction, so two requests for
    # the last seat, even from two processes, cannot both get it.
    now = time.time()
    slot = _require_open_slot(connection, slot_id, now, "book")
    if slot.booked >= slot.capacity:
        raise ScheduleError(
            "slot_full",
            f"This slot is full: all {slot.capacity} places are booked."
            " Choose another slot.",
        )
    total = connection.execute(
        "SELECT COUNT(*) FROM bookings WHERE slot_id = ?", (slot.id,)
    ).fetchone()[0]
    if total >= MAX_BOOKINGS_PER_SLOT:
        raise ScheduleError(
            "too_many_bookings",
            "This slot has had too many bookings and cancellations; ask the host.",
        )
    secret = secrets.token_urlsafe(24)
    for attempt in range(1, _MAX_INSERT_ATTEMPTS + 1):
        booking = Booking(
            id="b" + secrets.token_hex(8),
            slot_id=slot.id,
            name=name,
            created_at=now,
            cancelled_at=None,
            attended_at=None,
        )
        try:
            connection.execute(
                "INSERT INTO bookings (id, slot_id, name, secret_sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (booking.id, slot.id, name, hash_secret(secret), now),
            )
        except sqlite3.IntegrityError:
            if attempt == _MAX_INSERT_ATTEMPTS:
                raise
            continue
        return booking, secret
    raise AssertionError("unreachable")


def _select_booking_with_secret(
    connection: sqlite3.Connection, booking_id: str, secret: str
) -> sqlite3.Row | None:
    row = connection.execute(
        "SELECT * FROM bookings WHERE id = ?", (booking_id,)
    ).fetchone()
    if row is None:
        return None
    if not hmac.compare_digest(row["secret_sha256"], hash_secret(secret)):
        return None
    return row


def _mark_cancelled(connection: sqlite3.Connection, booking_id: str) -> Booking:
    """Set a booking's cancellation time unless it is set, and return the booking."""
    connection.execute(
        "UPDATE bookings SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
        (time.time(), booking_id),
    )
    updated = connection.execute(
        "SELECT * FROM bookings WHERE id = ?", (booking_id,)
    ).fetchone()
    return booking_from_row(updated)


def cancel_booking(
    connection: sqlite3.Connection, booking_id: str, secret: str
) -> Booking:
    row = _select_booking_with_secret(connection, booking_id, secret)
    if row is None:
        raise ScheduleError(
            "booking_not_found",
            "This booking does not exist or its cancel code is wrong.",
        )
    return _mark_cancelled(connection, booking_id)


def cancel_booking_of_room(
    connection: sqlite3.Connection, booking_id: str, room_id: str
) -> Booking:
    """Cancel a booking of a slot in `room_id` without its secret, for the host."""
    row = connection.execute(
        "SELECT bookings.* FROM bookings JOIN slots ON slots.id = bookings.slot_id"
        " WHERE bookings.id = ? AND slots.room_id = ?",
        (booking_id, room_id),
    ).fetchone()
    if row is None:
        raise ScheduleError(
            "booking_not_found", f"Booking not found in this room: {booking_id!r}"
        )
    return _mark_cancelled(connection, booking_id)


def mark_attended(
    connection: sqlite3.Connection,
    booking_id: str,
    secret: str,
    room_id: str,
    now: float,
    early_seconds: float,
) -> Booking | None:
    """Record the first time the holder joined `room_id` within the slot's window
    (from `early_seconds` before the start to the end). Return None for a wrong id
    or secret, a cancelled booking or slot, another room, or a time outside the
    window."""
    row = _select_booking_with_secret(connection, booking_id, secret)
    if row is None or row["cancelled_at"] is not None:
        return None
    slot = select_slot(connection, row["slot_id"])
    if (
        slot is None
        or slot.room_id != room_id
        or slot.cancelled_at is not None
        or not slot.opens_at(early_seconds) <= now < slot.ends_at
    ):
        return None
    connection.execute(
        "UPDATE bookings SET attended_at = ? WHERE id = ? AND attended_at IS NULL",
        (now, booking_id),
    )
    updated = connection.execute(
        "SELECT * FROM bookings WHERE id = ?", (booking_id,)
    ).fetchone()
    return booking_from_row(updated)


def select_bookings(connection: sqlite3.Connection, slot_id: str) -> list[Booking]:
    rows = connection.execute(
        "SELECT * FROM bookings WHERE slot_id = ? ORDER BY created_at, rowid",
        (slot_id,),
    ).fetchall()
    return [booking_from_row(row) for row in rows]
