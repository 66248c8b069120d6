"""Attendance: a booking counts as attended when its holder joins within the
slot's admission window.

The page keeps the id and cancel secret of its bookings and sends the one for
the current slot in its `join` message as `"booking": {"id": ..., "secret": ...}`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import protocol
from .storage import Storage

logger = logging.getLogger(__name__)

MAX_REFERENCE_LENGTH = 128


def parse_booking_ref(value: Any) -> tuple[str, str] | None:
    """Return (booking id, secret) from a join's `booking` field, None if absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise protocol.bad_message('Field "booking" must be an object or null.')
    booking_id, secret = value.get("id"), value.get("secret")
    for field, text in (("id", booking_id), ("secret", secret)):
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_REFERENCE_LENGTH:
            raise protocol.bad_message(
                f'Field "booking.{field}" must be a string of 1 to'
                f" {MAX_REFERENCE_LENGTH} characters."
            )
    assert isinstance(booking_id, str) and isinstance(secret, str)
    return booking_id, secret


async def record_attendance(
    storage: Storage,
    room_id: str,
    booking_ref: tuple[str, str],
    early_seconds: float,
    who: str,
) -> None:
    """Mark the booking attended. A stale or wrong reference does not stop the
    join: the page may hold a booking of an earlier slot."""
    booking_id, secret = booking_ref
    booking = await storage.mark_attended(
        booking_id, secret, room_id, time.time(), early_seconds
    )
    if booking is None:
        logger.info("%s: booking %s not marked attended", who, booking_id[:32])
    else:
        logger.info("%s: booking %s attended slot %s", who, booking.id, booking.slot_id)
