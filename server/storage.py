"""Rooms and invites, stored in SQLite behind the async Storage interface."""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import math
import os
import secrets
import sqlite3
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from . import schedule_store
from .schedule import Booking, Plan, Slot, validate_booking_name

logger = logging.getLogger(__name__)

ROLE_GUEST = "guest"
ROLE_HOST = "host"
ROLES = (ROLE_GUEST, ROLE_HOST)

MAX_ROOM_NAME_LENGTH = 80
MIN_ROOM_LIMIT = 2
MAX_ROOM_LIMIT = 100

# Unicode categories rejected in room names: control characters (Cc), lone surrogates
# (Cs, which SQLite cannot store as UTF-8) and line and paragraph separators (Zl, Zp).
_FORBIDDEN_NAME_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

# Attempts to insert a row with a fresh random id. Invite ids have only 32 bits, so a
# collision is possible in a large database. Room ids and tokens practically never
# collide, but they share the same loop.
_MAX_INSERT_ATTEMPTS = 5

# Seconds a connection waits for another process (for example the `coworking` command
# while the server runs) to release its write lock before raising "database is locked".
_BUSY_TIMEOUT_SECONDS = 10.0

SCHEMA_VERSION = 2

# _MIGRATIONS[n] contains the statements that raise PRAGMA user_version from n - 1 to n.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE rooms (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            max_participants INTEGER NOT NULL,
            created_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE invites (
            id TEXT PRIMARY KEY,
            token TEXT NOT NULL UNIQUE,
            room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('guest', 'host')),
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL
        )
        """,
        "CREATE INDEX invites_room_id ON invites (room_id)",
    ),
    2: schedule_store.MIGRATION_TO_2,
}

_T = TypeVar("_T")


class StorageError(Exception):
    """Failure to open or use the database, with a message meant for the operator."""


@dataclass(frozen=True)
class Room:
    """A room that participants join with an invite."""

    id: str
    name: str
    limit: int  # maximum number of participants
    created_at: float  # Unix time in seconds


@dataclass(frozen=True)
class Invite:
    """An invite that admits its holder to one room with one role."""

    id: str  # short public id for `coworking invite revoke`, not a secret
    token: str = field(repr=False)  # the secret part of the invite link
    room_id: str
    role: str
    created_at: float  # Unix time in seconds, like expires_at and revoked_at
    expires_at: float | None
    revoked_at: float | None
    # The slot whose admission window limits this invite, or None for any time.
    slot_id: str | None = None

    def is_usable(self, now: float) -> bool:
        """Return whether the invite is neither revoked nor expired at `now`."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


class Storage(abc.ABC):
    """Persistent rooms and invites. Every method runs without blocking the loop."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the database. Later calls on this object raise StorageError."""

    @abc.abstractmethod
    async def create_room(self, name: str, limit: int) -> Room:
        """Insert a room with no invites. Raise ValueError for an invalid name or
        limit."""

    @abc.abstractmethod
    async def get_room(self, room_id: str) -> Room | None:
        """Return the room with this id, or None."""

    @abc.abstractmethod
    async def list_rooms(self) -> list[Room]:
        """Return all rooms, oldest first."""

    @abc.abstractmethod
    async def create_invite(
        self,
        room_id: str,
        role: str,
        expires_at: float | None = None,
        slot_id: str | None = None,
    ) -> Invite:
        """Insert an invite with a new secret token, bound to `slot_id` if given.
        Raise ValueError for an invalid role or expiry time, for a room that does
        not exist, or for a slot of another room."""

    @abc.abstractmethod
    async def get_invite_by_token(self, token: str) -> Invite | None:
        """Return the invite with this token, whether usable or not, or None."""

    @abc.abstractmethod
    async def list_invites(self, room_id: str) -> list[Invite]:
        """Return all invites of a room, revoked and expired ones too, oldest first."""

    @abc.abstractmethod
    async def revoke_invite(self, invite_id: str) -> Invite | None:
        """Mark an invite as revoked and return it, or return None for an unknown id.

        Revoking an invite twice keeps the time of the first revocation.
        """

    # Slots and bookings. Methods that write raise ValueError for invalid input
    # and schedule.ScheduleError, with a client error code, for a conflict.

    @abc.abstractmethod
    async def create_slot(
        self,
        room_id: str,
        starts_at: float,
        length: int,
        plan: Plan | dict[str, Any],
        capacity: int | None = None,
        title: str = "",
    ) -> Slot:
        """Insert a slot. Capacity defaults to the room's participant limit; the
        slot may not overlap another slot of the room that is not cancelled."""

    @abc.abstractmethod
    async def get_slot(self, slot_id: str) -> Slot | None:
        """Return the slot with this id, cancelled or not, or None."""

    @abc.abstractmethod
    async def list_slots(
        self,
        room_id: str,
        ending_after: float | None = None,
        include_cancelled: bool = False,
    ) -> list[Slot]:
        """Return a room's slots that end after `ending_after`, earliest first."""

    @abc.abstractmethod
    async def update_slot(self, slot_id: str, changes: dict[str, Any]) -> Slot:
        """Change starts_at, length, plan, capacity or title of a slot that is
        neither cancelled nor over, and return it."""

    @abc.abstractmethod
    async def cancel_slot(self, slot_id: str) -> Slot | None:
        """Mark a slot cancelled and return it, or None for an unknown id."""

    @abc.abstractmethod
    async def current_slot(self, room_id: str, now: float) -> Slot | None:
        """Return the room's slot, not cancelled, with starts_at <= now < ends_at.

        The session clock reads the focus/break plan from it: `slot.plan.focus`,
        `.break_`, `.long_break` (seconds) and `.rounds_before_long`.
        """

    @abc.abstractmethod
    async def create_booking(self, slot_id: str, name: str) -> tuple[Booking, str]:
        """Book a place and return the booking and its cancel secret, which is
        stored only as a hash. Raise ScheduleError "slot_full" when no place is
        left."""

    @abc.abstractmethod
    async def cancel_booking(self, booking_id: str, secret: str) -> Booking:
        """Cancel a booking with its secret; cancelling twice keeps the first time."""

    @abc.abstractmethod
    async def remove_booking(self, booking_id: str, room_id: str) -> Booking:
        """Cancel a booking of a slot in `room_id` without its secret, as the host
        does. Raise ScheduleError "booking_not_found" for another room's."""

    @abc.abstractmethod
    async def list_bookings(self, slot_id: str) -> list[Booking]:
        """Return a slot's bookings, cancelled ones too, oldest first."""

    @abc.abstractmethod
    async def mark_attended(
        self,
        booking_id: str,
        secret: str,
        room_id: str,
        now: float,
        early_seconds: float,
    ) -> Booking | None:
        """Record that the holder joined `room_id` at `now` (the first time
        counts). Return None for an unknown id, a wrong secret, a cancelled
        booking or slot, or a join outside the slot's admission window."""


def validate_room_name(name: object) -> str:
    """Return the room name without surrounding whitespace, or raise ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"Room name must be a string, got {name!r}")
    stripped = name.strip()
    if not 1 <= len(stripped) <= MAX_ROOM_NAME_LENGTH:
        raise ValueError(
            f"Room name must be 1 to {MAX_ROOM_NAME_LENGTH} characters long without"
            f" surrounding spaces, got {len(stripped)} characters: {_shorten(name)}"
        )
    for character in stripped:
        if unicodedata.category(character) in _FORBIDDEN_NAME_CATEGORIES:
            raise ValueError(
                f"Room name must not contain control characters or line separators,"
                f" got {stripped!r}"
            )
    return stripped


def validate_room_limit(limit: object) -> int:
    """Return the participant limit, or raise ValueError unless it is in range."""
    # bool is a subclass of int, but True is not a participant count.
    if (
        not isinstance(limit, int)
        or isinstance(limit, bool)
        or not MIN_ROOM_LIMIT <= limit <= MAX_ROOM_LIMIT
    ):
        raise ValueError(
            f"Room limit must be an integer from {MIN_ROOM_LIMIT} to"
            f" {MAX_ROOM_LIMIT}, got {limit!r}"
        )
    return limit


def validate_role(role: object) -> str:
    """Return the invite role, or raise ValueError unless it is guest or host."""
    if role not in ROLES:
        raise ValueError(f"Invite role must be 'guest' or 'host', got {role!r}")
    assert isinstance(role, str)
    return role


def _validate_expires_at(expires_at: object) -> float | None:
    if expires_at is None:
        return None
    if (
        not isinstance(expires_at, (int, float))
        or isinstance(expires_at, bool)
        or not math.isfinite(expires_at)
    ):
        raise ValueError(
            f"Invite expiry must be None or a Unix time in seconds, got {expires_at!r}"
        )
    return float(expires_at)


def _shorten(text: str, max_length: int = 40) -> str:
    if len(text) <= max_length:
        return repr(text)
    return repr(text[:max_length]) + "..."


def _room_from_row(row: sqlite3.Row) -> Room:
    return Room(
        id=row["id"],
        name=row["name"],
        limit=row["max_participants"],
        created_at=row["created_at"],
    )


def _invite_from_row(row: sqlite3.Row) -> Invite:
    return Invite(
        id=row["id"],
        token=row["token"],
        room_id=row["room_id"],
        role=row["role"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        slot_id=row["slot_id"],
    )


def _is_unique_violation(error: sqlite3.IntegrityError) -> bool:
    return str(error).startswith("UNIQUE constraint failed")


class SqliteStorage(Storage):
    """Storage in one SQLite file, used from one dedicated worker thread.

    Every query runs on that thread, so the event loop does not wait for the disk,
    and the sqlite3 connection is only used by the thread that created it. Create
    instances with `await SqliteStorage.open(path)`.
    """

    def __init__(
        self, path: Path, executor: ThreadPoolExecutor, connection: sqlite3.Connection
    ) -> None:
        self.path = path
        self._executor = executor
        self._connection = connection
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> SqliteStorage:
        """Open the database at `path`, creating it and its parent directories.

        A new file gets mode 0600 because it contains the invite tokens. The
        connection uses WAL mode and enforces foreign keys, and the schema is created
        or upgraded to SCHEMA_VERSION. Raise StorageError if the file cannot be
        opened or was written by a newer version of this program.
        """
        path = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(executor, _open_connection, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        logger.debug("Opened database %s", path)
        return cls(path, executor, connection)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        # Queries queued before this point still run first: the executor has one
        # thread and runs its jobs in order.
        try:
            await loop.run_in_executor(self._executor, self._connection.close)
        finally:
            self._executor.shutdown(wait=True)
        logger.debug("Closed database %s", self.path)

    async def check(self) -> None:
        """Raise StorageError or sqlite3.Error unless the database can be read and
        its file and folder can be written."""
        await self._run(self._check)

    def _check(self) -> None:
        self._connection.execute("SELECT 1 FROM rooms LIMIT 1").fetchall()
        for target in (self.path, self.path.parent):
            if not os.access(target, os.W_OK):
                raise StorageError(f"{target} is not writable")

    async def _run(self, function: Callable[..., _T], *args: object) -> _T:
        if self._closed:
            raise StorageError(f"Database {self.path} is already closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args)
        )

    def _in_write_transaction(self, function: Callable[..., _T], *args: object) -> _T:
        # BEGIN IMMEDIATE takes the write lock up front, so a check and the insert
        # that depends on it see the same data even when another process writes too.
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = function(connection, *args)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    async def create_room(self, name: str, limit: int) -> Room:
        name = validate_room_name(name)
        limit = validate_room_limit(limit)
        room = await self._run(self._in_write_transaction, _insert_room, name, limit)
        logger.debug("Created room %s", room.id)
        return room

    async def get_room(self, room_id: str) -> Room | None:
        return await self._run(self._select_room, room_id)

    def _select_room(self, room_id: str) -> Room | None:
        row = self._connection.execute(
            "SELECT * FROM rooms WHERE id = ?", (room_id,)
        ).fetchone()
        return None if row is None else _room_from_row(row)

    async def list_rooms(self) -> list[Room]:
        return await self._run(self._select_rooms)

    def _select_rooms(self) -> list[Room]:
        rows = self._connection.execute(
            "SELECT * FROM rooms ORDER BY created_at, rowid"
        ).fetchall()
        return [_room_from_row(row) for row in rows]

    async def create_invite(
        self,
        room_id: str,
        role: str,
        expires_at: float | None = None,
        slot_id: str | None = None,
    ) -> Invite:
        role = validate_role(role)
        expires_at = _validate_expires_at(expires_at)
        invite = await self._run(
            self._in_write_transaction,
            _insert_invite,
            room_id,
            role,
            expires_at,
            slot_id,
        )
        logger.debug(
            "Created %s invite %s for room %s", invite.role, invite.id, invite.room_id
        )
        return invite

    async def get_invite_by_token(self, token: str) -> Invite | None:
        return await self._run(self._select_invite_by_token, token)

    def _select_invite_by_token(self, token: str) -> Invite | None:
        row = self._connection.execute(
            "SELECT * FROM invites WHERE token = ?", (token,)
        ).fetchone()
        return None if row is None else _invite_from_row(row)

    async def list_invites(self, room_id: str) -> list[Invite]:
        return await self._run(self._select_invites, room_id)

    def _select_invites(self, room_id: str) -> list[Invite]:
        rows = self._connection.execute(
            "SELECT * FROM invites WHERE room_id = ? ORDER BY created_at, rowid",
            (room_id,),
        ).fetchall()
        return [_invite_from_row(row) for row in rows]

    async def revoke_invite(self, invite_id: str) -> Invite | None:
        invite = await self._run(
            self._in_write_transaction, _update_revoked_at, invite_id
        )
        if invite is not None:
            logger.debug("Revoked invite %s of room %s", invite.id, invite.room_id)
        return invite

    async def create_slot(
        self,
        room_id: str,
        starts_at: float,
        length: int,
        plan: Plan | dict[str, Any],
        capacity: int | None = None,
        title: str = "",
    ) -> Slot:
        slot = await self._run(
            self._in_write_transaction,
            schedule_store.insert_slot,
            room_id,
            starts_at,
            length,
            plan,
            capacity,
            title,
        )
        logger.info("Created slot %s in room %s", slot.id, room_id)
        return slot

    async def get_slot(self, slot_id: str) -> Slot | None:
        return await self._run(self._read, schedule_store.select_slot, slot_id)

    async def list_slots(
        self,
        room_id: str,
        ending_after: float | None = None,
        include_cancelled: bool = False,
    ) -> list[Slot]:
        return await self._run(
            self._read,
            schedule_store.select_slots,
            room_id,
            ending_after,
            include_cancelled,
        )

    async def update_slot(self, slot_id: str, changes: dict[str, Any]) -> Slot:
        slot = await self._run(
            self._in_write_transaction, schedule_store.update_slot, slot_id, changes
        )
        logger.info("Edited slot %s (%s)", slot.id, ", ".join(sorted(changes)))
        return slot

    async def cancel_slot(self, slot_id: str) -> Slot | None:
        slot = await self._run(
            self._in_write_transaction, schedule_store.cancel_slot, slot_id
        )
        if slot is not None:
            logger.info("Cancelled slot %s of room %s", slot.id, slot.room_id)
        return slot

    async def current_slot(self, room_id: str, now: float) -> Slot | None:
        return await self._run(
            self._read, schedule_store.select_current_slot, room_id, now
        )

    async def create_booking(self, slot_id: str, name: str) -> tuple[Booking, str]:
        name = validate_booking_name(name)
        booking, secret = await self._run(
            self._in_write_transaction, schedule_store.insert_booking, slot_id, name
        )
        logger.info("Booked %s in slot %s", booking.id, slot_id)
        return booking, secret

    async def cancel_booking(self, booking_id: str, secret: str) -> Booking:
        booking = await self._run(
            self._in_write_transaction,
            schedule_store.cancel_booking,
            booking_id,
            secret,
        )
        logger.info("Cancelled booking %s of slot %s", booking.id, booking.slot_id)
        return booking

    async def remove_booking(self, booking_id: str, room_id: str) -> Booking:
        booking = await self._run(
            self._in_write_transaction,
            schedule_store.cancel_booking_of_room,
            booking_id,
            room_id,
        )
        logger.info("Host removed booking %s of slot %s", booking.id, booking.slot_id)
        return booking

    async def list_bookings(self, slot_id: str) -> list[Booking]:
        return await self._run(self._read, schedule_store.select_bookings, slot_id)

    async def mark_attended(
        self,
        booking_id: str,
        secret: str,
        room_id: str,
        now: float,
        early_seconds: float,
    ) -> Booking | None:
        return await self._run(
            self._in_write_transaction,
            schedule_store.mark_attended,
            booking_id,
            secret,
            room_id,
            now,
            early_seconds,
        )

    def _read(self, function: Callable[..., _T], *args: object) -> _T:
        return function(self._connection, *args)


def _open_connection(path: Path) -> sqlite3.Connection:
    try:
        _create_private_file(path)
        connection = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
    except (OSError, sqlite3.Error) as error:
        raise StorageError(f"Cannot open database {path}: {error}") from error

    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        journal_mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if journal_mode.lower() != "wal":
            raise StorageError(
                f"Cannot switch database {path} to WAL mode, it stays in"
                f" {journal_mode!r} mode"
            )
        _migrate(connection, path)
    except sqlite3.Error as error:
        connection.close()
        raise StorageError(f"Cannot open database {path}: {error}") from error
    except BaseException:
        connection.close()
        raise
    return connection


def _create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600 unless `path` exists already.

    SQLite creates its -wal and -shm files with the mode of the database file, so
    they are private too. An existing file keeps its mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        # The umask can only remove bits from 0600, but set it exactly anyway.
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"Database {path} has schema version {version}, but this version of"
                f" coworking supports only up to {SCHEMA_VERSION}. Upgrade coworking"
                " or use another database file."
            )
        for next_version in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[next_version]:
                connection.execute(statement)
            # PRAGMA does not accept parameters, but next_version is an int.
            connection.execute(f"PRAGMA user_version = {int(next_version)}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    if version == 0:
        logger.info("Created schema version %d in database %s", SCHEMA_VERSION, path)
    elif version < SCHEMA_VERSION:
        logger.info(
            "Upgraded database %s from schema version %d to %d",
            path,
            version,
            SCHEMA_VERSION,
        )


def _insert_room(connection: sqlite3.Connection, name: str, limit: int) -> Room:
    for attempt in range(1, _MAX_INSERT_ATTEMPTS + 1):
        room = Room(
            id=new_room_id(),
            name=name,
            limit=limit,
            created_at=time.time(),
        )
        try:
            connection.execute(
                "INSERT INTO rooms (id, name, max_participants, created_at)"
                " VALUES (?, ?, ?, ?)",
                (room.id, room.name, room.limit, room.created_at),
            )
        except sqlite3.IntegrityError as error:
            if not _is_unique_violation(error) or attempt == _MAX_INSERT_ATTEMPTS:
                raise
            logger.warning("Room id collision on attempt %d, retrying", attempt)
            continue
        return room
    raise AssertionError("unreachable")


def new_room_id() -> str:
    """Return a random room id: 96 bits, 16 URL-safe characters.

    An id that starts with "-" would read as an option on the command line,
    so such ids are drawn again.
    """
    while True:
        room_id = secrets.token_urlsafe(12)
        if not room_id.startswith("-"):
            return room_id


def _insert_invite(
    connection: sqlite3.Connection,
    room_id: str,
    role: str,
    expires_at: float | None,
    slot_id: str | None,
) -> Invite:
    row = connection.execute("SELECT 1 FROM rooms WHERE id = ?", (room_id,)).fetchone()
    if row is None:
        raise ValueError(f"Room not found: {_shorten(str(room_id))}")
    if slot_id is not None:
        slot = connection.execute(
            "SELECT room_id FROM slots WHERE id = ?", (slot_id,)
        ).fetchone()
        if slot is None or slot["room_id"] != room_id:
            raise ValueError(f"Slot not found in this room: {_shorten(str(slot_id))}")

    for attempt in range(1, _MAX_INSERT_ATTEMPTS + 1):
        invite = Invite(
            id="i" + secrets.token_hex(4),  # 32 bits, public, only has to be unique
            token=secrets.token_urlsafe(24),  # 192 bits, 32 characters
            room_id=room_id,
            role=role,
            created_at=time.time(),
            expires_at=expires_at,
            revoked_at=None,
            slot_id=slot_id,
        )
        try:
            connection.execute(
                "INSERT INTO invites (id, token, room_id, role, created_at,"
                " expires_at, revoked_at, slot_id) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    invite.id,
                    invite.token,
                    invite.room_id,
                    invite.role,
                    invite.created_at,
                    invite.expires_at,
                    invite.slot_id,
                ),
            )
        except sqlite3.IntegrityError as error:
            if not _is_unique_violation(error) or attempt == _MAX_INSERT_ATTEMPTS:
                raise
            logger.info("Invite id collision on attempt %d, retrying", attempt)
            continue
        return invite
    raise AssertionError("unreachable")


def _update_revoked_at(connection: sqlite3.Connection, invite_id: str) -> Invite | None:
    connection.execute(
        "UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (time.time(), invite_id),
    )
    row = connection.execute(
        "SELECT * FROM invites WHERE id = ?", (invite_id,)
    ).fetchone()
    return None if row is None else _invite_from_row(row)
