"""The .ics file of a slot, checked against RFC 5545's rules."""

from __future__ import annotations

import re

from server.ics import escape_text, fold, slot_event
from server.schedule import Plan, Slot

STARTS_AT = 1777885200.0  # 2026-05-04T09:00:00Z


def make_slot(title: str = "", cancelled: bool = False) -> Slot:
    return Slot(
        id="s0123456789ab",
        room_id="RoomRoomRoomRoom",
        starts_at=STARTS_AT,
        length=5400,
        plan=Plan(1500, 300, 900, 4),
        capacity=8,
        title=title,
        created_at=STARTS_AT - 86400,
        cancelled_at=STARTS_AT - 3600 if cancelled else None,
        sequence=2,
    )


def unfold(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")


def test_event_fields() -> None:
    text = slot_event(
        make_slot("Deep work"),
        "Writers' corner",
        "cowork.example.org",
        now=STARTS_AT - 7200,
        url="https://cowork.example.org/r/RoomRoomRoomRoom#tok",
    )
    lines = unfold(text)
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert lines[0] == "BEGIN:VCALENDAR"
    assert lines[-2] == "END:VCALENDAR"
    assert lines[-1] == ""
    assert "VERSION:2.0" in lines
    assert any(line.startswith("PRODID:") for line in lines)
    assert "UID:s0123456789ab@cowork.example.org" in lines
    assert "DTSTAMP:20260504T070000Z" in lines
    assert "DTSTART:20260504T090000Z" in lines
    assert "DTEND:20260504T103000Z" in lines
    assert "SEQUENCE:2" in lines
    assert "SUMMARY:Deep work" in lines
    assert "LOCATION:Writers' corner" in lines
    assert "STATUS:CONFIRMED" in lines
    assert "URL:https://cowork.example.org/r/RoomRoomRoomRoom#tok" in lines
    assert lines.index("BEGIN:VEVENT") < lines.index("END:VEVENT")


def test_cancelled_slot_status() -> None:
    lines = unfold(slot_event(make_slot(cancelled=True), "Room", "h", STARTS_AT))
    assert "STATUS:CANCELLED" in lines
    assert "SUMMARY:Room" in lines
    assert not any(line.startswith("URL:") for line in lines)


def test_text_escaped() -> None:
    assert escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    text = slot_event(make_slot("Plan; tea, then\nwork \\ rest"), "R", "h", STARTS_AT)
    assert "SUMMARY:Plan\\; tea\\, then\\nwork \\\\ rest" in unfold(text)


def test_long_lines_folded_at_75_octets() -> None:
    title = "Schreibwerkstatt für Übersetzerinnen und Übersetzer 😀 " * 2
    text = slot_event(make_slot(title.strip()[:80]), "R" * 80, "h", STARTS_AT)
    for line in text.split("\r\n"):
        assert len(line.encode()) <= 75, line
    assert f"SUMMARY:{escape_text(title.strip()[:80])}" in unfold(text)


def test_fold_keeps_characters_whole() -> None:
    line = "DESCRIPTION:" + "é" * 100
    folded = fold(line)
    parts = folded.split("\r\n")
    assert all(re.fullmatch(r"[^\r\n]*", p) for p in parts)
    assert all(len(p.encode()) <= 75 for p in parts)
    assert all(p.startswith(" ") for p in parts[1:])
    assert "".join(p[1:] if i else p for i, p in enumerate(parts)) == line
