"""Pre-encoded media for scripted peers: a VP8 clip and Opus packets."""

from __future__ import annotations

import array
import fractions
import math

import av

from sfu.frames import EncodedFrame, is_vp8_keyframe

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)


def vp8_clip(
    frames: int = 60,
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    keyframe_interval: int = 30,
) -> list[EncodedFrame]:
    """Encode a moving gradient with libvpx and return its frames in order."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.bit_rate = 500_000
    codec.gop_size = keyframe_interval
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    step = 90000 // fps
    packets: list[bytes] = []
    for index in range(frames):
        frame = av.VideoFrame(width, height, "yuv420p")
        row = bytes((x + index * 4) % 256 for x in range(width))
        frame.planes[0].update(row * height)
        chroma = (width // 2) * (height // 2)
        frame.planes[1].update(bytes([(index * 8) % 256]) * chroma)
        frame.planes[2].update(bytes([128]) * chroma)
        frame.pts = index
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return [
        EncodedFrame(data, i * step, VIDEO_TIME_BASE, is_vp8_keyframe(data))
        for i, data in enumerate(packets)
    ]


def opus_packets(seconds: float = 1.0, frequency: float = 440.0) -> list[EncodedFrame]:
    """Encode a sine tone as 20 ms Opus packets."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "stereo"
    codec.format = "s16"
    codec.time_base = AUDIO_TIME_BASE
    codec.bit_rate = 32000
    samples = 960
    payloads: list[bytes] = []
    for index in range(int(seconds * 50)):
        tone = array.array("h")
        for n in range(index * samples, (index + 1) * samples):
            value = int(math.sin(2 * math.pi * frequency * n / 48000) * 8000)
            tone.extend((value, value))
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
        frame.planes[0].update(tone.tobytes())
        frame.sample_rate = 48000
        frame.pts = index * samples
        payloads.extend(bytes(p) for p in codec.encode(frame))
    return [
        EncodedFrame(data, i * samples, AUDIO_TIME_BASE, True)
        for i, data in enumerate(payloads)
    ]
