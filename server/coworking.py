"""A room's coworking session: the shared clock and the coffee groups.

:class:`CoworkingSession` is attached to each :class:`server.rooms.Room`. It
handles the ``host`` and ``coffee`` data-channel messages, sends the clock
and coffee state to each participant when its data channel opens, and moves
people into and out of coffee groups as breaks start and end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import schedule
from .coffee import CoffeeBreaks
from .limits import TokenBucket
from .moderation import handle_host_message, host_action
from .protocol import ProtocolError, bad_message
from .session import (
    BREAK_PHASES,
    MIN_PHASE_SECONDS,
    Clock,
    ClockError,
    Plan,
)

if TYPE_CHECKING:
    from .rooms import Participant, Room

logger = logging.getLogger(__name__)

# Host and coffee messages a participant may send per second, and in a burst.
CONTROL_RATE = 2.0
CONTROL_BURST = 10



class CoworkingSession:
    def __init__(self, room: Room, plan: Plan) -> None:
        self.room = room
        self.clock = Clock(plan, self._on_clock, room.id)
        self.coffee = CoffeeBreaks(room.id)
        # Called with every clock message after the room has it, e.g. to set
        # statuses from the phase.
        self.clock_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._limits: dict[str, TokenBucket] = {}
        self._previous_phase = self.clock.phase

    def group_of(self, participant_id: str) -> str | None:
        return self.coffee.group_of(participant_id)

    def on_channel_open(self, participant: Participant) -> None:
        """Send the clock and coffee state, so late joiners catch up."""
        if participant.peer is None:
            return
        participant.peer.send(json.dumps(self.clock.message()))
        participant.peer.send(json.dumps(self.coffee.message_for(participant.id)))

    def on_leave(self, participant_id: str) -> None:
        self._limits.pop(participant_id, None)
        if self.coffee.remove(participant_id):
            self._apply_groups()
        elif participant_id in self.coffee.opted_in:
            self._send_coffee()

    def close(self) -> None:
        self.clock.close()

    def follow_slot(self, slot_plan: schedule.Plan) -> None:
        """Take the plan of the booked slot now open, unless a session runs."""
        if not self.clock.running:
            self.clock.set_plan(clock_plan(slot_plan))

    def handle_host(self, participant: Participant, message: dict[str, Any]) -> None:
        self._check_rate(participant)
        handle_host_message(self.room, participant, message)

    def handle_coffee(self, participant: Participant, message: dict[str, Any]) -> None:
        self._check_rate(participant)
        join = message.get("join")
        if not isinstance(join, bool):
            raise bad_message('Field "join" of a coffee message must be true or false.')
        logger.debug("< coffee %s from %s", join, participant.id)
        if self.coffee.set_opt_in(participant.id, join):
            self._apply_groups()
        else:
            self._send_coffee()

    def _check_rate(self, participant: Participant) -> None:
        bucket = self._limits.get(participant.id)
        if bucket is None:
            bucket = TokenBucket(CONTROL_RATE, CONTROL_BURST)
            self._limits[participant.id] = bucket
        if not bucket.take():
            raise ProtocolError(
                "rate_limited",
                "Too many host or coffee messages; wait a second and try again.",
            )

    def _on_clock(self, message: dict[str, Any]) -> None:
        previous, phase = self._previous_phase, message["phase"]
        self._previous_phase = phase
        self.room.broadcast(message)
        if phase == "ended" and previous != "ended":
            self.room.clear_chat()
            self.room.moderation.lift_bars()
        if phase in BREAK_PHASES and previous not in BREAK_PHASES:
            present = [
                p.id for p in self.room.participants.values() if p.peer is not None
            ]
            self.coffee.form(present)
            self._apply_groups()
        elif phase not in BREAK_PHASES and self.coffee.dissolve():
            self._apply_groups()
        for listener in self.clock_listeners:
            listener(message)

    def _apply_groups(self) -> None:
        self.room.router.set_groups(self.coffee.assignment())
        self._send_coffee()

    def _send_coffee(self) -> None:
        for participant in self.room.participants.values():
            if participant.peer is not None:
                text = json.dumps(self.coffee.message_for(participant.id))
                participant.peer.send(text)


def clock_plan(slot_plan: schedule.Plan) -> Plan:
    """Return the clock's plan for a slot's plan; zero rounds means no long
    break in both."""
    short = max(slot_plan.break_, MIN_PHASE_SECONDS)
    rounds = slot_plan.rounds_before_long
    long = max(slot_plan.long_break, MIN_PHASE_SECONDS) if rounds else short
    return Plan(
        focus=slot_plan.focus, short_break=short, rounds=rounds, long_break=long
    )


def _clock_action(name: str, description: str) -> None:
    @host_action(name, description)
    def run(room: Room, host: Participant, message: dict[str, Any]) -> None:
        try:
            getattr(room.session.clock, name)()
        except ClockError as exc:
            raise ProtocolError("invalid_state", str(exc)) from None


_clock_action("start", "start the session")
_clock_action("pause", "pause the session")
_clock_action("resume", "resume the session")
_clock_action("skip", "skip to the next phase")
_clock_action("end", "end the session")
