"""Time slots of a room, their focus/break plans, bookings and admission windows.

All times are Unix times in seconds (UTC) and all lengths are seconds. This module
contains the data types and the input checks; `schedule_store.py` stores them.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

MIN_SLOT_LENGTH = 10  # seconds; short slots exist for tests and demonstrations
MAX_SLOT_LENGTH = 12 * 3600
MAX_SLOT_LEAD = 366 * 86400  # how far ahead a slot may start
MAX_FOCUS = 4 * 3600
MAX_BREAK = 2 * 3600
MAX_ROUNDS_BEFORE_LONG = 20
MAX_TITLE_LENGTH = 80
MAX_BOOKING_NAME_LENGTH = 64
DEFAULT_EARLY_SECONDS = 600

# Codes of SlotWindowError, sent to clients in the error object.
SLOT_NOT_OPEN = "slot_not_open"
SLOT_ENDED = "slot_ended"
SLOT_CANCELLED = "slot_cancelled"

_FORBIDDEN_TEXT_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class ScheduleError(Exception):
    """A request that conflicts with the stored schedule, with a client error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SlotWindowError(ScheduleError):
    """An invite bound to a slot used outside the slot's admission window."""

    def __init__(self, code: str, message: str, slot: Slot, opens_at: float) -> None:
        super().__init__(code, message)
        self.slot = slot
        self.opens_at = opens_at


@dataclass(frozen=True)
class Plan:
    """A focus/break cycle: `focus` then `break_`, and `long_break` in place of
    every `rounds_before_long`-th break. Zero rounds means no long break."""

    focus: int  # seconds
    break_: int  # seconds
    long_break: int = 0  # seconds
    rounds_before_long: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "focus": self.focus,
            "break": self.break_,
            "long_break": self.long_break,
            "rounds_before_long": self.rounds_before_long,
        }

    def describe(self) -> str:
        """Return the plan as people write it, such as "50/10" or "25/5, 15 after 4"."""
        text = f"{_minutes(self.focus)}/{_minutes(self.break_)}"
        if self.rounds_before_long:
            text += f", {_minutes(self.long_break)} after {self.rounds_before_long}"
        return text


DEFAULT_PLAN = Plan(focus=50 * 60, break_=10 * 60)


@dataclass(frozen=True)
class Slot:
    """A scheduled coworking session in one room."""

    id: str
    room_id: str
    starts_at: float
    length: int  # seconds
    plan: Plan
    capacity: int  # maximum number of active bookings
    title: str  # may be empty
    created_at: float
    cancelled_at: float | None
    sequence: int  # raised on every edit, as iCalendar's SEQUENCE
    booked: int = 0  # active bookings when the slot was read

    @property
    def ends_at(self) -> float:
        return self.starts_at + self.length

    def opens_at(self, early_seconds: float) -> float:
        return self.starts_at - early_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "starts_at": format_utc(self.starts_at),
            "ends_at": format_utc(self.ends_at),
            "length": self.length,
            "plan": self.plan.as_dict(),
            "capacity": self.capacity,
            "booked": self.booked,
            "cancelled": self.cancelled_at is not None,
        }


@dataclass(frozen=True)
class Booking:
    """A seat in a slot. Its cancel secret is returned once, at creation."""

    id: str
    slot_id: str
    name: str
    created_at: float
    cancelled_at: float | None
    attended_at: float | None

    def as_dict(self, slot: Slot | None = None, now: float = 0.0) -> dict[str, Any]:
        """Describe the booking, and with its slot also its `attendance`."""
        result: dict[str, Any] = {
            "id": self.id,
            "slot_id": self.slot_id,
            "name": self.name,
            "created_at": format_utc(self.created_at),
            "cancelled": self.cancelled_at is not None,
        }
        if slot is not None:
            result["attendance"] = self.attendance(slot, now)
        return result

    def attendance(self, slot: Slot, now: float) -> str:
        """Return "attended", "no_show" (the slot ended without the holder),
        "cancelled" or "pending"."""
        if self.attended_at is not None:
            return "attended"
        if self.cancelled_at is not None:
            return "cancelled"
        if now >= slot.ends_at:
            return "no_show"
        return "pending"


def format_utc(timestamp: float) -> str:
    """Return a Unix time as ISO 8601 in UTC with a Z, such as 2026-05-04T09:00:00Z."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: object, field: str = "starts_at") -> float:
    """Return the Unix time of an ISO 8601 date and time with a UTC offset.

    A time without an offset is rejected, because the server cannot know which
    time zone the writer meant.
    """
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError(
            f"{field} must be an ISO 8601 date and time such as"
            f" 2026-05-04T09:00:00Z, got {_shorten(text)}"
        )
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{field} is not a valid ISO 8601 date and time: {_shorten(text)}."
            " Use a form such as 2026-05-04T09:00:00Z."
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"{field} needs a time zone, such as Z for UTC or +02:00, got"
            f" {_shorten(text)}"
        )
    return moment.timestamp()


def validate_start(starts_at: object, now: float) -> float:
    """Return the start time rounded up to a whole second, or raise ValueError
    for a past or far-off time.

    Whole seconds keep the ISO 8601 times in the API, which have no fraction,
    equal to the stored ones.
    """
    if (
        not isinstance(starts_at, (int, float))
        or isinstance(starts_at, bool)
        or not math.isfinite(starts_at)
    ):
        raise ValueError(f"Start must be a Unix time in seconds, got {starts_at!r}")
    if starts_at < now:
        raise ValueError(
            f"Start {format_utc(starts_at)} is in the past; choose a later time."
        )
    if starts_at > now + MAX_SLOT_LEAD:
        raise ValueError(
            f"Start {format_utc(starts_at)} is more than a year ahead; choose an"
            " earlier time."
        )
    return float(math.ceil(starts_at))


def validate_length(length: object) -> int:
    return _bounded_int(
        length, "Length", MIN_SLOT_LENGTH, MAX_SLOT_LENGTH, unit="seconds"
    )


def validate_capacity(capacity: object, room_limit: int) -> int:
    """Return the capacity; it may not exceed the room's participant limit."""
    return _bounded_int(capacity, "Capacity", 1, room_limit, unit="people")


def validate_plan(plan: object, length: int) -> Plan:
    """Return the plan from a Plan or a dict with the keys of Plan.as_dict()."""
    if isinstance(plan, Plan):
        plan = plan.as_dict()
    if not isinstance(plan, dict):
        raise ValueError(
            "Plan must be an object with focus, break, long_break and"
            f" rounds_before_long in seconds, got {_shorten(plan)}"
        )
    unknown = sorted(set(plan) - {"focus", "break", "long_break", "rounds_before_long"})
    if unknown:
        raise ValueError(f"Plan has unknown fields: {', '.join(unknown)}")

    focus = _bounded_int(plan.get("focus"), "Plan focus", 1, MAX_FOCUS, "seconds")
    break_ = _bounded_int(plan.get("break", 0), "Plan break", 0, MAX_BREAK, "seconds")
    long_break = _bounded_int(
        plan.get("long_break", 0), "Plan long_break", 0, MAX_BREAK, "seconds"
    )
    rounds = _bounded_int(
        plan.get("rounds_before_long", 0),
        "Plan rounds_before_long",
        0,
        MAX_ROUNDS_BEFORE_LONG,
        "rounds",
    )

    if rounds and not long_break:
        raise ValueError(
            "Plan long_break must be more than 0 when rounds_before_long is set"
        )
    if focus > length:
        raise ValueError(
            f"Plan focus ({focus} s) is longer than the slot ({length} s);"
            " shorten the focus phase or lengthen the slot."
        )
    return Plan(focus, break_, long_break if rounds else 0, rounds)


def clean_text(value: object, field: str, max_length: int, required: bool) -> str:
    """Return user text with whitespace runs collapsed, or raise ValueError.

    Control, format and separator characters are rejected, not dropped, so the
    writer sees what was wrong. The zero-width joiner is allowed because emoji
    sequences need it.
    """
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {_shorten(value)}")
    for character in value:
        if unicodedata.category(character) in _FORBIDDEN_TEXT_CATEGORIES:
            if character in "\t\n\r\u200d":
                continue
            raise ValueError(f"{field} must not contain control characters")
    text = " ".join(value.split())
    if required and not text:
        raise ValueError(f"{field} is empty; enter at least one character.")
    if len(text) > max_length:
        raise ValueError(
            f"{field} can have at most {max_length} characters, got {len(text)}"
        )
    return text


def validate_title(title: object) -> str:
    return clean_text(title, "Title", MAX_TITLE_LENGTH, required=False)


def validate_booking_name(name: object) -> str:
    return clean_text(name, "Name", MAX_BOOKING_NAME_LENGTH, required=True)


def check_window(slot: Slot, now: float, early_seconds: float) -> None:
    """Raise SlotWindowError unless an invite bound to `slot` admits at `now`.

    The window runs from `early_seconds` before the start to the end.
    """
    opens_at = slot.opens_at(early_seconds)
    if slot.cancelled_at is not None:
        raise SlotWindowError(
            SLOT_CANCELLED,
            "This session was cancelled by the host.",
            slot,
            opens_at,
        )
    if now < opens_at:
        raise SlotWindowError(
            SLOT_NOT_OPEN,
            f"This session opens at {format_utc(opens_at)}, before its start at"
            f" {format_utc(slot.starts_at)}.",
            slot,
            opens_at,
        )
    if now >= slot.ends_at:
        raise SlotWindowError(SLOT_ENDED, "This session is over.", slot, opens_at)


def with_booked(slot: Slot, booked: int) -> Slot:
    return replace(slot, booked=booked)


def _bounded_int(
    value: object, field: str, minimum: int, maximum: int, unit: str
) -> int:
    # bool is a subclass of int, but True is not a count of seconds.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not minimum <= value <= maximum
    ):
        raise ValueError(
            f"{field} must be a whole number from {minimum} to {maximum} {unit},"
            f" got {_shorten(value)}"
        )
    return value


def _minutes(seconds: int) -> str:
    if seconds % 60 == 0:
        return str(seconds // 60)
    return f"{seconds}s"


def _shorten(value: object, max_length: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= max_length else text[:max_length] + "..."
