"""Jitter buffers for the SFU's receivers: no waiting that forwarding does not need.

aiortc 1.16.0's buffers are built for decoding. Its video buffer releases a
frame only when the next frame's first packet arrives (one frame interval of
delay), and waits for a lost packet until 512 packets have queued behind it.
Its audio buffer holds four 20 ms packets before releasing any (80 ms). The
SFU forwards to browsers, whose own jitter buffers reorder and smooth, so it
releases each frame as soon as it is whole.
"""

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
    """aiortc's video jitter buffer, without its waits.

    A frame comes out as soon as its last packet (the one with the marker bit)
    completes an unbroken run from the buffer's start. A packet that never
    arrives would hold back every later frame until 512 packets queued behind
    it: seconds of frozen video, then a burst of stale frames. This buffer
    drops the broken frame once no frame has come out for ``max_wait`` seconds
    while a later packet is waiting, and raises the PLI flag so that the
    publisher sends a keyframe. ``skips`` counts the drops, so that the
    consumer can hold back frames that depend on the lost one.
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
        if frame is None and packet.marker:
            frame = self._release_whole(packet)
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

    def _release_whole(self, last: RtpPacket) -> JitterFrame | None:
        """Return the frame at the start if ``last`` completes it, else None."""
        if self._origin is None:
            return None
        count = uint16_add(last.sequence_number, -self._origin) + 1
        if count > self._capacity:
            return None
        packets = []
        for offset in range(count):
            packet = self._packet_at(offset)
            if packet is None or packet.timestamp != last.timestamp:
                return None
            packets.append(packet)
        self.remove(count)
        return JitterFrame(
            data=b"".join(p._data for p in packets),  # type: ignore[attr-defined]
            timestamp=last.timestamp,
        )

    def _packet_at(self, offset: int) -> RtpPacket | None:
        return self._packets[(self._origin + offset) % self._capacity]


class ImmediateAudioBuffer:
    """Releases each audio packet as it arrives, in place of aiortc's buffer.

    An Opus packet decodes on its own, so nothing is gained by holding it.
    Packets older than the newest one seen (late or repeated) are dropped,
    because the SFU numbers the packets it sends in the order it sends them.
    """

    capacity = 1

    def __init__(self) -> None:
        self._newest: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        sequence = packet.sequence_number
        if self._newest is not None and not uint16_gt(sequence, self._newest):
            return False, None
        self._newest = sequence
        data = packet._data  # type: ignore[attr-defined]
        return False, JitterFrame(data=data, timestamp=packet.timestamp)
