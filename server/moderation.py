"""Host actions sent on the data channel, and who may join a room.

A host action is ``{"type": "host", "action": NAME, ...}``. The server looks
NAME up in :data:`HOST_ACTIONS` and runs it only for a participant who joined
with a host invite. Hiding buttons on the page is no check. Register a new
action with :func:`host_action`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import protocol

if TYPE_CHECKING:
    from .rooms import Participant, Room

logger = logging.getLogger(__name__)

ROLE_HOST = "host"
CLOSE_POLICY_VIOLATION = 1008
REMOVED = "removed"
REMOVED_MESSAGE = "The host removed you from this room."
ROOM_LOCKED = "room_locked"
ROOM_LOCKED_MESSAGE = (
    "The host has locked this room, so nobody new can join. "
    "Ask the host to unlock it, then try again."
)

HostAction = Callable[["Room", "Participant", dict[str, Any]], None]
HOST_ACTIONS: dict[str, HostAction] = {}
# Action name -> what it does, for the message that refuses a guest.
ACTION_DESCRIPTIONS: dict[str, str] = {}

# Removals still closing a peer connection, referenced until they finish.
_removals: set[asyncio.Task[None]] = set()


class JoinRejected(Exception):
    """A join the room rejects. ``code`` and the text are sent to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RoomModeration:
    """Whether a room is locked, and who was removed from it.

    A removed guest is barred by the random key their browser sends with
    join and by their display name, compared without case. Guests share one
    invite link, so nothing stronger names a person: a guest who clears the
    site's storage or uses another browser, and also picks another name,
    gets in again. Someone else who joins with a barred name is refused.
    The bars last until the room closes, when its last participant leaves,
    or until :meth:`lift_bars`.
    """

    def __init__(self) -> None:
        self.locked = False
        self.barred_keys: set[str] = set()
        self.barred_names: set[str] = set()

    def check_join(self, participant: Participant) -> None:
        """Raise JoinRejected when the room does not admit this participant."""
        if participant.role == ROLE_HOST:
            return
        if self.is_barred(participant):
            raise JoinRejected(REMOVED, REMOVED_MESSAGE)
        if self.locked:
            raise JoinRejected(ROOM_LOCKED, ROOM_LOCKED_MESSAGE)

    def is_barred(self, participant: Participant) -> bool:
        key = participant.client_key
        return (
            key is not None and key in self.barred_keys
        ) or participant.name.casefold() in self.barred_names

    def bar(self, participant: Participant) -> None:
        if participant.client_key is not None:
            self.barred_keys.add(participant.client_key)
        self.barred_names.add(participant.name.casefold())

    def lift_bars(self) -> None:
        self.barred_keys.clear()
        self.barred_names.clear()


def host_action(name: str, description: str) -> Callable[[HostAction], HostAction]:
    """Register a function as the handler of host action ``name``."""

    def register(handler: HostAction) -> HostAction:
        HOST_ACTIONS[name] = handler
        ACTION_DESCRIPTIONS[name] = description
        return handler

    return register


def handle_host_message(
    room: Room, sender: Participant, message: dict[str, Any]
) -> None:
    """Check a host message and run its action, or raise ProtocolError."""
    action = message.get("action")
    if not isinstance(action, str) or action not in HOST_ACTIONS:
        names = ", ".join(f'"{name}"' for name in sorted(HOST_ACTIONS))
        text = f'Field "action" must be one of {names}.'
        if isinstance(action, str):
            text = f"Unknown host action {action[:32]!r}. {text}"
        raise protocol.bad_message(text)
    if sender.role != ROLE_HOST:
        # The room logs this refusal, counted with the sender's bad messages.
        raise protocol.ProtocolError(
            "forbidden",
            f"Only a host can {ACTION_DESCRIPTIONS[action]}; "
            "you joined with a guest invite.",
        )
    logger.info("host %s in room %s: %s", sender.id, room.id, action)
    HOST_ACTIONS[action](room, sender, message)


def target_of(room: Room, message: dict[str, Any]) -> Participant:
    """Return the participant that field "target" names, or raise."""
    target_id = message.get("target")
    if not isinstance(target_id, str):
        raise protocol.bad_message('Field "target" must be a participant id.')
    target = room.participants.get(target_id)
    if target is None:
        raise protocol.ProtocolError(
            "not_found", f"Nobody with id {target_id[:32]!r} is in this room."
        )
    return target


@host_action("mute", "mute someone")
def mute(room: Room, host: Participant, message: dict[str, Any]) -> None:
    """Mark the target's microphone off and notify the room.

    Only the target can unmute, with their own next state.
    """
    target = target_of(room, message)
    if target.state.get("mic") == "on":
        # The state keeps the target's version, so the target's next state
        # message, which turns the microphone off for real, still applies.
        target.state["mic"] = "off"
    # Dropping the target's audio also silences a page that ignores "muted",
    # such as one loaded before this server version.
    set_audio_paused(target, True)
    room.broadcast({"type": "muted", "id": target.id, "by": host.id})


def set_audio_paused(participant: Participant, paused: bool) -> None:
    """Drop or forward the participant's audio in the SFU.

    NOTE: a state with the microphone on that the participant sent before the
    mute reached them ends the pause too. Their page turns the microphone off
    when the mute arrives, so the audio is silent then anyway.
    """
    participant.host_muted = paused
    forwarder = participant.peer.forwarders.get("audio") if participant.peer else None
    if forwarder is not None:
        forwarder.paused = paused


@host_action("remove", "remove someone")
def remove(room: Room, host: Participant, message: dict[str, Any]) -> None:
    """Close the target's connection and bar them from the room."""
    target = target_of(room, message)
    if target.role == ROLE_HOST:
        raise protocol.ProtocolError(
            "not_allowed", "A host cannot remove another host."
        )
    room.moderation.bar(target)
    target.signalling.send(
        {"type": "error", "code": REMOVED, "message": REMOVED_MESSAGE}
    )
    target.signalling.disconnect(REMOVED, CLOSE_POLICY_VIOLATION)
    task = asyncio.create_task(room.remove(target.id, REMOVED))
    _removals.add(task)
    task.add_done_callback(_removals.discard)


@host_action("lock", "lock the room")
def lock(room: Room, host: Participant, message: dict[str, Any]) -> None:
    set_locked(room, host, True)


@host_action("unlock", "unlock the room")
def unlock(room: Room, host: Participant, message: dict[str, Any]) -> None:
    set_locked(room, host, False)


def set_locked(room: Room, host: Participant, locked: bool) -> None:
    room.moderation.locked = locked
    room.broadcast({"type": "lock", "locked": locked, "by": host.id})
