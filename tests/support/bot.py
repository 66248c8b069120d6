"""A scripted participant: an aiortc peer that speaks the server's protocol."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sfu.frames import EncodedFrame


class LoopTrack(MediaStreamTrack):
    """Sends pre-encoded frames in a loop at their own pace."""

    def __init__(self, kind: str, frames: list[EncodedFrame], period: float) -> None:
        super().__init__()
        self.kind = kind
        self.frames = frames
        self.period = period
        self.sent: list[bytes] = []
        self._index = 0
        self._start: float | None = None
        self._span = frames[-1].pts + (frames[1].pts - frames[0].pts)

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index * self.period
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        loops, position = divmod(self._index, len(self.frames))
        frame = self.frames[position]
        self._index += 1
        self.sent.append(frame.data)
        return frame.with_pts(frame.pts + loops * self._span)


class Bot:
    """Joins a room over the WebSocket and one peer connection."""

    def __init__(
        self,
        base_url: str,
        room_id: str,
        token: str,
        name: str = "bot",
        audio: LoopTrack | None = None,
        video: LoopTrack | None = None,
        slots: int | None = None,
    ) -> None:
        self.base_url = base_url
        self.room_id = room_id
        self.token = token
        self.name = name
        self.audio = audio
        self.video = video
        self.wanted_slots = slots
        # The random per-browser key sent in join as "client", if any.
        self.client_key: str | None = None
        self.slot_count = 0
        # Whether to offer more receive slots when the server requests them.
        self.grow_slots = True
        # Whether to send ICE candidates in candidate messages after the offer.
        self.trickle = False
        # Whether to gather relay candidates only, through the TURN servers
        # that `welcome` names; otherwise the bot uses no ICE server.
        self.relay_only = False
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc: RTCPeerConnection | None = None
        self.welcome: dict[str, Any] = {}
        self.mids: dict[str, str | None] = {}
        self.received: dict[str, list[EncodedFrame]] = collections.defaultdict(list)
        self.arrivals: dict[str, list[float]] = collections.defaultdict(list)
        self.data_messages: list[dict[str, Any]] = []
        self.ws_messages: list[dict[str, Any]] = []
        self.channel: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._ws_reader: asyncio.Task[None] | None = None
        self.joined_at = 0.0
        # Close code of the WebSocket and time.monotonic() when the close arrived.
        self.close_code: int | None = None
        self.closed_at: float | None = None

    @property
    def id(self) -> str:
        return self.welcome["participant"]["id"]

    async def connect(self) -> None:
        self.session = aiohttp.ClientSession()
        url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.session.ws_connect(url)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.ws is not None
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT and self.close_code is None:
            self.close_code = self.ws.close_code
            self.closed_at = time.monotonic()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(
                f"WebSocket closed: {msg.type} {msg.data} {msg.extra}"
            )
        return json.loads(msg.data)

    async def join(self) -> None:
        """Join the room and negotiate the peer connection."""
        self.joined_at = time.monotonic()
        await self.connect()
        join = {
            "type": "join",
            "version": 1,
            "token": self.token,
            "room": self.room_id,
            "name": self.name,
        }
        if self.client_key is not None:
            join["client"] = self.client_key
        await self.send(join)
        self.welcome = await self.receive()
        if self.welcome["type"] != "welcome":
            raise RuntimeError(f"join refused: {self.welcome}")
        slots = (
            self.welcome["slots"] if self.wanted_slots is None else self.wanted_slots
        )
        await self.negotiate(slots)

    async def negotiate(self, slots: int) -> None:
        """Offer the peer connection with ``slots`` receive slots, then listen."""
        await self._negotiate(slots)
        self._ws_reader = asyncio.create_task(self._read_ws())

    async def _negotiate(self, slots: int) -> None:
        self.pc = RTCPeerConnection(self._configuration())
        self.pc.addTransceiver(self.audio or "audio", direction="sendonly")
        self.pc.addTransceiver(self.video or "video", direction="sendonly")
        self.channel = self.pc.createDataChannel("state")
        self.channel.on("message", self._on_data)
        self.pc.on("track", self._on_track)
        await self._offer(slots)
        while True:
            message = await self.receive()
            self._note(message)
            if message["type"] == "answer":
                break
            if message["type"] == "error":
                raise RuntimeError(f"offer refused: {message}")
        await self._apply_answer(message)

    def _configuration(self) -> RTCConfiguration:
        if not self.relay_only:
            return RTCConfiguration(
                iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
            )
        servers = [
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in self.welcome["ice_servers"]
        ]
        return RTCConfiguration(
            iceServers=servers,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )

    async def _offer(self, slots: int) -> None:
        """Grow the receive slots to ``slots`` pairs and send an offer."""
        while self.slot_count < slots:
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")
            self.slot_count += 1
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        if not self.trickle:
            await self.send({"type": "offer", "sdp": sdp})
            return
        # Send the candidates after the offer, as a browser trickles them.
        lines = sdp.split("\r\n")
        candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
        offer = "\r\n".join(
            line
            for line in lines
            if not line.startswith(("a=candidate:", "a=end-of-candidates"))
        )
        await self.send({"type": "offer", "sdp": offer})
        mid = self.pc.getTransceivers()[0].mid
        for candidate in dict.fromkeys(candidates):
            await self.send(
                {"type": "candidate", "candidate": candidate, "sdpMid": mid}
            )
        await self.send({"type": "candidate", "candidate": None})

    async def _apply_answer(self, message: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=message["sdp"], type="answer")
        )

    def _note(self, message: dict[str, Any]) -> None:
        self.ws_messages.append(message)
        if message["type"] == "tracks":
            self.mids = message["mids"]

    async def _read_ws(self) -> None:
        try:
            while True:
                message = await self.receive(timeout=3600)
                self._note(message)
                if message["type"] == "slots" and self.grow_slots:
                    if message["count"] > self.slot_count:
                        await self._offer(message["count"])
                elif message["type"] == "answer":
                    await self._apply_answer(message)
        except (ConnectionError, asyncio.TimeoutError):
            pass

    def _on_data(self, text: str) -> None:
        self.data_messages.append(json.loads(text))

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(
            t for t in self.pc.getTransceivers() if t.receiver.track is track
        )
        self._tasks.append(asyncio.create_task(self._consume(transceiver.mid, track)))

    async def _consume(self, mid: str, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                publisher = self.mids.get(mid)
                if publisher is None:
                    continue
                key = f"{publisher}/{track.kind}"
                self.received[key].append(frame)
                self.arrivals[key].append(time.monotonic())
        except MediaStreamError:
            pass

    async def wait_data(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Wait for a data-channel message of type `kind` that `match` accepts.

        Messages that arrived earlier count too, and the first match is returned.
        """
        return await _wait_for(self.data_messages, kind, match, timeout)

    async def wait_ws(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Wait for a WebSocket message after the answer, as `wait_data` does."""
        return await _wait_for(self.ws_messages, kind, match, timeout)

    def keepalive(self, interval: float = 2.0) -> None:
        """Send `ping` every `interval` seconds until close()."""
        self._tasks.append(asyncio.create_task(self._ping(interval)))

    async def _ping(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.send({"type": "ping"})
            except ConnectionError:
                return

    async def leave(self) -> None:
        await self.send({"type": "leave"})

    async def drop(self) -> None:
        """Close the HTTP session under the WebSocket without a close frame or
        `leave`, and leave the peer connection open, like a crashed client."""
        for task in self._tasks:
            task.cancel()
        assert self.session is not None
        await self.session.close()

    def arrival_times(self, publisher_id: str, kind: str = "video") -> list[float]:
        return self.arrivals.get(f"{publisher_id}/{kind}", [])

    def frames_from(self, publisher_id: str, kind: str = "video") -> list[EncodedFrame]:
        return self.received.get(f"{publisher_id}/{kind}", [])

    def send_state(self, version: int, mic: str = "on", camera: str = "on") -> None:
        self.channel.send(
            json.dumps(
                {
                    "type": "state",
                    "version": version,
                    "state": {"mic": mic, "camera": camera},
                }
            )
        )

    def send_data(self, message: dict[str, Any]) -> None:
        """Send any message on the data channel."""
        self.channel.send(json.dumps(message))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._ws_reader is not None:
            self._ws_reader.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()


async def _wait_for(
    messages: list[dict[str, Any]],
    kind: str,
    match: Callable[[dict[str, Any]], bool] | None,
    timeout: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for message in messages:
            if message.get("type") == kind and (match is None or match(message)):
                return message
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no {kind!r} message within {timeout} s; got {messages!r}"
            )
        await asyncio.sleep(0.02)
