"""The video jitter buffer's handling of a packet lost for good."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from sfu.jitter import HoleSkippingJitterBuffer, ImmediateAudioBuffer

PACKETS_PER_FRAME = 4
FRAME_INTERVAL = 1 / 30


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame_packets(frame: int) -> list[RtpPacket]:
    packets = []
    for part in range(PACKETS_PER_FRAME):
        packet = RtpPacket(
            payload_type=96,
            sequence_number=(1000 + frame * PACKETS_PER_FRAME + part) % 65536,
            timestamp=frame * 3000,
        )
        packet.marker = int(part == PACKETS_PER_FRAME - 1)
        packet._data = bytes([frame % 256, part])  # what the depayloader sets
        packets.append(packet)
    return packets


def feed(buffer, clock, frames: int, lost: set[int], late: dict[int, int]):
    """Feed frames at 30 fps; return the timestamps released and PLI flags.

    ``lost`` holds sequence numbers that never arrive; ``late`` maps a
    sequence number to the frame after which it arrives.
    """
    released, plis = [], 0
    delayed: dict[int, list[RtpPacket]] = {}
    for frame in range(frames):
        clock.now = frame * FRAME_INTERVAL
        arriving = []
        for packet in frame_packets(frame):
            if packet.sequence_number in lost:
                continue
            if packet.sequence_number in late:
                delayed.setdefault(late[packet.sequence_number], []).append(packet)
                continue
            arriving.append(packet)
        arriving.extend(delayed.pop(frame, []))
        for packet in arriving:
            pli, out = buffer.add(packet)
            plis += pli
            if out is not None:
                released.append(out.timestamp // 3000)
    return released, plis


def test_no_loss_releases_every_frame() -> None:
    clock = FakeClock()
    buffer = HoleSkippingJitterBuffer(clock=clock)

    released, plis = feed(buffer, clock, 60, set(), {})

    # Each frame comes out with its last packet, not with the next frame.
    assert released == list(range(60))
    assert plis == 0
    assert buffer.skips == 0


def test_lost_packet_skipped_after_deadline() -> None:
    clock = FakeClock()
    buffer = HoleSkippingJitterBuffer(max_wait=0.3, clock=clock)
    lost = {1000 + 10 * PACKETS_PER_FRAME + 2}  # mid-frame 10

    released, plis = feed(buffer, clock, 60, lost, {})

    assert 10 not in released
    assert released[:10] == list(range(10))
    assert released[-1] == 59
    # Frames after the hole come out within about max_wait, not seconds.
    first_after = released[10]
    assert 11 <= first_after <= 11 + int(0.3 / FRAME_INTERVAL) + 2
    assert buffer.skips == 1
    assert plis >= 1


def test_aiortc_buffer_stalls_on_same_loss() -> None:
    clock = FakeClock()
    buffer = JitterBuffer(capacity=512, is_video=True)
    lost = {1000 + 10 * PACKETS_PER_FRAME + 2}

    released, _ = feed(buffer, clock, 60, lost, {})

    # The reason for HoleSkippingJitterBuffer: nothing after the hole, and
    # frame 9 waits for frame 10's first packet.
    assert released == list(range(10))


def test_lost_first_packet_skipped() -> None:
    clock = FakeClock()
    buffer = HoleSkippingJitterBuffer(max_wait=0.3, clock=clock)
    lost = {1000 + 20 * PACKETS_PER_FRAME}  # the first packet of frame 20

    released, _ = feed(buffer, clock, 60, lost, {})

    assert 19 in released
    assert 20 not in released
    assert released[-1] == 59
    assert buffer.skips == 1


def test_retransmission_in_time_kept() -> None:
    clock = FakeClock()
    buffer = HoleSkippingJitterBuffer(max_wait=0.3, clock=clock)
    # Frame 10's third packet arrives two frames late (67 ms).
    late = {1000 + 10 * PACKETS_PER_FRAME + 2: 12}

    released, _ = feed(buffer, clock, 60, set(), late)

    assert released == list(range(60))
    assert buffer.skips == 0


def test_whole_frame_released_with_last_packet() -> None:
    clock = FakeClock()
    buffer = HoleSkippingJitterBuffer(clock=clock)
    outputs = [buffer.add(packet)[1] for packet in frame_packets(0)]

    assert outputs[:-1] == [None] * (PACKETS_PER_FRAME - 1)
    assert outputs[-1] is not None
    assert outputs[-1].data == b"".join(bytes([0, part]) for part in range(4))


def test_audio_packets_released_at_once() -> None:
    buffer = ImmediateAudioBuffer()
    packets = [
        RtpPacket(payload_type=111, sequence_number=n, timestamp=n * 960)
        for n in (65534, 65535, 0, 1)
    ]
    for packet in packets:
        packet._data = bytes([packet.sequence_number % 256])

    released = [buffer.add(packet)[1] for packet in packets]
    repeated = buffer.add(packets[1])[1]

    assert [frame.timestamp for frame in released] == [p.timestamp for p in packets]
    assert repeated is None
