"""A video jitter buffer that gives up on a packet lost for good."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

# How long frames may wait behind a missing packet before it is given up.
# Retransmissions answer a NACK within one round trip, well below this.
MAX_HOLE_WAIT = 0.3


class HoleSkippingJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, without its stall on a lost packet.

    aiortc 1.16.0 releases frames only from an unbroken run of packets, and
    asks for a lost packet once. A packet that never arrives holds back every
    later frame until 512 packets have queued behind it: seconds of frozen
    video, then a burst of stale frames. This buffer drops the broken frame
    once no frame has come out for ``max_wait`` seconds while a later packet
    is waiting, and raises the PLI flag so that the publisher sends a
    keyframe. ``skips`` counts the drops, so that the consumer can hold back
    frames that depend on the lost one.
    """

    def __init__(
        self,
        capacity: int = 512,
        max_wait: float = MAX_HOLE_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.max_wait = max_wait
        self.skips = 0
        self._clock = clock
        self._last_output = clock()
        self._newest: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self._newest is None or uint16_gt(packet.sequence_number, self._newest):
            self._newest = packet.sequence_number
        pli_flag, frame = super().add(packet)
        now = self._clock()
        if frame is not None:
            self._last_output = now
            return pli_flag, frame
        if now - self._last_output < self.max_wait:
            return pli_flag, None
        skipped, frame = self._skip_hole()
        if not skipped:
            return pli_flag, None
        self.skips += 1
        self._last_output = now
        if frame is None:
            frame = self._remove_frame(packet.sequence_number)
        return True, frame

    def _skip_hole(self) -> tuple[bool, JitterFrame | None]:
        """Drop the frame that a missing packet broke.

        Return whether a hole was found, and the whole frame before it if that
        frame could not come out only because the hole hid its end.
        """
        if self._origin is None or self._newest is None:
            return False, None
        span = uint16_add(self._newest, -self._origin) + 1
        if span > self._capacity:
            return False, None
        hole = next((i for i in range(span) if self._packet_at(i) is None), None)
        if hole is None:
            return False, None

        # A marker bit before the hole ends a whole frame, so the hole starts
        # the next frame. Otherwise the hole is inside the frame at the origin.
        before = self._packet_at(hole - 1) if hole else None
        whole = None
        broken = None
        if before is not None and before.marker:
            packets = [self._packet_at(i) for i in range(hole)]
            whole = JitterFrame(
                data=b"".join(p._data for p in packets),  # type: ignore[union-attr]
                timestamp=before.timestamp,
            )
        elif before is not None:
            broken = before.timestamp

        drop = hole
        for index in range(hole, span):
            packet = self._packet_at(index)
            if packet is not None:
                if broken is None:
                    broken = packet.timestamp
                if packet.timestamp != broken:
                    break
            drop = index + 1
        self.remove(drop)
        return True, whole

    def _packet_at(self, offset: int) -> RtpPacket | None:
        return self._packets[(self._origin + offset) % self._capacity]
