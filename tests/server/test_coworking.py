"""A room's session hooks without media: host checks, timers and coffee state."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiortc import RTCConfiguration

from server import schedule
from server.coworking import clock_plan
from server.protocol import ProtocolError
from server.rooms import Participant, Room
from server.session import Plan
from server.storage import Room as RoomInfo


class Signalling:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def disconnect(self, reason: str) -> None:
        pass


def make_room() -> Room:
    info = RoomInfo("room1", "Test", 10, time.time())
    return Room(info, RTCConfiguration(), lambda room: None, Plan.parse("1/1/2/1"))


def join(room: Room, role: str) -> Participant:
    participant = Participant(role.title(), role, Signalling())
    room.add(participant)
    return participant


async def test_last_leave_cancels_clock_timer() -> None:
    room = make_room()
    host = join(room, "host")
    room.session.handle_host(host, {"type": "host", "action": "start"})
    assert room.session.clock.phase == "focus"
    assert room.session.clock._timer is not None
    await room.remove(host.id, "leave")
    assert room.session.clock._timer is None


@pytest.mark.parametrize("action", ["start", "pause", "resume", "skip", "end"])
async def test_guest_host_action_forbidden(action: str) -> None:
    room = make_room()
    guest = join(room, "guest")
    with pytest.raises(ProtocolError) as raised:
        room.session.handle_host(guest, {"type": "host", "action": action})
    assert raised.value.code == "forbidden"
    assert room.session.clock.phase == "idle"


async def test_unknown_action_rejected_for_host() -> None:
    room = make_room()
    host = join(room, "host")
    with pytest.raises(ProtocolError) as raised:
        room.session.handle_host(host, {"type": "host", "action": "explode"})
    assert raised.value.code == "bad_message"
    assert "explode" in raised.value.message


async def test_invalid_state_action() -> None:
    room = make_room()
    host = join(room, "host")
    with pytest.raises(ProtocolError) as raised:
        room.session.handle_host(host, {"type": "host", "action": "resume"})
    assert raised.value.code == "invalid_state"
    room.session.close()


async def test_group_of_follows_breaks() -> None:
    room = make_room()
    host = join(room, "host")
    guest = join(room, "guest")
    for participant in (host, guest):
        room.session.handle_coffee(participant, {"type": "coffee", "join": True})
    # Coffee groups take only participants with a peer connection; these
    # have none, so the break leaves both in the main room.
    room.session.handle_host(host, {"type": "host", "action": "start"})
    room.session.handle_host(host, {"type": "host", "action": "skip"})
    assert room.session.clock.phase == "break"
    assert room.group_of(host.id) is None
    assert room.session.coffee.opted_in == {host.id, guest.id}
    await room.remove(guest.id, "leave")
    assert room.session.coffee.opted_in == {host.id}
    await room.close()
    assert room.session.clock._timer is None


@pytest.mark.parametrize(
    ("slot_plan", "expected"),
    [
        (
            schedule.Plan(focus=1500, break_=300, long_break=900, rounds_before_long=4),
            Plan(focus=1500, short_break=300, rounds=4, long_break=900),
        ),
        (
            schedule.Plan(focus=3000, break_=600),
            Plan(focus=3000, short_break=600, rounds=0, long_break=600),
        ),
    ],
)
def test_clock_plan_of_slot(slot_plan: schedule.Plan, expected: Plan) -> None:
    assert clock_plan(slot_plan) == expected


async def test_slot_plan_waits_for_a_running_session() -> None:
    room = make_room()
    host = join(room, "host")
    slot_plan = schedule.Plan(focus=1500, break_=300)
    room.session.follow_slot(slot_plan)
    assert room.session.clock.plan.focus == 1500

    room.session.handle_host(host, {"type": "host", "action": "start"})
    room.session.follow_slot(schedule.Plan(focus=600, break_=60))
    assert room.session.clock.plan.focus == 1500
    await room.remove(host.id, "leave")


async def test_session_end_drops_chat_and_lifts_removals() -> None:
    room = make_room()
    host = join(room, "host")
    guest = join(room, "guest")
    room.chat.add(guest.id, guest.name, "hello")
    room.moderation.bar(guest)
    room.session.handle_host(host, {"type": "host", "action": "start"})
    room.session.handle_host(host, {"type": "host", "action": "end"})
    assert room.chat.history()["messages"] == []
    assert not room.moderation.is_barred(guest)
    await room.remove(host.id, "leave")
