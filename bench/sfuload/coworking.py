"""A benchmark participant that speaks this server's protocol (docs/protocol.md).

A publisher offers no receive slots and ignores ``slots`` requests, so the
server forwards nothing to it. A subscriber sends no media. It offers the
receive slots that ``welcome`` names, offers more pairs when a ``slots``
message requests them, and maps each slot to a publisher through ``tracks``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from .media import (
    ClipTrack,
    SampleDecoder,
    StreamStats,
    consume,
    instrument,
    rtc_configuration,
)
from .sink import RtpCounter, count_instead_of_receiving

logger = logging.getLogger(__name__)

PING_INTERVAL = 5.0
SIGNALLING_TIMEOUT = 30.0


class CoworkingParticipant:
    """One participant: a WebSocket for signalling and one peer connection."""

    def __init__(
        self,
        base_url: str,
        room_id: str,
        token: str,
        name: str,
        *,
        video: ClipTrack | None = None,
        audio: ClipTrack | None = None,
        known_hashes: dict[str, set[str]] | None = None,
        decoder: SampleDecoder | None = None,
        counter: RtpCounter | None = None,
    ) -> None:
        self.base_url = base_url
        self.room_id = room_id
        self.token = token
        self.name = name
        self.video = video
        self.audio = audio
        self.receives = known_hashes is not None or counter is not None
        # A sink subscriber counts RTP headers instead of receiving the media.
        self.counter = counter
        self.known_hashes = known_hashes or {}
        self.decoder = decoder
        self.id = ""
        self.pc: RTCPeerConnection | None = None
        self.streams: dict[str, StreamStats] = {}  # by mid
        self.mids: dict[str, str | None] = {}
        self.started_at = 0.0
        self.welcomed_at = 0.0
        self.offered_at = 0.0
        self.answered_at = 0.0
        self.connected_at = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._slot_count = 0
        self._wanted_slots = 0
        self._offer_pending = False
        self._tasks: list[asyncio.Task[Any]] = []

    async def join(self) -> None:
        """Join the room and wait for the answer to the first offer."""
        self.started_at = time.monotonic()
        self._session = aiohttp.ClientSession()
        url = self.base_url.replace("http", "ws", 1) + "/ws"
        self._ws = await self._session.ws_connect(url, heartbeat=None)
        await self._send(
            {
                "type": "join",
                "version": 1,
                "token": self.token,
                "room": self.room_id,
                "name": self.name,
            }
        )
        welcome = await self._receive()
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"{self.name}: join rejected: {welcome}")
        self.id = welcome["participant"]["id"]
        self.welcomed_at = time.monotonic()

        self.pc = RTCPeerConnection(rtc_configuration())
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.addTransceiver(self.audio or "audio", direction="sendonly")
        self.pc.addTransceiver(self.video or "video", direction="sendonly")
        channel = self.pc.createDataChannel("state")
        channel.on("open", lambda: channel.send(json.dumps(self._state_message())))
        self.pc.on("track", self._on_track)
        self._wanted_slots = welcome["slots"] if self.receives else 0
        await self._offer()
        self.offered_at = time.monotonic()
        if self.counter is not None:
            count_instead_of_receiving(self.pc, self.counter)
        while True:
            message = await self._receive()
            if message["type"] == "answer":
                await self._apply_answer(message["sdp"])
                break
            if message["type"] == "error":
                raise RuntimeError(f"{self.name}: offer rejected: {message}")
            self._handle(message)
        self.answered_at = time.monotonic()
        if self._wanted_slots > self._slot_count:
            await self._offer()
        if self.video is not None:
            # A keyframe request from the SFU makes the clip jump to a keyframe.
            sender = self.pc.getTransceivers()[1].sender
            sender._send_keyframe = self.video.request_keyframe  # type: ignore[method-assign]
        self._tasks.append(asyncio.create_task(self._read()))
        self._tasks.append(asyncio.create_task(self._ping()))

    def _on_connection_state(self) -> None:
        assert self.pc is not None
        if self.pc.connectionState == "connected" and not self.connected_at:
            self.connected_at = time.monotonic()

    def _state_message(self) -> dict[str, Any]:
        if self.video is None:
            state = {"mic": "none", "camera": "none"}
        else:
            state = {"mic": "on" if self.audio else "off", "camera": "on"}
        return {"type": "state", "version": 1, "state": state}

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def _receive(self, timeout: float = SIGNALLING_TIMEOUT) -> dict[str, Any]:
        assert self._ws is not None
        message = await self._ws.receive(timeout=timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(
                f"{self.name}: WebSocket closed ({message.type.name}, "
                f"code {self._ws.close_code})"
            )
        return json.loads(message.data)

    async def _offer(self) -> None:
        """Append receive slot pairs up to the wanted count and send an offer."""
        assert self.pc is not None
        while self._slot_count < self._wanted_slots:
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")
            self._slot_count += 1
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._offer_pending = True
        await self._send({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def _apply_answer(self, sdp: str) -> None:
        assert self.pc is not None
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=sdp, type="answer")
        )
        self._offer_pending = False

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "tracks":
            self.mids = message["mids"]
            for mid, stats in self.streams.items():
                stats.publisher = self.mids.get(mid)
        elif kind == "slots" and self.receives:
            # Publishers ignore the request: they take no media from others.
            self._wanted_slots = max(self._wanted_slots, message["count"])
        elif kind == "error":
            logger.warning("x %s: server error %s", self.name, message)

    async def _read(self) -> None:
        try:
            while True:
                message = await self._receive(timeout=3600)
                kind = message["type"]
                if kind == "answer":
                    await self._apply_answer(message["sdp"])
                    if self._wanted_slots > self._slot_count:
                        await self._offer()
                else:
                    self._handle(message)
                    wants_more = self._wanted_slots > self._slot_count
                    if kind == "slots" and wants_more and not self._offer_pending:
                        await self._offer()
        except (ConnectionError, asyncio.TimeoutError) as exc:
            logger.warning("x %s: signalling ended: %s", self.name, exc)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            await self._send({"type": "ping"})

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.pc is not None
        if self.counter is not None:
            return
        transceiver = next(
            t for t in self.pc.getTransceivers() if t.receiver.track is track
        )
        mid = transceiver.mid
        stats = StreamStats(track.kind, self.known_hashes.get(track.kind, set()))
        stats.publisher = self.mids.get(mid) if mid is not None else None
        instrument(transceiver.receiver, stats)
        assert mid is not None and self.decoder is not None
        self.streams[mid] = stats
        self._tasks.append(asyncio.create_task(consume(track, stats, self.decoder)))

    def received(self) -> list[StreamStats]:
        """Return the streams that carry a publisher's media."""
        return [s for s in self.streams.values() if s.publisher is not None]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._ws is not None and not self._ws.closed:
            try:
                await self._send({"type": "leave"})
            except ConnectionError:
                pass
            await self._ws.close()
        if self.pc is not None:
            await self.pc.close()
        if self._session is not None:
            await self._session.close()
