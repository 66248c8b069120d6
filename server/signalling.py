"""The signalling WebSocket of one participant."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from sfu.peer import OfferError

from . import protocol
from .attendance import parse_booking_ref, record_attendance
from .invites import InviteError, admit
from .limits import FailureLimiter
from .moderation import JoinRejected
from .rooms import Participant, Room, RoomFullError, RoomRegistry
from .schedule import DEFAULT_EARLY_SECONDS, SlotWindowError
from .storage import Storage

logger = logging.getLogger(__name__)

MAX_FRAME_SIZE = 256 * 1024
LIVENESS_TIMEOUT = 15.0
MAX_BAD_MESSAGES = 20
SEND_QUEUE_LIMIT = 1000
CLOSE_LIVENESS = 4000
CLOSE_MEDIA_FAILED = 4001
TOO_MANY_ATTEMPTS = "too_many_attempts"
TOO_MANY_ATTEMPTS_MESSAGE = (
    "Too many invalid invite links were tried from your address. "
    "Wait a minute, then open your invite link again."
)
# Seconds to flush queued messages and to send the close frame.
CLOSE_TIMEOUT = 2.0
MAX_CANDIDATES = 64


class Session:
    """Reads one participant's WebSocket, handles its messages in order, and
    writes replies from a queue so that a slow client never blocks a room."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        storage: Storage,
        registry: RoomRegistry,
        ice_servers: Callable[[str], list[dict[str, Any]]],
        remote: str,
        abort: Callable[[], None] = lambda: None,
        limiter: FailureLimiter | None = None,
        slot_early: float = DEFAULT_EARLY_SECONDS,
    ) -> None:
        self.ws = ws
        # Seconds before a slot's start from which an invite bound to it admits.
        self.slot_early = slot_early
        # Drops the connection without a close handshake.
        self.abort = abort
        self.limiter = limiter or FailureLimiter()
        # Returns the ICE servers for a participant id. Called only after
        # admission, because TURN credentials must not reach unadmitted clients.
        self.ice_servers = ice_servers
        self.storage = storage
        self.registry = registry
        self.remote = remote
        self.room: Room | None = None
        self.participant: Participant | None = None
        self.leave_reason = "closed"
        self.bad_messages = 0
        self.candidates = 0
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "join": self.handle_join,
            "offer": self.handle_offer,
            "candidate": self.handle_candidate,
            "ping": self.handle_ping,
            "leave": self.handle_leave,
        }

    def __repr__(self) -> str:
        who = self.participant.id if self.participant else "unjoined"
        return f"Session({who}, {self.remote})"

    def send(self, message: dict[str, Any]) -> None:
        if self._closing is not None:
            return
        if self._outbox.qsize() >= SEND_QUEUE_LIMIT:
            logger.warning(
                "x %r: %d messages unsent; closing", self, self._outbox.qsize()
            )
            self._close_soon(WSCloseCode.POLICY_VIOLATION, "too many unsent messages")
            return
        self._outbox.put_nowait(message)

    def disconnect(self, reason: str, code: int = CLOSE_MEDIA_FAILED) -> None:
        """Close the connection soon. After the default code the client
        reconnects by itself."""
        self._close_soon(code, reason)

    def _close_soon(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.create_task(self.close(code, reason))

    async def run(self) -> None:
        self._writer = asyncio.create_task(self._write())
        try:
            await self._read()
        finally:
            # Free the participant's place first: closing the socket of a peer
            # that vanished can take until CLOSE_TIMEOUT.
            if self.room is not None and self.participant is not None:
                await self.room.remove(self.participant.id, self.leave_reason)
            self._outbox.put_nowait(None)
            done, _ = await asyncio.wait({self._writer}, timeout=CLOSE_TIMEOUT)
            if not done:
                self._writer.cancel()
                self.abort()
            if self._closing is not None:
                await self._closing
            if not self.ws.closed:
                await self.close(WSCloseCode.OK, "")

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            if message is None:
                return
            try:
                await self.ws.send_str(json.dumps(message))
            except ConnectionError:
                return

    async def _read(self) -> None:
        while not self.ws.closed:
            try:
                msg = await self.ws.receive(timeout=LIVENESS_TIMEOUT)
            except asyncio.TimeoutError:
                logger.info(
                    "%r sent nothing for %.0f s; closing", self, LIVENESS_TIMEOUT
                )
                self.leave_reason = "timeout"
                await self.close(CLOSE_LIVENESS, "liveness timeout")
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type == WSMsgType.ERROR:
                logger.warning("x %r WebSocket error: %s", self, self.ws.exception())
                return
            text = msg.data if msg.type == WSMsgType.TEXT else None
            await self._dispatch(text)
            # Let the writer run even when a burst of messages is buffered.
            await asyncio.sleep(0)

    async def _dispatch(self, text: str | None) -> None:
        try:
            try:
                message = protocol.parse_message(text)
            except protocol.ProtocolError:
                if self.participant is None:
                    raise protocol.ProtocolError(
                        "not_joined", "Send a join message first."
                    ) from None
                raise
            if self.participant is None and message["type"] != "join":
                raise protocol.ProtocolError("not_joined", "Send a join message first.")
            handler = self._handlers.get(message["type"])
            if handler is None:
                raise protocol.bad_message(
                    f"Unknown message type {message['type'][:32]!r}."
                )
            await handler(message)
        except protocol.ProtocolError as exc:
            await self._reject(exc)
        except Exception:
            # A bug must cost this participant its connection, not the server.
            logger.exception("x %r: failed to handle a message", self)
            self.send(
                {
                    "type": "error",
                    "code": "internal_error",
                    "message": "The server failed to handle this message.",
                }
            )
            await self.close(WSCloseCode.INTERNAL_ERROR, "internal_error")

    async def _reject(self, exc: protocol.ProtocolError) -> None:
        self.bad_messages += 1
        # One line for the first bad message and one for the close, however
        # many a client sends.
        if self.bad_messages == 1:
            logger.warning("x %r: %s (%s)", self, exc.message, exc.code)
        elif self.bad_messages == MAX_BAD_MESSAGES:
            logger.warning("x %r: %d bad messages; closing", self, self.bad_messages)
        self.send(exc.as_message())
        if exc.code == "not_joined" or self.bad_messages >= MAX_BAD_MESSAGES:
            await self.close(WSCloseCode.POLICY_VIOLATION, exc.code)

    async def close(self, code: int, reason: str) -> None:
        # Let the writer flush queued messages before the close frame.
        self._outbox.put_nowait(None)
        if self._writer is not None:
            await asyncio.wait({self._writer}, timeout=CLOSE_TIMEOUT)
        try:
            # A peer that vanished without closing TCP never acknowledges
            # what is sent, so the close frame could wait for minutes.
            await asyncio.wait_for(
                self.ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT
            )
        except asyncio.TimeoutError:
            logger.info("%r did not take the close frame; dropping it", self)
            self.abort()

    async def _refuse(self, code: str, message: str) -> None:
        self.send({"type": "error", "code": code, "message": message})
        await self.close(WSCloseCode.POLICY_VIOLATION, code)

    async def handle_join(self, message: dict[str, Any]) -> None:
        if self.participant is not None:
            raise protocol.bad_message("This connection has already joined.")
        if message.get("version") != protocol.PROTOCOL_VERSION:
            await self._refuse(
                "unsupported_version",
                f"This server speaks protocol version {protocol.PROTOCOL_VERSION}. "
                "Reload the page to get the current client.",
            )
            return
        name = protocol.clean_name(message.get("name"))
        client_key = protocol.parse_client_key(message.get("client"))
        booking_ref = parse_booking_ref(message.get("booking"))
        if self.limiter.blocked(self.remote):
            logger.warning("x %r: join refused, too many invalid invites", self)
            await self._refuse(TOO_MANY_ATTEMPTS, TOO_MANY_ATTEMPTS_MESSAGE)
            return
        try:
            info, invite = await admit(
                self.storage,
                message.get("room"),
                message.get("token"),
                early_seconds=self.slot_early,
            )
        except SlotWindowError as exc:
            logger.info("%r: join rejected, %s", self, exc.code)
            await self._refuse(exc.code, exc.message)
            return
        except InviteError as exc:
            self.limiter.record_failure(self.remote)
            logger.warning("x %r: join refused, invalid invite", self)
            await self._refuse(exc.code, str(exc))
            return
        room = self.registry.open(info)
        participant = Participant(name, invite.role, self)
        participant.client_key = client_key
        try:
            room.add(participant)
        except RoomFullError as exc:
            logger.info("%r: room %s is full", self, info.id)
            await self._refuse("room_full", str(exc))
            return
        except JoinRejected as exc:
            logger.info("%r: join to room %s rejected (%s)", self, info.id, exc.code)
            await self._refuse(exc.code, exc.message)
            return
        self.room, self.participant = room, participant
        slot = await self.storage.current_slot(info.id, time.time())
        if slot is not None:
            room.session.follow_slot(slot.plan)
        if booking_ref is not None:
            await record_attendance(
                self.storage, info.id, booking_ref, self.slot_early, repr(self)
            )
        self.send(
            {
                "type": "welcome",
                "version": protocol.PROTOCOL_VERSION,
                "participant": {
                    "id": participant.id,
                    "name": name,
                    "role": invite.role,
                },
                "room": {"id": info.id, "name": info.name, "limit": info.limit},
                "slots": room.initial_slots(),
                "ice_servers": self.ice_servers(participant.id),
            }
        )

    async def handle_offer(self, message: dict[str, Any]) -> None:
        sdp = protocol.require_str(message, "sdp", protocol.MAX_SDP_LENGTH)
        assert self.room is not None and self.participant is not None
        try:
            answer = await self.room.negotiate(self.participant, sdp)
        except OfferError as exc:
            raise protocol.ProtocolError("bad_sdp", str(exc)) from exc
        self.send({"type": "answer", "sdp": answer})
        self.room.start_forwarding(self.participant)

    async def handle_candidate(self, message: dict[str, Any]) -> None:
        candidate, mid, index = protocol.parse_candidate(message)
        assert self.participant is not None
        peer = self.participant.peer
        if peer is None:
            logger.debug("< %r: candidate before the offer ignored", self)
            return
        self.candidates += 1
        if self.candidates > MAX_CANDIDATES:
            if self.candidates == MAX_CANDIDATES + 1:
                raise protocol.bad_message(
                    f"At most {MAX_CANDIDATES} candidates are taken; the rest are "
                    "ignored."
                )
            return
        try:
            await peer.add_candidate(candidate, mid, index)
        except OfferError as exc:
            raise protocol.bad_message(str(exc)) from exc

    async def handle_ping(self, message: dict[str, Any]) -> None:
        self.send({"type": "pong"})

    async def handle_leave(self, message: dict[str, Any]) -> None:
        self.leave_reason = "leave"
        await self.close(WSCloseCode.OK, "leave")
