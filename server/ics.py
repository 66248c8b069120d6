"""iCalendar (RFC 5545) files for booked slots."""

from __future__ import annotations

from datetime import datetime, timezone

from .schedule import Slot

PRODUCT_ID = "-//Coworking//Slot booking//EN"
MAX_LINE_OCTETS = 75  # RFC 5545 section 3.1, without the CRLF


def escape_text(text: str) -> str:
    """Escape a TEXT value (RFC 5545 section 3.3.11): backslash, semicolon,
    comma and line breaks."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "\\n")


def format_datetime(timestamp: float) -> str:
    """Return a UTC DATE-TIME value such as 20260504T090000Z."""
    moment = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def fold(line: str) -> str:
    """Split a content line into lines of at most 75 octets, each continuation
    starting with a space, without cutting a UTF-8 character in two."""
    parts = []
    current = ""
    limit = MAX_LINE_OCTETS
    for character in line:
        if len((current + character).encode()) > limit:
            parts.append(current)
            current = ""
            limit = MAX_LINE_OCTETS - 1  # the leading space takes one octet
        current += character
    parts.append(current)
    return "\r\n ".join(parts)


def slot_event(
    slot: Slot,
    room_name: str,
    uid_domain: str,
    now: float,
    url: str | None = None,
) -> str:
    """Return a VCALENDAR with one VEVENT for the slot, lines ending in CRLF.

    The UID stays the same for a slot, and SEQUENCE grows with each edit, so a
    calendar that imports the file again updates the event it has.
    """
    summary = slot.title or room_name
    description = f"Coworking session in {room_name}. Focus/break plan:"
    description += f" {slot.plan.describe()} (minutes)."
    if url:
        description += f"\nJoin: {url}"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODUCT_ID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{slot.id}@{uid_domain}",
        f"DTSTAMP:{format_datetime(now)}",
        f"DTSTART:{format_datetime(slot.starts_at)}",
        f"DTEND:{format_datetime(slot.ends_at)}",
        f"SEQUENCE:{slot.sequence}",
        f"SUMMARY:{escape_text(summary)}",
        f"DESCRIPTION:{escape_text(description)}",
        f"LOCATION:{escape_text(room_name)}",
        "STATUS:" + ("CANCELLED" if slot.cancelled_at is not None else "CONFIRMED"),
    ]
    if url:
        lines.append(f"URL:{url}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(fold(line) + "\r\n" for line in lines)
