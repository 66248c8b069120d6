"""aiortc plumbing shared by the benchmark's client processes.

Publishers send pre-encoded frames through aiortc's ``pack()`` path.
Subscribers never decode what they receive: a stand-in decoder hands the
reassembled frames to the tracks, and a wrapper around each receiver's jitter
buffer counts RTP packets and sequence gaps and notes when each frame's last
packet arrived. Only keyframes (video) and one Opus packet in 50 are decoded,
in a worker thread, to check that the streams are valid.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import logging
import time
from typing import Any

import aiortc.rtcrtpreceiver
import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

import sfu.ice
from sfu.frames import EncodedFrame, is_vp8_keyframe

from .clips import Clip, content_hash

logger = logging.getLogger(__name__)

AUDIO_DECODE_EVERY = 50
# A publisher more than this far behind its schedule skips ahead instead of
# sending a burst of late frames.
MAX_SEND_LAG = 0.2


def use_loopback() -> None:
    """Make aiortc offer 127.0.0.1 as its only ICE candidate in this process."""
    sfu.ice.set_host_addresses(["127.0.0.1"])


def rtc_configuration() -> RTCConfiguration:
    # An explicit empty list keeps aiortc from using its public STUN default.
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class ClipTrack(MediaStreamTrack):
    """Loops a pre-encoded clip at its own pace and logs each send.

    A keyframe request (PLI or FIR from the SFU) makes the track jump to the
    clip's next keyframe, as a live encoder would send one at once.
    """

    def __init__(self, clip: Clip, start_index: int = 0) -> None:
        super().__init__()
        self.kind = clip.kind
        self.clip = clip
        self.hashes = [content_hash(f) for f in clip.frames]
        self.keyframe_positions = [i for i, k in enumerate(clip.keyframes) if k]
        self.position = start_index % len(clip.frames)
        self.sent = 0
        self.keyframe_requests = 0
        self.skips = 0
        # (content hash, time.monotonic() when the frame went to the sender)
        self.log: list[tuple[str, float]] = []
        self._keyframe_wanted = False
        self._start: float | None = None
        self._step = clip.step
        self._time_base = fractions.Fraction(1, clip.clock_rate)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._keyframe_wanted = True

    def _next_keyframe_position(self) -> int:
        for position in self.keyframe_positions:
            if position >= self.position:
                return position
        return self.keyframe_positions[0]

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self.sent * self.clip.period
        if now - due > MAX_SEND_LAG:
            self._start += now - due
            self.skips += 1
        elif due > now:
            await asyncio.sleep(due - now)
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            self.position = self._next_keyframe_position()
        position = self.position
        self.position = (position + 1) % len(self.clip.frames)
        frame = EncodedFrame(
            self.clip.frames[position],
            self.sent * self._step,
            self._time_base,
            self.clip.keyframes[position],
        )
        self.sent += 1
        self.log.append((self.hashes[position], time.monotonic()))
        return frame


class KeepEncoded:
    """Stands in for aiortc's decoders: returns the reassembled frame as is."""

    def __init__(self, codec: Any) -> None:
        pass

    def decode(self, encoded_frame: JitterFrame) -> list[JitterFrame]:
        return [encoded_frame]


def install_keep_encoded() -> None:
    """Make every receiving track in this process yield undecoded frames."""
    aiortc.rtcrtpreceiver.get_decoder = KeepEncoded  # type: ignore[assignment]


class SampleDecoder:
    """Decodes a sample of frames in one worker thread and counts failures."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sample-decode"
        )

    def submit(self, stream: StreamStats, data: bytes) -> None:
        self._executor.submit(self._decode, stream, data)

    @staticmethod
    def _decode(stream: StreamStats, data: bytes) -> None:
        if stream.decoder is None:
            name = "libvpx" if stream.kind == "video" else "libopus"
            stream.decoder = av.CodecContext.create(name, "r")
        try:
            frames = stream.decoder.decode(av.Packet(data))
        except av.FFmpegError:
            stream.decode_errors += 1
            return
        stream.decoded += 1
        if not frames and stream.kind == "video":
            stream.decode_errors += 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class StreamStats:
    """Counters of one received stream, cumulative since it started."""

    def __init__(self, kind: str, known_hashes: set[str]) -> None:
        self.kind = kind
        self.publisher: str | None = None
        self.known_hashes = known_hashes
        self.packets = 0
        self.unique_packets = 0
        self.highest_seq: int | None = None  # extended sequence number
        self.first_seq: int | None = None
        self.gaps = 0  # sequence numbers missing when a later packet arrived
        self.recovered = 0  # of those, how many arrived later (retransmission)
        self.bytes = 0
        self.frames = 0
        self.keyframes = 0
        self.bit_exact = 0
        self.decoded = 0
        self.decode_errors = 0
        self.first_packet_at: float | None = None
        self.first_frame_at: float | None = None
        # Arrival of the last packet of the first keyframe: the frame is whole
        # then, while aiortc's jitter buffer releases it only when the next
        # frame's first packet arrives.
        self.first_keyframe_at: float | None = None
        # (content hash, arrival of the last packet, time the track yielded it)
        self.log: list[tuple[str, float, float]] = []
        self.decoder: Any = None
        self._missing: set[int] = set()
        self._arrivals: dict[int, float] = {}

    def on_packet(self, packet: RtpPacket, now: float) -> None:
        self.packets += 1
        self.bytes += len(packet.payload)
        if self.first_packet_at is None:
            self.first_packet_at = now
        seq = packet.sequence_number
        if self.highest_seq is None:
            self.highest_seq = self.first_seq = seq
            self.unique_packets += 1
        else:
            # Extend the 16-bit sequence number around the highest one seen.
            delta = (seq - self.highest_seq) & 0xFFFF
            if delta and delta < 0x8000:
                extended = self.highest_seq + delta
                if delta > 1:
                    self.gaps += delta - 1
                    self._missing.update(range(self.highest_seq + 1, extended))
                    if len(self._missing) > 4096:
                        self._missing = set(sorted(self._missing)[-2048:])
                self.highest_seq = extended
                self.unique_packets += 1
            elif delta:
                extended = self.highest_seq - (0x10000 - delta)
                if extended in self._missing:
                    self._missing.discard(extended)
                    self.recovered += 1
                    self.unique_packets += 1
        self._arrivals[packet.timestamp] = now

    def arrival_of(self, timestamp: int, default: float) -> float:
        arrival = self._arrivals.pop(timestamp, default)
        if len(self._arrivals) > 256:
            self._arrivals.clear()
        return arrival

    def on_frame(self, data: bytes, arrival: float, now: float) -> bool:
        """Count a frame; return whether it is a keyframe that should be decoded."""
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = now
        digest = content_hash(data)
        if digest in self.known_hashes:
            self.bit_exact += 1
        self.log.append((digest, arrival, now))
        if self.kind == "video":
            if is_vp8_keyframe(data):
                self.keyframes += 1
                if self.first_keyframe_at is None:
                    self.first_keyframe_at = arrival
                return True
            return False
        return self.frames % AUDIO_DECODE_EVERY == 1

    def snapshot(self) -> dict[str, Any]:
        expected = 0
        if self.highest_seq is not None and self.first_seq is not None:
            expected = self.highest_seq - self.first_seq + 1
        return {
            "kind": self.kind,
            "publisher": self.publisher,
            "packets": self.packets,
            "unique_packets": self.unique_packets,
            "expected_packets": expected,
            "gaps": self.gaps,
            "recovered": self.recovered,
            "bytes": self.bytes,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "bit_exact": self.bit_exact,
            "decoded": self.decoded,
            "decode_errors": self.decode_errors,
        }


def instrument(receiver: RTCRtpReceiver, stats: StreamStats) -> None:
    """Count every RTP packet that reaches the receiver's jitter buffer.

    Retransmitted packets arrive here already unwrapped from RTX. The buffer
    returns a frame when a later packet arrives, so the frame is stamped with
    the arrival of its own last packet, noted per RTP timestamp.
    """
    # aiortc 1.16.0 runs a Python bandwidth estimator on every video packet
    # that carries abs-send-time. aiortc senders (this server) add it, and
    # Janus 1.1.2's VideoRoom does not offer it to subscribers, so the clients
    # would do more work for one target. Without it they send no REMB.
    receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]
    # aiortc 1.16.0 keeps the jitter buffer in a private attribute.
    jitter_buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    add = jitter_buffer.add

    def counting_add(packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = time.monotonic()
        stats.on_packet(packet, now)
        pli, frame = add(packet)
        if frame is not None:
            frame.arrival = stats.arrival_of(frame.timestamp, now)  # type: ignore[attr-defined]
        return pli, frame

    jitter_buffer.add = counting_add


async def consume(
    track: MediaStreamTrack,
    stats: StreamStats,
    decoder: SampleDecoder,
) -> None:
    """Read a receiving track until it ends, counting what arrives."""
    try:
        while True:
            frame = await track.recv()
            now = time.monotonic()
            data = frame.data
            arrival = getattr(frame, "arrival", now)
            if stats.on_frame(data, arrival, now):
                decoder.submit(stats, data)
    except MediaStreamError:
        pass
