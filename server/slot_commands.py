"""`coworking slot create|list|edit|cancel`: a room's schedule from the shell."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from datetime import datetime, timezone
from typing import Any

from .cli import CommandError, _format_time, _load_settings, parse_duration
from .config import Settings
from .schedule import ScheduleError, Slot
from .storage import SqliteStorage, Storage

_PLAN = re.compile(r"([0-9]+[smh]?)/([0-9]+[smh]?)(?:/([0-9]+[smh]?)x([0-9]+))?")
_PLAN_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_start(text: str) -> float:
    """Return the Unix time of `+DURATION` (from now) or of an ISO 8601 time.

    A time without an offset is taken as UTC, so `2026-05-04 09:00` is 09:00 UTC.
    """
    text = text.strip()
    if text.startswith("+"):
        return time.time() + parse_duration(text[1:])
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid start {text!r}: use a UTC time such as 2026-05-04T09:00, a time"
            " with an offset such as 2026-05-04T11:00+02:00, or +DURATION such as"
            " +30m"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_plan(text: str) -> dict[str, int]:
    """Return the plan of FOCUS/BREAK[/LONGxROUNDS], in minutes unless a number
    ends in s or h: 50/10, 25/5/15x4 or 20s/10s."""
    match = _PLAN.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid plan {text!r}: use FOCUS/BREAK in minutes such as 50/10, or"
            " FOCUS/BREAK/LONGxROUNDS such as 25/5/15x4 for a 15-minute break"
            " after every 4th focus"
        )
    focus, break_, long_break, rounds = match.groups()
    return {
        "focus": _plan_seconds(focus),
        "break": _plan_seconds(break_),
        "long_break": _plan_seconds(long_break) if long_break else 0,
        "rounds_before_long": int(rounds) if rounds else 0,
    }


def _plan_seconds(text: str) -> int:
    if text[-1] in _PLAN_UNITS:
        return int(text[:-1]) * _PLAN_UNITS[text[-1]]
    return int(text) * 60


def _length(text: str) -> int:
    return int(parse_duration(text))


def add_slot_commands(
    commands: Any,
    database: argparse.ArgumentParser,
    links: argparse.ArgumentParser,
) -> None:
    slot = commands.add_parser("slot", help="schedule, list, edit and cancel slots")
    slot_commands = slot.add_subparsers(metavar="COMMAND", required=True)

    fields = argparse.ArgumentParser(add_help=False)
    fields.add_argument(
        "--start",
        type=parse_start,
        help="start time: UTC such as 2026-05-04T09:00, with an offset such as"
        " 2026-05-04T11:00+02:00, or from now such as +30m",
    )
    fields.add_argument(
        "--length", type=_length, help="length such as 90m or 2h (10s to 12h)"
    )
    fields.add_argument(
        "--plan",
        type=parse_plan,
        help="focus/break minutes such as 50/10, or 25/5/15x4 for a long break"
        " of 15 after every 4th focus; s or h after a number changes its unit",
    )
    fields.add_argument(
        "--capacity", type=int, help="places to book, up to the room's limit"
    )
    fields.add_argument("--title", help="title shown to guests, up to 80 characters")

    create = slot_commands.add_parser(
        "create", parents=[database, fields], help="schedule a slot in a room"
    )
    create.add_argument("room_id", metavar="ROOM_ID")
    create.set_defaults(command=_run_create)

    listing = slot_commands.add_parser(
        "list",
        parents=[database],
        help="list a room's upcoming slots with bookings and attendance",
    )
    listing.add_argument("room_id", metavar="ROOM_ID")
    listing.add_argument(
        "--all", action="store_true", help="also list past and cancelled slots"
    )
    listing.set_defaults(command=_run_list)

    edit = slot_commands.add_parser(
        "edit", parents=[database, fields], help="change a slot that is not over"
    )
    edit.add_argument("slot_id", metavar="SLOT_ID")
    edit.set_defaults(command=_run_edit)

    cancel = slot_commands.add_parser(
        "cancel",
        parents=[database],
        help="cancel a slot; its bound invite links stop working",
    )
    cancel.add_argument("slot_id", metavar="SLOT_ID")
    cancel.set_defaults(command=_run_cancel)


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    names = {"start": "starts_at", "length": "length", "plan": "plan"}
    names.update(capacity="capacity", title="title")
    return {
        field: getattr(args, flag)
        for flag, field in names.items()
        if getattr(args, flag) is not None
    }


def _run(args: argparse.Namespace, job: Any) -> int:
    settings = _load_settings(args)
    return asyncio.run(_with_storage(settings, job))


async def _with_storage(settings: Settings, job: Any) -> int:
    storage = await SqliteStorage.open(settings.db_path)
    try:
        return await job(storage)
    except (ValueError, ScheduleError) as error:
        raise CommandError(str(error)) from error
    finally:
        await storage.close()


def _run_create(args: argparse.Namespace) -> int:
    changes = _changes(args)
    missing = [
        f"--{name}" for name in ("start", "length") if getattr(args, name) is None
    ]
    if missing:
        raise CommandError(f"slot create needs {' and '.join(missing)}")
    changes.setdefault("plan", {"focus": 50 * 60, "break": 10 * 60})

    async def job(storage: Storage) -> int:
        if await storage.get_room(args.room_id) is None:
            raise CommandError(
                f"Room not found: {args.room_id!r}. List rooms with"
                " `coworking room list`."
            )
        slot = await storage.create_slot(args.room_id, **changes)
        print(f"Created slot {slot.id}: {_describe(slot)}.")
        print(
            f"Bind an invite to it: coworking invite create {args.room_id}"
            f" --slot {slot.id}"
        )
        return 0

    return _run(args, job)


def _run_list(args: argparse.Namespace) -> int:
    async def job(storage: Storage) -> int:
        if await storage.get_room(args.room_id) is None:
            raise CommandError(f"Room not found: {args.room_id!r}.")
        now = time.time()
        slots = await storage.list_slots(
            args.room_id,
            ending_after=None if args.all else now,
            include_cancelled=args.all,
        )
        if not slots:
            print(
                f"No upcoming slots. Schedule one with `coworking slot create"
                f" {args.room_id} --start +1h --length 2h`."
            )
            return 0
        blocks = []
        for slot in slots:
            lines = [f"{slot.id}: {_describe(slot)}"]
            for booking in await storage.list_bookings(slot.id):
                state = booking.attendance(slot, now).replace("_", "-")
                lines.append(f"  {booking.id} {booking.name!r}: {state}")
            blocks.append("\n".join(lines))
        print("\n".join(blocks))
        return 0

    return _run(args, job)


def _run_edit(args: argparse.Namespace) -> int:
    changes = _changes(args)
    if not changes:
        raise CommandError(
            "slot edit needs at least one of --start, --length, --plan, --capacity"
            " or --title"
        )

    async def job(storage: Storage) -> int:
        slot = await storage.update_slot(args.slot_id, changes)
        print(f"Edited slot {slot.id}: {_describe(slot)}.")
        return 0

    return _run(args, job)


def _run_cancel(args: argparse.Namespace) -> int:
    async def job(storage: Storage) -> int:
        slot = await storage.cancel_slot(args.slot_id)
        if slot is None:
            raise CommandError(f"Slot not found: {args.slot_id!r}.")
        print(f"Cancelled slot {slot.id}: {_describe(slot)}.")
        return 0

    return _run(args, job)


def _describe(slot: Slot) -> str:
    minutes = slot.length // 60 if slot.length % 60 == 0 else None
    length = f"{minutes} min" if minutes is not None else f"{slot.length} s"
    text = f"{_format_time(slot.starts_at)}, {length}, plan {slot.plan.describe()}"
    text += f", {slot.booked} of {slot.capacity} booked"
    if slot.title:
        text += f", {slot.title!r}"
    if slot.cancelled_at is not None:
        text += ", cancelled"
    return text
