"""Encoded frames, and the passthrough that keeps aiortc from decoding them.

aiortc 1.16.0 hands every reassembled frame to ``get_decoder(codec).decode()``
in the receiver's worker thread, and calls ``get_encoder(codec).pack()`` on
anything a sending track yields that is not a decoded ``Frame``. Replacing both
factories makes the receiving tracks yield :class:`EncodedFrame` objects and the
senders re-packetize them, so media is never decoded or encoded here.
"""

from __future__ import annotations

import fractions
import logging
import queue
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from .stats import counters

logger = logging.getLogger(__name__)

VP8_START_CODE = b"\x9d\x01\x2a"


class EncodedFrame:
    """One encoded video frame or audio packet, as received from a publisher.

    ``pts`` counts in ``time_base`` units, which is 1/clock rate of the codec.
    aiortc's ``Encoder.pack()`` reads ``bytes(frame)``, ``pts`` and
    ``time_base``, the same fields as on ``av.Packet``.
    """

    __slots__ = ("data", "pts", "time_base", "keyframe")

    def __init__(
        self, data: bytes, pts: int, time_base: fractions.Fraction, keyframe: bool
    ) -> None:
        self.data = data
        self.pts = pts
        self.time_base = time_base
        self.keyframe = keyframe

    def __bytes__(self) -> bytes:
        return self.data

    def with_pts(self, pts: int) -> EncodedFrame:
        return EncodedFrame(self.data, pts, self.time_base, self.keyframe)


def is_vp8_keyframe(data: bytes) -> bool:
    # RFC 6386 section 9.1: bit 0 of the frame tag is 0 for a key frame, which
    # is followed by the start code after the 3-byte tag.
    return len(data) >= 6 and not data[0] & 1 and data[3:6] == VP8_START_CODE


def is_h264_keyframe(data: bytes) -> bool:
    # aiortc's depayloader outputs Annex B; an IDR slice (type 5) or a sequence
    # parameter set (type 7) starts a decodable picture.
    for chunk in data.split(b"\x00\x00\x01")[1:]:
        if chunk and chunk[0] & 0x1F in (5, 7):
            return True
    return False


class PassthroughDecoder:
    """Stands in for aiortc's decoders and returns frames still encoded."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.time_base = fractions.Fraction(1, codec.clockRate)
        mime = codec.mimeType.lower()
        if mime == "video/vp8":
            self.detect_keyframe = is_vp8_keyframe
        elif mime == "video/h264":
            self.detect_keyframe = is_h264_keyframe
        else:
            self.detect_keyframe = _always_keyframe
        counters.passthrough_decoders += 1

    def decode(self, encoded_frame: JitterFrame) -> list[EncodedFrame]:
        data = encoded_frame.data
        return [
            EncodedFrame(
                data,
                encoded_frame.timestamp,
                self.time_base,
                self.detect_keyframe(data),
            )
        ]


def _always_keyframe(data: bytes) -> bool:
    return True


class PackOnlyEncoder:
    """Wraps aiortc's encoder so that ``pack()`` works and ``encode()`` fails.

    An SFU sender that is handed a decoded frame means a regression somewhere
    upstream; failing loudly is cheaper than transcoding silently.
    """

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self._encoder = get_encoder(codec)

    def pack(self, frame: Any) -> tuple[list[bytes], int]:
        return self._encoder.pack(frame)

    def encode(self, frame: Any, force_keyframe: bool = False) -> Any:
        counters.encode_attempts += 1
        raise RuntimeError("the SFU must forward encoded frames, not encode")


class DirectFrameSink:
    """Takes the place of an ``RTCRtpReceiver``'s decoder queue.

    aiortc 1.16.0 puts each reassembled frame into a ``queue.Queue`` that a
    decoder thread reads, and the thread hands the result back to the event
    loop. This sink receives the ``put()`` on the event loop instead and
    passes the frame, still encoded, straight to ``on_frame``: no thread hop
    and no asyncio queue per frame. The receiver's idle decoder thread blocks
    in ``get()`` until the receiver stops, when the ``None`` that ``put()``
    receives lets it end the track as usual.
    """

    def __init__(self, jitter_buffer: Any = None) -> None:
        self.on_frame: Callable[[EncodedFrame], None] | None = None
        self._decoder: PassthroughDecoder | None = None
        self._codec_name = ""
        self._stop: queue.Queue[None] = queue.Queue()
        # The HoleSkippingJitterBuffer in front of this sink, if any. Once it
        # drops a frame, later frames wait for a keyframe, because they refer
        # to the dropped one.
        self._jitter_buffer = jitter_buffer
        self._skips_seen = 0
        self._waiting_for_keyframe = False

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self._stop.put(None)
            return
        codec, encoded_frame = item
        if self._decoder is None or codec.name != self._codec_name:
            self._decoder = PassthroughDecoder(codec)
            self._codec_name = codec.name
        jitter_buffer = self._jitter_buffer
        if jitter_buffer is not None and jitter_buffer.skips != self._skips_seen:
            self._skips_seen = jitter_buffer.skips
            self._waiting_for_keyframe = True
        for frame in self._decoder.decode(encoded_frame):
            if self._waiting_for_keyframe:
                if not frame.keyframe:
                    counters.frames_dropped += 1
                    continue
                self._waiting_for_keyframe = False
            if self.on_frame is not None:
                self.on_frame(frame)

    def get(self) -> None:
        return self._stop.get()


_installed = False


def passthrough_installed() -> bool:
    return _installed


def install_passthrough() -> None:
    """Patch aiortc in this process so it neither decodes nor encodes media."""
    global _installed
    _installed = True
    aiortc.rtcrtpreceiver.get_decoder = PassthroughDecoder  # type: ignore[assignment]
    aiortc.rtcrtpsender.get_encoder = PackOnlyEncoder  # type: ignore[assignment]
    logger.debug("- aiortc passthrough installed")
