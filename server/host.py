"""Host actions sent on the data channel: ``{"type": "host", "action": ...}``.

Each action is one entry of :data:`HOST_ACTIONS`. The server checks the
sender's role here, before any action runs, so a guest's page cannot do a
host's action whatever it sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .protocol import ProtocolError, bad_message
from .session import ClockError

if TYPE_CHECKING:
    from .rooms import Participant, Room

logger = logging.getLogger(__name__)

MAX_ACTION_LENGTH = 32

HostAction = Callable[["Room", "Participant", dict[str, Any]], None]


def _clock_action(name: str) -> HostAction:
    def run(room: Room, participant: Participant, message: dict[str, Any]) -> None:
        getattr(room.session.clock, name)()

    return run


# Action name -> handler. Other host actions (mute, remove, lock) are added
# as further entries.
HOST_ACTIONS: dict[str, HostAction] = {
    "start": _clock_action("start"),
    "pause": _clock_action("pause"),
    "resume": _clock_action("resume"),
    "skip": _clock_action("skip"),
    "end": _clock_action("end"),
}

# Description of each action, for the message that rejects a guest.
ACTION_DESCRIPTIONS = {
    "start": "start the session",
    "pause": "pause the session",
    "resume": "resume the session",
    "skip": "skip to the next phase",
    "end": "end the session",
}


def handle_host(room: Room, participant: Participant, message: dict[str, Any]) -> None:
    """Check and run one host action; raise ProtocolError to reject it."""
    action = message.get("action")
    if not isinstance(action, str) or not action:
        raise bad_message('A host message needs a string field "action".')
    handler = HOST_ACTIONS.get(action)
    if handler is None:
        known = ", ".join(sorted(HOST_ACTIONS))
        raise bad_message(
            f"Unknown host action {action[:MAX_ACTION_LENGTH]!r}; known: {known}."
        )
    if participant.role != "host":
        description = ACTION_DESCRIPTIONS.get(action, f"use the action {action!r}")
        logger.warning(
            "x guest %s in room %s tried host action %s",
            participant.id,
            room.id,
            action,
        )
        raise ProtocolError(
            "forbidden",
            f"Only a host can {description}; you joined with a guest invite.",
        )
    logger.info("host %s in room %s: %s", participant.id, room.id, action)
    try:
        handler(room, participant, message)
    except ClockError as exc:
        raise ProtocolError("invalid_state", str(exc)) from None
