"""Pre-encoded media for the load: a VP8 clip per profile and Opus packets.

The clips are encoded once with PyAV's libvpx and libopus and cached as files,
so no process encodes anything while a run is measured. The picture moves and
carries noise, so that the rate control spends the whole target bitrate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import random
import struct
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from sfu.frames import is_vp8_keyframe

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90000
AUDIO_CLOCK_RATE = 48000
AUDIO_PACKET_SAMPLES = 960  # 20 ms at 48 kHz
AUDIO_BITRATE = 32000
CLIP_SECONDS = 10
KEYFRAME_SECONDS = 2
FILE_MAGIC = b"SFULOAD1"
FRAME_HEADER = struct.Struct(">IB")


@dataclasses.dataclass(frozen=True)
class Profile:
    """The media one publisher sends."""

    name: str
    width: int
    height: int
    fps: int
    bitrate: int  # video target, bits per second
    audio: bool  # whether publishers send Opus, unless --no-audio is given


PROFILES = {
    # Heads down: small tiles, microphones muted.
    "focus": Profile("focus", 640, 360, 15, 300_000, audio=False),
    # A break: everyone talks, full frame rate.
    "break": Profile("break", 640, 480, 30, 1_000_000, audio=True),
}


@dataclasses.dataclass
class Clip:
    """Encoded frames in sending order, looped by the publishers."""

    kind: str
    frames: list[bytes]
    keyframes: list[bool]
    period: float  # seconds between frames
    clock_rate: int

    @property
    def step(self) -> int:
        """Return the RTP timestamp increment per frame."""
        return round(self.clock_rate * self.period)

    @property
    def bitrate(self) -> float:
        return sum(len(f) for f in self.frames) * 8 / (len(self.frames) * self.period)


def content_hash(data: bytes) -> str:
    """Return the key that matches a sent frame with its received copy."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def cache_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / f"coworking-sfuload-clips-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def video_clip_path(profile: Profile) -> Path:
    name = (
        f"vp8-{profile.width}x{profile.height}-{profile.fps}fps-"
        f"{profile.bitrate}bps-{CLIP_SECONDS}s.clip"
    )
    path = cache_dir() / name
    if not path.exists():
        started = time.monotonic()
        frames = encode_vp8(profile)
        write_clip(path, frames)
        logger.info("encoded %s in %.1f s", path.name, time.monotonic() - started)
    return path


def audio_clip_path() -> Path:
    path = cache_dir() / f"opus-{AUDIO_BITRATE}bps-{CLIP_SECONDS}s.clip"
    if not path.exists():
        write_clip(path, [(p, True) for p in encode_opus()])
    return path


def write_clip(path: Path, frames: list[tuple[bytes, bool]]) -> None:
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with partial.open("wb") as out:
        out.write(FILE_MAGIC)
        for data, keyframe in frames:
            out.write(FRAME_HEADER.pack(len(data), keyframe))
            out.write(data)
    partial.replace(path)


def read_clip(path: Path, kind: str, fps: float) -> Clip:
    blob = path.read_bytes()
    if not blob.startswith(FILE_MAGIC):
        raise ValueError(f"{path} is not a clip file; delete it to re-encode")
    frames: list[bytes] = []
    keyframes: list[bool] = []
    position = len(FILE_MAGIC)
    while position < len(blob):
        size, keyframe = FRAME_HEADER.unpack_from(blob, position)
        position += FRAME_HEADER.size
        frames.append(blob[position : position + size])
        keyframes.append(bool(keyframe))
        position += size
    clock_rate = VIDEO_CLOCK_RATE if kind == "video" else AUDIO_CLOCK_RATE
    return Clip(kind, frames, keyframes, 1 / fps, clock_rate)


def encode_vp8(profile: Profile) -> list[tuple[bytes, bool]]:
    """Encode CLIP_SECONDS of moving stripes, a moving box and noise."""
    width, height, fps = profile.width, profile.height, profile.fps
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.bit_rate = profile.bitrate
    codec.gop_size = KEYFRAME_SECONDS * fps
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "auto-alt-ref": "0",
        # minrate = maxrate = bit_rate makes libvpx use constant bitrate.
        "minrate": str(profile.bitrate),
        "maxrate": str(profile.bitrate),
        "bufsize": str(profile.bitrate),
        "undershoot-pct": "95",
        "overshoot-pct": "10",
    }
    # Stripes: row y of frame i starts at (y + 4 i) mod 256 in this ramp.
    ramp = bytes((x * 2) % 256 for x in range(width + 512))
    box_size = height // 4
    box = bytes([235]) * box_size
    # Noise of amplitude 0..15, XORed into the luma plane through big integers
    # because the standard library has no vector arithmetic.
    rng = random.Random(1)
    plane_size = width * height
    noise_pool = rng.randbytes(plane_size * 2).translate(
        bytes(v & 0x0F for v in range(256))
    )
    chroma_width, chroma_height = width // 2, height // 2
    frame_count = CLIP_SECONDS * fps
    keyframe_interval = KEYFRAME_SECONDS * fps
    encoded: list[tuple[bytes, bool]] = []
    for index in range(frame_count):
        box_x = (index * 7) % (width - box_size)
        box_y = (index * 3) % (height - box_size)
        rows = []
        for y in range(height):
            start = (y + 4 * index) % 256
            row = ramp[start : start + width]
            if box_y <= y < box_y + box_size:
                row = row[:box_x] + box + row[box_x + box_size :]
            rows.append(row)
        stripes = int.from_bytes(b"".join(rows), "big")
        offset = rng.randrange(plane_size)
        noise = int.from_bytes(noise_pool[offset : offset + plane_size], "big")
        luma = (stripes ^ noise).to_bytes(plane_size, "big")
        frame = av.VideoFrame(width, height, "yuv420p")
        frame.planes[0].update(luma)
        chroma_u = b"".join(
            bytes([(y * 2 + index) % 256]) * chroma_width for y in range(chroma_height)
        )
        frame.planes[1].update(chroma_u)
        frame.planes[2].update(bytes([128]) * (chroma_width * chroma_height))
        frame.pts = index
        if index % keyframe_interval == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in codec.encode(frame):
            data = bytes(packet)
            encoded.append((data, is_vp8_keyframe(data)))
    for packet in codec.encode(None):
        data = bytes(packet)
        encoded.append((data, is_vp8_keyframe(data)))
    if len(encoded) != frame_count:
        raise RuntimeError(f"libvpx returned {len(encoded)} of {frame_count} frames")
    return encoded


def encode_opus() -> list[bytes]:
    """Encode CLIP_SECONDS of a gliding tone with noise as 20 ms Opus packets."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_CLOCK_RATE
    codec.layout = "stereo"
    codec.format = "s16"
    codec.time_base = Fraction(1, AUDIO_CLOCK_RATE)
    codec.bit_rate = AUDIO_BITRATE
    rng = random.Random(2)
    packets: list[bytes] = []
    count = CLIP_SECONDS * AUDIO_CLOCK_RATE // AUDIO_PACKET_SAMPLES
    phase = 0.0
    for index in range(count):
        frequency = 300 + 200 * math.sin(index / 40)
        samples = bytearray()
        for _ in range(AUDIO_PACKET_SAMPLES):
            phase += 2 * math.pi * frequency / AUDIO_CLOCK_RATE
            value = int(6000 * math.sin(phase)) + rng.randint(-1500, 1500)
            samples += struct.pack("<hh", value, value)
        frame = av.AudioFrame(
            format="s16", layout="stereo", samples=AUDIO_PACKET_SAMPLES
        )
        frame.planes[0].update(bytes(samples))
        frame.sample_rate = AUDIO_CLOCK_RATE
        frame.pts = index * AUDIO_PACKET_SAMPLES
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets
