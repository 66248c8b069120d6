"""Benchmark participants for Janus VideoRoom over the Janus HTTP API.

Each worker process has one Janus session: requests go as POSTs, and events
come back by long-polling ``GET /janus/<session>``. A publisher is one handle
that joins as a publisher and publishes its aiortc offer; a subscriber holds
one handle and one peer connection per publisher (feed), answers Janus's offer
and sends ``start``. Request names follow the VideoRoom plugin of Janus 1.1.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from .media import (
    ClipTrack,
    SampleDecoder,
    StreamStats,
    consume,
    instrument,
    rtc_configuration,
)

logger = logging.getLogger(__name__)

KEEPALIVE_INTERVAL = 20.0  # Janus closes a session after 60 s without requests
REQUEST_TIMEOUT = 30.0
PLUGIN = "janus.plugin.videoroom"


class JanusError(RuntimeError):
    """Janus or its VideoRoom plugin returned an error."""


class JanusSession:
    """One Janus session with its long-poll and keepalive tasks."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session_id: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._trickle: dict[int, RTCPeerConnection] = {}
        self._counter = itertools.count()
        self._prefix = secrets.token_hex(4)
        self._tasks: list[asyncio.Task[None]] = []

    def _transaction(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with self._http.post(self.url + path, json=body, timeout=timeout) as r:
            r.raise_for_status()
            return await r.json(content_type=None)

    async def create(self) -> None:
        self._http = aiohttp.ClientSession()
        reply = await self._post("", {"janus": "create", "transaction": "create"})
        if reply.get("janus") != "success":
            raise JanusError(f"session create failed: {reply}")
        self.session_id = reply["data"]["id"]
        self._tasks.append(asyncio.create_task(self._poll()))
        self._tasks.append(asyncio.create_task(self._keepalive()))

    async def attach(self) -> int:
        reply = await self._post(
            f"/{self.session_id}",
            {"janus": "attach", "plugin": PLUGIN, "transaction": self._transaction()},
        )
        if reply.get("janus") != "success":
            raise JanusError(f"attach failed: {reply}")
        return reply["data"]["id"]

    async def detach(self, handle: int) -> None:
        self._trickle.pop(handle, None)
        await self._post(
            f"/{self.session_id}/{handle}",
            {"janus": "detach", "transaction": self._transaction()},
        )

    async def message(
        self,
        handle: int,
        body: dict[str, Any],
        jsep: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Send a plugin request; return the plugin's data and JSEP, if any.

        Janus replies to some requests at once and to others with "ack" and
        an event that carries the same transaction.
        """
        transaction = self._transaction()
        request: dict[str, Any] = {
            "janus": "message",
            "body": body,
            "transaction": transaction,
        }
        if jsep is not None:
            request["jsep"] = jsep
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[transaction] = future
        try:
            reply = await self._post(f"/{self.session_id}/{handle}", request)
            if reply.get("janus") == "ack":
                reply = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            raise JanusError(f"{body.get('request')} failed: {reply['error']}")
        data = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{body.get('request')} failed: {data}")
        return data, reply.get("jsep")

    def on_trickle(self, handle: int, pc: RTCPeerConnection) -> None:
        """Add candidates that Janus trickles for this handle to ``pc``."""
        self._trickle[handle] = pc

    async def _poll(self) -> None:
        assert self._http is not None
        url = f"{self.url}/{self.session_id}?maxev=10"
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + 30)
        while True:
            try:
                async with self._http.get(url, timeout=timeout) as response:
                    events = await response.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                logger.warning("x Janus long poll failed: %s; retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for event in events if isinstance(events, list) else [events]:
                await self._dispatch(event)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        future = self._pending.get(event.get("transaction", ""))
        if future is not None and not future.done() and kind != "ack":
            future.set_result(event)
        elif kind == "trickle":
            pc = self._trickle.get(event.get("sender", 0))
            candidate = event.get("candidate", {})
            if pc is not None and candidate.get("candidate"):
                parsed = candidate_from_sdp(candidate["candidate"].split(":", 1)[1])
                parsed.sdpMid = candidate.get("sdpMid")
                parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
                await pc.addIceCandidate(parsed)
        elif kind in ("hangup", "detached"):
            logger.warning("x Janus event %s", event)
        elif kind not in ("keepalive", "webrtcup", "media", "event", "slowlink"):
            logger.debug("- Janus event %s", event)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            try:
                await self._post(
                    f"/{self.session_id}",
                    {"janus": "keepalive", "transaction": self._transaction()},
                )
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                logger.warning("x Janus keepalive failed: %s", exc)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._http is not None:
            if self.session_id is not None:
                try:
                    await self._post(
                        f"/{self.session_id}",
                        {"janus": "destroy", "transaction": self._transaction()},
                    )
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    logger.warning("x Janus session destroy failed: %s", exc)
            await self._http.close()


async def create_room(session: JanusSession, publishers: int) -> tuple[int, int]:
    """Create a temporary VP8 and Opus room; return (room id, handle)."""
    handle = await session.attach()
    room = secrets.randbelow(1 << 31) + 1
    data, _ = await session.message(
        handle,
        {
            "request": "create",
            "room": room,
            "description": "coworking benchmark",
            "permanent": False,
            "publishers": publishers,
            "bitrate": 0,  # no cap in the REMB sent to publishers
            "fir_freq": 0,  # no periodic keyframe requests
            "audiocodec": "opus",
            "videocodec": "vp8",
            "notify_joining": False,
        },
    )
    if data.get("videoroom") != "created":
        raise JanusError(f"room create failed: {data}")
    return room, handle


async def destroy_room(session: JanusSession, handle: int, room: int) -> None:
    await session.message(handle, {"request": "destroy", "room": room})


class JanusPublisher:
    """One publisher: a VideoRoom handle and one sending peer connection."""

    def __init__(
        self,
        session: JanusSession,
        room: int,
        name: str,
        video: ClipTrack,
        audio: ClipTrack | None,
    ) -> None:
        self.session = session
        self.room = room
        self.name = name
        self.video = video
        self.audio = audio
        self.id = ""
        self.handle = 0
        self.pc: RTCPeerConnection | None = None

    async def join(self) -> None:
        self.handle = await self.session.attach()
        data, _ = await self.session.message(
            self.handle,
            {
                "request": "join",
                "ptype": "publisher",
                "room": self.room,
                "display": self.name,
            },
        )
        self.id = str(data["id"])
        self.pc = RTCPeerConnection(rtc_configuration())
        self.session.on_trickle(self.handle, self.pc)
        if self.audio is not None:
            self.pc.addTransceiver(self.audio, direction="sendonly")
        video = self.pc.addTransceiver(self.video, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription
        _, jsep = await self.session.message(
            self.handle,
            {"request": "publish"},
            jsep={"type": offer.type, "sdp": offer.sdp, "trickle": False},
        )
        if jsep is None:
            raise JanusError(f"{self.name}: publish returned no answer")
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"])
        )
        # Janus relays subscribers' PLIs and sends its own when one joins.
        video.sender._send_keyframe = self.video.request_keyframe  # type: ignore[method-assign]

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


class JanusSubscriber:
    """One person watching every publisher: a handle and a connection per feed."""

    def __init__(
        self,
        session: JanusSession,
        room: int,
        name: str,
        known_hashes: dict[str, set[str]],
        decoder: SampleDecoder,
    ) -> None:
        self.session = session
        self.room = room
        self.name = name
        self.known_hashes = known_hashes
        self.decoder = decoder
        self.started_at = 0.0
        self.answered_at = 0.0
        # When the last of the connections came up.
        self.connected_at = 0.0
        self.streams: list[StreamStats] = []
        self.connections: list[RTCPeerConnection] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self, feeds: list[str]) -> None:
        self.started_at = time.monotonic()
        await asyncio.gather(*(self._subscribe(feed) for feed in feeds))
        self.answered_at = time.monotonic()

    async def _subscribe(self, feed: str) -> None:
        handle = await self.session.attach()
        pc = RTCPeerConnection(rtc_configuration())
        self.connections.append(pc)
        self.session.on_trickle(handle, pc)

        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next(
                t for t in pc.getTransceivers() if t.receiver.track is track
            )
            stats = StreamStats(track.kind, self.known_hashes.get(track.kind, set()))
            stats.publisher = feed
            instrument(transceiver.receiver, stats)
            self.streams.append(stats)
            self._tasks.append(asyncio.create_task(consume(track, stats, self.decoder)))

        def on_connection_state() -> None:
            if pc.connectionState == "connected":
                self.connected_at = max(self.connected_at, time.monotonic())

        pc.on("track", on_track)
        pc.on("connectionstatechange", on_connection_state)
        _, offer = await self.session.message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": self.room,
                "streams": [{"feed": int(feed)}],
            },
        )
        if offer is None:
            raise JanusError(f"{self.name}: subscribing to {feed} returned no offer")
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=offer["sdp"], type=offer["type"])
        )
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription
        await self.session.message(
            handle,
            {"request": "start"},
            jsep={"type": answer.type, "sdp": answer.sdp, "trickle": False},
        )

    def received(self) -> list[StreamStats]:
        return self.streams

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pc in self.connections:
            await pc.close()
