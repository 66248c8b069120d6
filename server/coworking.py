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

from . import rooms
from .coffee import CoffeeBreaks
from .host import handle_host
from .protocol import ProtocolError, bad_message
from .session import BREAK_PHASES, Clock, Plan

if TYPE_CHECKING:
    from .rooms import Participant, Room

logger = logging.getLogger(__name__)

# Characters a host or coffee message may have; both are a few fields.
MAX_CONTROL_MESSAGE = 1024
# Host and coffee messages a participant may send per second, and in a burst.
CONTROL_RATE = 2.0
CONTROL_BURST = 10

DataHandler = Callable[["Participant", dict[str, Any], int], None]


class CoworkingSession:
    def __init__(self, room: Room, plan: Plan) -> None:
        self.room = room
        self.clock = Clock(plan, self._on_clock, room.id)
        self.coffee = CoffeeBreaks(room.id)
        # Called with every clock message after the room has it, e.g. to set
        # statuses from the phase.
        self.clock_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._limits: dict[str, rooms.TokenBucket] = {}
        self._previous_phase = self.clock.phase

    @property
    def handlers(self) -> dict[str, DataHandler]:
        """Data-channel message type -> handler, for the room to dispatch."""
        return {"host": self.handle_host, "coffee": self.handle_coffee}

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

    def handle_host(
        self, participant: Participant, message: dict[str, Any], size: int
    ) -> None:
        self._check_control(participant, size)
        handle_host(self.room, participant, message)

    def handle_coffee(
        self, participant: Participant, message: dict[str, Any], size: int
    ) -> None:
        self._check_control(participant, size)
        join = message.get("join")
        if not isinstance(join, bool):
            raise bad_message('Field "join" of a coffee message must be true or false.')
        logger.debug("< coffee %s from %s", join, participant.id)
        if self.coffee.set_opt_in(participant.id, join):
            self._apply_groups()
        else:
            self._send_coffee()

    def _check_control(self, participant: Participant, size: int) -> None:
        if size > MAX_CONTROL_MESSAGE:
            raise bad_message(
                f"A host or coffee message can have at most {MAX_CONTROL_MESSAGE} "
                "characters."
            )
        bucket = self._limits.get(participant.id)
        if bucket is None:
            bucket = rooms.TokenBucket(CONTROL_RATE, CONTROL_BURST)
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
