"""Fan-out of one publisher track to the slots that subscribe to it."""

from __future__ import annotations

import asyncio
import logging
import time

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .bandwidth import BandwidthLimit
from .frames import EncodedFrame
from .slot import SlotTrack
from .stats import counters

logger = logging.getLogger(__name__)

# Keyframe requests to a publisher are sent at most this often, and repeated
# at the retry interval while a subscriber still waits, because the request or
# the keyframe itself can be lost.
KEYFRAME_REQUEST_INTERVAL = 0.3
KEYFRAME_RETRY_INTERVAL = 1.0


class TrackForwarder:
    """Reads encoded frames from a publisher's track and hands them to slots."""

    def __init__(
        self,
        track: MediaStreamTrack,
        receiver: RTCRtpReceiver,
        ssrc: int | None,
        publisher_id: str,
    ) -> None:
        self.track = track
        self.kind = track.kind
        self.publisher_id = publisher_id
        self._receiver = receiver
        self._ssrc = ssrc
        self._subscribers: set[SlotTrack] = set()
        # While True, frames from the publisher are dropped, not forwarded.
        self.paused = False
        self._last_request = 0.0
        self._retry_task: asyncio.Task[None] | None = None
        self._pli_tasks: set[asyncio.Task[None]] = set()
        self.bandwidth = (
            BandwidthLimit(receiver, ssrc) if self.kind == "video" else None
        )
        self._task = asyncio.create_task(self._run(), name=f"forward-{publisher_id}")
        counters.forwarders += 1

    def __repr__(self) -> str:
        return f"TrackForwarder({self.publisher_id}, {self.kind})"

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def add_subscriber(self, slot: SlotTrack) -> None:
        self._subscribers.add(slot)
        if slot.started:
            self.request_keyframe()

    def remove_subscriber(self, slot: SlotTrack) -> None:
        self._subscribers.discard(slot)
        if self.bandwidth is not None:
            self.bandwidth.forget(slot)

    def subscriber_estimate(self, slot: SlotTrack, bitrate: int) -> None:
        """Take a subscriber's bandwidth estimate (REMB) for this track."""
        if self.bandwidth is not None and slot in self._subscribers:
            self.bandwidth.update(slot, bitrate)

    def push(self, frame: EncodedFrame) -> None:
        """Hand one frame from the publisher to every subscribed slot."""
        counters.frames_received += 1
        if self.paused:
            return
        for slot in tuple(self._subscribers):
            slot.push(frame)

    async def _run(self) -> None:
        # With a DirectFrameSink on the receiver, frames arrive through push()
        # and the track only yields its end; otherwise it yields the frames.
        try:
            while True:
                self.push(await self.track.recv())
        except MediaStreamError:
            logger.debug("- %r ended", self)
        finally:
            for slot in tuple(self._subscribers):
                slot.detach()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, throttled and retried."""
        if self.kind != "video" or self._ssrc is None:
            return
        now = time.monotonic()
        if now - self._last_request >= KEYFRAME_REQUEST_INTERVAL:
            self._last_request = now
            self._send_pli()
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.create_task(self._retry_keyframe_requests())

    def _send_pli(self) -> None:
        counters.keyframe_requests += 1
        logger.debug("> PLI to %r", self)
        # RTCRtpReceiver has no public method to send a PLI.
        task = asyncio.create_task(self._receiver._send_rtcp_pli(self._ssrc))
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)

    async def _retry_keyframe_requests(self) -> None:
        while True:
            await asyncio.sleep(KEYFRAME_RETRY_INTERVAL)
            waiting = [
                s for s in self._subscribers if s.started and s.waiting_for_keyframe
            ]
            if not waiting:
                return
            self._last_request = time.monotonic()
            self._send_pli()

    async def stop(self) -> None:
        tasks = [self._task, *self._pli_tasks]
        if self._retry_task is not None:
            tasks.append(self._retry_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for slot in tuple(self._subscribers):
            slot.detach()
        if self.bandwidth is not None:
            self.bandwidth.close()
        counters.forwarders -= 1
