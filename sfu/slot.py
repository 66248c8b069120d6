"""The sending side of one receive slot of a subscriber."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .frames import EncodedFrame
from .stats import counters

if TYPE_CHECKING:
    from .forwarder import TrackForwarder
    from .rtpsend import FrameSender

logger = logging.getLogger(__name__)

# Decoded frames a slot keeps for aiortc's sender task in the transcoding
# baseline, about 1 s of video.
RECV_QUEUE_LIMIT = 30


class SlotTrack(MediaStreamTrack):
    """Passes the frames of one publisher track to one subscriber's sender.

    The forwarder calls :meth:`push` for each frame, and the slot sends it at
    once through its :class:`~sfu.rtpsend.FrameSender`. The source can change
    while the sender runs: the slot then waits for a keyframe of the new
    source and shifts timestamps so that the outgoing RTP timestamps keep
    advancing with wall-clock time.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.source: TrackForwarder | None = None
        self.sender: FrameSender | None = None
        self.waiting_for_keyframe = kind == "video"
        self.paused = False
        self._resync = True
        self._offset = 0
        self._last_pts: int | None = None
        self._last_time = 0.0
        self._stopped = asyncio.Event()
        self._pulling = False
        self._queue: collections.deque[EncodedFrame] = collections.deque()
        self._ready = asyncio.Event()

    @property
    def started(self) -> bool:
        """Whether the sender runs: the subscriber's connection is up."""
        if self.sender is None:
            return self._pulling
        return self.sender.ready

    def attach(self, source: TrackForwarder) -> None:
        self.detach()
        self.source = source
        self._resync = True
        self.waiting_for_keyframe = self.kind == "video"
        source.add_subscriber(self)

    def detach(self) -> None:
        if self.source is not None:
            self.source.remove_subscriber(self)
            self.source = None

    def set_paused(self, paused: bool) -> None:
        """Stop or resume sending; a resumed video slot waits for a keyframe."""
        if paused == self.paused:
            return
        self.paused = paused
        if not paused and self.kind == "video":
            self.waiting_for_keyframe = True
            self.request_keyframe()

    def request_keyframe(self) -> None:
        if self.source is not None:
            self.source.request_keyframe()

    def on_estimate(self, bitrate: int) -> None:
        """Pass on the subscriber's bandwidth estimate (REMB) for this slot."""
        if self.source is not None:
            self.source.subscriber_estimate(self, bitrate)

    def on_sender_started(self) -> None:
        # The first keyframe for this subscriber: its connection is now up.
        self.request_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        """Send a frame from the source; called once per frame per slot."""
        sender = self.sender
        if sender is None:
            self._queue_for_recv(frame)
            return
        if not sender.ready or self.paused:
            return
        if self.waiting_for_keyframe:
            # A decoded frame (the transcoding baseline, COWORKING_SFU_TRANSCODE)
            # has no keyframe attribute and can start a picture by itself.
            if not getattr(frame, "keyframe", True):
                counters.frames_dropped += 1
                return
            self.waiting_for_keyframe = False
        if sender.send(self._retime(frame)):
            counters.frames_forwarded += 1
            return
        counters.frames_dropped += 1
        if self.kind == "video":
            # A gap in video corrupts every picture up to the next keyframe.
            self.waiting_for_keyframe = True
            self.request_keyframe()
        logger.debug("x %s slot fell behind, frame dropped", self.kind)

    def _retime(self, frame: EncodedFrame) -> EncodedFrame:
        now = time.monotonic()
        if self._resync:
            self._resync = False
            # NOTE: decoded frames have no with_pts() and may be shared by
            # several slots, so the transcoding baseline is not retimed.
            if self._last_pts is not None and hasattr(frame, "with_pts"):
                elapsed = max(1, round((now - self._last_time) / frame.time_base))
                self._offset = self._last_pts + elapsed - frame.pts
        self._last_time = now
        if self._offset:
            frame = frame.with_pts(frame.pts + self._offset)
        self._last_pts = frame.pts
        return frame

    def _queue_for_recv(self, frame: EncodedFrame) -> None:
        # Without a FrameSender (the transcoding baseline), aiortc's sender
        # task pulls frames through recv() and encodes them.
        if not self._pulling:
            return
        if len(self._queue) >= RECV_QUEUE_LIMIT:
            self._queue.clear()
        self._queue.append(frame)
        self._ready.set()

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        if self.sender is not None:
            # The FrameSender replaces the sender's task that would call this.
            await self._stopped.wait()
            raise MediaStreamError
        if not self._pulling:
            self._pulling = True
            self.request_keyframe()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def stop(self) -> None:
        self.detach()
        super().stop()
        self._stopped.set()
        self._ready.set()
