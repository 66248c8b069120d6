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

logger = logging.getLogger(__name__)

# Frames a subscriber may fall behind before its backlog is dropped: about 2 s
# of 30 fps video, or 1 s of 20 ms Opus packets.
VIDEO_QUEUE_LIMIT = 60
AUDIO_QUEUE_LIMIT = 50


class SlotTrack(MediaStreamTrack):
    """Feeds one subscriber's sender with the frames of one publisher track.

    The source can change while the sender runs: the slot then waits for a
    keyframe of the new source and shifts timestamps so that the outgoing RTP
    timestamps keep advancing with wall-clock time.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.source: TrackForwarder | None = None
        self.started = False
        self.waiting_for_keyframe = kind == "video"
        self._queue: collections.deque[EncodedFrame] = collections.deque()
        self._ready = asyncio.Event()
        self._limit = VIDEO_QUEUE_LIMIT if kind == "video" else AUDIO_QUEUE_LIMIT
        self._resync = True
        self._offset = 0
        self._last_pts: int | None = None
        self._last_time = 0.0

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
        self._queue.clear()

    def request_keyframe(self) -> None:
        if self.source is not None:
            self.source.request_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        """Queue a frame from the source; called once per frame per slot."""
        if not self.started:
            return
        if self.waiting_for_keyframe:
            # A decoded frame (the transcoding baseline, COWORKING_SFU_TRANSCODE)
            # has no keyframe attribute and can start a picture by itself.
            if not getattr(frame, "keyframe", True):
                counters.frames_dropped += 1
                return
            self.waiting_for_keyframe = False
        if len(self._queue) >= self._limit:
            self._drop_backlog()
            if self.waiting_for_keyframe:
                return
        self._queue.append(frame)
        self._ready.set()

    def _drop_backlog(self) -> None:
        counters.frames_dropped += len(self._queue)
        if self.kind == "video":
            # A gap in video corrupts every picture up to the next keyframe.
            self._queue.clear()
            self.waiting_for_keyframe = True
            self.request_keyframe()
        else:
            for _ in range(len(self._queue) // 2):
                self._queue.popleft()
        logger.debug("x %s slot fell behind, backlog dropped", self.kind)

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        if not self.started:
            # The sender pulls for the first time once DTLS is up.
            self.started = True
            self.request_keyframe()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._queue.popleft()
        counters.frames_forwarded += 1
        return self._retime(frame)

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

    def stop(self) -> None:
        self.detach()
        super().stop()
        self._ready.set()
