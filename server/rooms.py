"""Rooms in this process: who is in them, their state, and their media router.

The rest of the server reaches rooms only through :class:`RoomRegistry`, so
that rooms can later live in worker processes or on other machines without
changing the signalling code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import RTCConfiguration

from sfu.peer import Peer
from sfu.router import Router

from . import chat, moderation, protocol
from .coworking import CoworkingSession
from .limits import TokenBucket
from .session import Plan
from .storage import Room as RoomInfo

logger = logging.getLogger(__name__)

# Receive slots a participant's offer has beyond the others present when it
# joins, and the step by which the server requests more.
SLOT_STEP = 4

# Seconds a participant's media connection may take to come up after its first
# answer before the server closes its WebSocket. ICE through a TURN relay
# usually connects within a few seconds; without a usable candidate it never
# does.
MEDIA_CONNECT_TIMEOUT = 20.0

# State messages a participant may send per second on average, and in a burst.
STATE_RATE = 20.0
STATE_BURST = 40

# Data-channel messages of any type a participant may send per second on
# average, and in a burst, before the server closes its connection. A page
# sends a few per second at most, and a flood of thousands per second costs
# the server about half a core in aiortc's SCTP code alone.
DATA_RATE = 200.0
DATA_BURST = 400
CLOSE_POLICY_VIOLATION = 1008


class RoomFullError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This room is full ({limit} of {limit} people). Try again later."
        )


class Signalling(Protocol):
    """The WebSocket side of a participant, as seen by the room."""

    def send(self, message: dict[str, Any]) -> None: ...

    def disconnect(self, reason: str, code: int = ...) -> None: ...


class Participant:
    def __init__(self, name: str, role: str, signalling: Signalling) -> None:
        self.id = "p" + secrets.token_hex(6)
        self.name = name
        self.role = role
        self.signalling = signalling
        self.peer: Peer | None = None
        self.state: dict[str, str] = {"mic": "none", "camera": "none"}
        self.version = 0
        self.state_limit = TokenBucket(STATE_RATE, STATE_BURST)
        self.data_limit = TokenBucket(DATA_RATE, DATA_BURST)
        self.flooding = False
        self.rate_limited = False
        self.bad_messages = 0
        # Random key of the participant's browser, sent with join, if any.
        self.client_key: str | None = None
        # Whether a host muted the participant and they have not unmuted since.
        self.host_muted = False
        self.chat_limit = TokenBucket(chat.CHAT_RATE, chat.CHAT_BURST)
        self.pending_relay: asyncio.TimerHandle | None = None
        self.connect_deadline: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"Participant({self.id})"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "state": dict(self.state),
            "version": self.version,
        }


class Room:
    """One open room: its participants and the forwarding between them."""

    def __init__(
        self,
        info: RoomInfo,
        rtc_configuration: RTCConfiguration,
        on_empty: Callable[[Room], None],
        plan: Plan | None = None,
    ) -> None:
        self.info = info
        self.participants: dict[str, Participant] = {}
        self.router = Router(info.id, self._send_track_map, self._request_slots)
        self._rtc_configuration = rtc_configuration
        self._on_empty = on_empty
        self.chat = chat.ChatLog()
        self.moderation = moderation.RoomModeration()
        self._data_handlers: dict[str, Callable[[Participant, dict[str, Any]], None]]
        self.session = CoworkingSession(self, plan or Plan())
        self._data_handlers = {
            "view": self._handle_view,
            "state": self._handle_state,
            "chat": self._handle_chat,
            "host": self.session.handle_host,
            "coffee": self.session.handle_coffee,
        }

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def max_slots(self) -> int:
        return self.info.limit - 1

    def group_of(self, participant_id: str) -> str | None:
        """Return the participant's coffee group, or None for the main room."""
        return self.session.group_of(participant_id)

    def initial_slots(self) -> int:
        """Return how many receive slots a newcomer's first offer should have."""
        return min(self.max_slots, len(self.participants) - 1 + SLOT_STEP)

    def add(self, participant: Participant) -> None:
        self.moderation.check_join(participant)
        if len(self.participants) >= self.info.limit:
            raise RoomFullError(self.info.limit)
        self.participants[participant.id] = participant
        logger.info(
            "peer %s joined room %s as %s (%d present)",
            participant.id,
            self.id,
            participant.role,
            len(self.participants),
        )
        self._broadcast(
            {"type": "joined", "participant": participant.describe()}, participant.id
        )

    async def remove(self, participant_id: str, reason: str) -> None:
        participant = self.participants.pop(participant_id, None)
        if participant is None:
            return
        logger.info(
            "peer %s left room %s (%s, %d present)",
            participant_id,
            self.id,
            reason,
            len(self.participants),
        )
        self.router.remove(participant_id)
        self.session.on_leave(participant_id)
        for timer in (participant.pending_relay, participant.connect_deadline):
            if timer is not None:
                timer.cancel()
        self._broadcast({"type": "left", "id": participant_id, "reason": reason})
        if participant.peer is not None:
            await participant.peer.close()
        if not self.participants:
            self.session.close()
            self._on_empty(self)

    async def negotiate(self, participant: Participant, offer_sdp: str) -> str:
        """Answer a participant's first or later offer and return the answer."""
        peer = participant.peer
        if peer is not None:
            # NOTE: a later offer that aiortc fails to apply leaves the peer
            # connection in an unknown state; the client reconnects then.
            return await peer.answer(offer_sdp, self.max_slots)

        peer = Peer(participant.id, self._rtc_configuration)
        peer.on_message = self._on_data_message
        peer.on_channel_open = self._on_channel_open
        peer.on_failed = self._on_peer_failed
        participant.peer = peer
        try:
            return await peer.answer(offer_sdp, self.max_slots)
        except Exception:
            # A first offer that fails may have left transceivers behind, so a
            # corrected offer starts on a new peer connection.
            participant.peer = None
            await peer.close()
            raise

    def start_forwarding(self, participant: Participant) -> None:
        """Route media to and from the participant once it has its answer."""
        peer = participant.peer
        if peer is None or participant.id not in self.participants:
            return
        if peer.id in self.router.peers:
            self.router.fill(peer)
            return
        self.router.add(peer)
        participant.connect_deadline = asyncio.get_running_loop().call_later(
            MEDIA_CONNECT_TIMEOUT, self._check_connected, participant
        )

    def _check_connected(self, participant: Participant) -> None:
        peer = participant.peer
        if participant.id not in self.participants or peer is None:
            return
        if peer.pc.connectionState != "connected":
            logger.info(
                "peer %s in room %s: no media connection after %.0f s (%s)",
                participant.id,
                self.id,
                MEDIA_CONNECT_TIMEOUT,
                peer.pc.connectionState,
            )
            participant.signalling.disconnect("media connection timed out")

    def _send_track_map(self, peer: Peer) -> None:
        participant = self.participants.get(peer.id)
        if participant is not None:
            participant.signalling.send({"type": "tracks", "mids": peer.track_map()})

    def _request_slots(self, peer: Peer, waiting: int) -> None:
        participant = self.participants.get(peer.id)
        if participant is not None:
            count = min(self.max_slots, len(peer.slots) + max(waiting, SLOT_STEP))
            participant.signalling.send({"type": "slots", "count": count})

    def _on_peer_failed(self, peer: Peer) -> None:
        participant = self.participants.get(peer.id)
        # A peer discarded after a failed first offer closes without meaning it.
        if participant is not None and participant.peer is peer:
            logger.info(
                "peer %s in room %s lost its media connection", peer.id, self.id
            )
            participant.signalling.disconnect("media connection failed")

    def _on_channel_open(self, peer: Peer) -> None:
        others = [p.describe() for p in self.participants.values() if p.id != peer.id]
        peer.send(json.dumps({"type": "roster", "participants": others}))
        peer.send(json.dumps(self.chat.history()))
        if self.moderation.locked:
            peer.send(json.dumps({"type": "lock", "locked": True}))
        participant = self.participants.get(peer.id)
        if participant is not None:
            self.session.on_channel_open(participant)

    def _on_data_message(self, peer: Peer, text: str | None) -> None:
        participant = self.participants.get(peer.id)
        if participant is None or participant.flooding:
            return
        if not participant.data_limit.take():
            participant.flooding = True
            logger.warning(
                "x %s in room %s sent over %d data-channel messages in a burst; "
                "closing",
                participant.id,
                self.id,
                DATA_BURST,
            )
            participant.signalling.disconnect(
                "data channel flood", CLOSE_POLICY_VIOLATION
            )
            return
        try:
            message = protocol.parse_data_message(text)
            self._data_handlers[message["type"]](participant, message)
        except protocol.ProtocolError as exc:
            self._reject_data(participant, exc)

    def _reject_data(
        self, participant: Participant, exc: protocol.ProtocolError
    ) -> None:
        participant.bad_messages += 1
        if participant.bad_messages % 1000 == 1:
            logger.warning(
                "x data channel of %s in room %s: %s (%d bad messages)",
                participant.id,
                self.id,
                exc,
                participant.bad_messages,
            )
        if participant.peer is not None:
            participant.peer.send(json.dumps(exc.as_message()))

    def _handle_view(self, participant: Participant, message: dict[str, Any]) -> None:
        assert participant.peer is not None
        self.router.show_video(participant.peer, protocol.parse_view(message))

    def _handle_state(self, participant: Participant, message: dict[str, Any]) -> None:
        version, state = protocol.parse_state(message)
        if version <= participant.version:
            logger.debug("< stale state %d from %s ignored", version, participant.id)
            return
        # The newest state is always kept; a sender over the rate limit has
        # its latest state relayed once the limit allows.
        participant.version = version
        participant.state = state
        if participant.host_muted and state["mic"] == "on":
            moderation.set_audio_paused(participant, False)
        if participant.state_limit.take():
            self._relay_state(participant)
        elif participant.pending_relay is None:
            if not participant.rate_limited:
                participant.rate_limited = True
                logger.warning(
                    "x %s in room %s sends state too fast", participant.id, self.id
                )
            participant.pending_relay = asyncio.get_running_loop().call_later(
                1 / STATE_RATE, self._relay_pending_state, participant
            )

    def _handle_chat(self, participant: Participant, message: dict[str, Any]) -> None:
        text = chat.parse_chat(message)
        if not participant.chat_limit.take():
            raise protocol.ProtocolError(chat.RATE_LIMITED, chat.RATE_LIMITED_MESSAGE)
        # A coffee group's talk stays in the group and out of the history
        # that later joiners of the main room get.
        group = self.group_of(participant.id)
        entry = self.chat.add(
            participant.id, participant.name, text, keep=group is None
        )
        logger.debug(
            "< chat %s from %s in room %s", entry["id"], participant.id, self.id
        )
        payload = json.dumps(entry)
        for member in self.audience(participant):
            if member.peer is not None:
                member.peer.send(payload)

    def audience(self, participant: Participant) -> list[Participant]:
        """Return who receives the participant's chat messages, sender included:
        the members of their coffee group, or everyone in the main room."""
        group = self.group_of(participant.id)
        return [p for p in self.participants.values() if self.group_of(p.id) == group]

    def clear_chat(self) -> None:
        """Drop the chat history, as when a session ends, and tell everyone."""
        self.chat.clear()
        self.broadcast({"type": "chat_cleared"})

    def _relay_pending_state(self, participant: Participant) -> None:
        participant.pending_relay = None
        if participant.id not in self.participants:
            return
        if not participant.state_limit.take():
            participant.pending_relay = asyncio.get_running_loop().call_later(
                1 / STATE_RATE, self._relay_pending_state, participant
            )
            return
        self._relay_state(participant)

    def _relay_state(self, participant: Participant) -> None:
        self._broadcast(
            {
                "type": "state",
                "id": participant.id,
                "version": participant.version,
                "state": participant.state,
            },
            participant.id,
        )

    def broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        """Send a data-channel message to everyone, or everyone but ``exclude``."""
        self._broadcast(message, exclude)

    def _broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        text = json.dumps(message)
        for participant in self.participants.values():
            if participant.id != exclude and participant.peer is not None:
                participant.peer.send(text)

    async def close(self) -> None:
        for participant_id in list(self.participants):
            await self.remove(participant_id, "closed")


class RoomRegistry:
    """The rooms open in this process, opened on first join, closed when empty."""

    def __init__(
        self, rtc_configuration: RTCConfiguration, plan: Plan | None = None
    ) -> None:
        self.rooms: dict[str, Room] = {}
        self._rtc_configuration = rtc_configuration
        self.plan = plan or Plan()

    def open(self, info: RoomInfo) -> Room:
        room = self.rooms.get(info.id)
        if room is None:
            room = Room(info, self._rtc_configuration, self._close_empty, self.plan)
            self.rooms[info.id] = room
            logger.info("room %s opened", info.id)
        return room

    def _close_empty(self, room: Room) -> None:
        if self.rooms.get(room.id) is room and not room.participants:
            del self.rooms[room.id]
            logger.info("room %s closed", room.id)

    def participant_count(self, room_id: str) -> int:
        room = self.rooms.get(room_id)
        return len(room.participants) if room is not None else 0

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            await room.close()
