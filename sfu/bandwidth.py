"""Subscribers' bandwidth estimates (REMB), relayed to the publisher.

A forwarding SFU sends every subscriber the publisher's own bitrate, so a
subscriber on a slow link can only be helped by the publisher sending less.
Each subscriber's estimate reaches the sender of its slot. The publisher's
receiver then reports the lowest of those estimates and its own in the REMB
packets it sends to the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci, unpack_remb_fci

logger = logging.getLogger(__name__)

# A subscriber's estimate counts this long after it arrived.
ESTIMATE_LIFETIME = 5.0
# The relayed estimate never goes below this, so that one broken subscriber
# cannot starve everyone of video.
MIN_BITRATE = 100_000
# A drop by more than this fraction is sent at once, not with the next REMB
# of the publisher's own receiver.
PROMPT_DROP = 0.1


def is_remb(packet: Any) -> bool:
    return isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP


def watch_subscriber_remb(
    sender: RTCRtpSender, on_estimate: Callable[[int], None]
) -> None:
    """Call ``on_estimate`` with each REMB bitrate a subscriber sends for ``sender``."""
    handle: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet

    async def handle_rtcp(packet: Any) -> None:
        if is_remb(packet):
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                bitrate, ssrcs = 0, []
            if sender._ssrc in ssrcs:
                on_estimate(bitrate)
        await handle(packet)

    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


class BandwidthLimit:
    """The lowest recent estimate of the subscribers of one publisher track.

    It rewrites the REMB packets that the publisher's receiver sends, and
    sends one at once when the limit drops.
    """

    def __init__(self, receiver: RTCRtpReceiver, ssrc: int | None) -> None:
        self._receiver = receiver
        self._ssrc = ssrc
        self._estimates: dict[object, tuple[int, float]] = {}
        self._last_sent: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        send: Callable[[Any], Awaitable[None]] = receiver._send_rtcp

        async def send_rtcp(packet: Any) -> None:
            if is_remb(packet):
                packet = self._capped(packet)
            await send(packet)

        self._send = send
        receiver._send_rtcp = send_rtcp  # type: ignore[method-assign]

    def limit(self) -> int | None:
        """Return the lowest recent subscriber estimate, or None if there is none."""
        now = time.monotonic()
        recent = [
            bitrate
            for bitrate, stamp in self._estimates.values()
            if now - stamp < ESTIMATE_LIFETIME
        ]
        return max(MIN_BITRATE, min(recent)) if recent else None

    def update(self, subscriber: object, bitrate: int) -> None:
        self._estimates[subscriber] = (bitrate, time.monotonic())
        limit = self.limit()
        last = self._last_sent
        if limit is not None and last is not None and limit < last * (1 - PROMPT_DROP):
            self._send_now(limit)

    def forget(self, subscriber: object) -> None:
        self._estimates.pop(subscriber, None)

    def _capped(self, packet: RtcpPsfbPacket) -> RtcpPsfbPacket:
        try:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
        except ValueError:
            return packet
        limit = self.limit()
        if limit is not None and limit < bitrate:
            bitrate = limit
        self._last_sent = bitrate
        return RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=packet.ssrc,
            media_ssrc=packet.media_ssrc,
            fci=pack_remb_fci(bitrate, ssrcs),
        )

    def _send_now(self, bitrate: int) -> None:
        rtcp_ssrc = self._receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
        if rtcp_ssrc is None or self._ssrc is None:
            return
        self._last_sent = bitrate
        logger.debug("> REMB %d bit/s to publisher %d", bitrate, self._ssrc)
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=rtcp_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(bitrate, [self._ssrc]),
        )
        task = asyncio.create_task(self._send(packet))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
