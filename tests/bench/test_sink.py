"""The capacity benchmark's RTP header counter."""

from __future__ import annotations

import struct

from bench.sfuload.sink import RtpCounter, is_rtp

VP8 = 96


def rtp(seq: int, marker: bool = False, ssrc: int = 1234) -> bytes:
    second = (0x80 if marker else 0) | VP8
    return struct.pack("!BBHLL", 0x80, second, seq, 0, ssrc) + b"payload"


def test_frames_counted_by_marker():
    counter = RtpCounter()
    for seq in range(9):
        counter.count(rtp(seq, marker=seq % 3 == 2))
    stream = counter.snapshot()["1234"]
    assert stream["packets"] == 9
    assert stream["frames"] == 3
    assert stream["expected_packets"] == 9


def test_gap_and_wraparound_expected():
    counter = RtpCounter()
    for seq in (65534, 65535, 2, 3):  # 0 and 1 lost across the wrap-around
        counter.count(rtp(seq))
    stream = counter.snapshot()["1234"]
    assert stream["packets"] == 4
    assert stream["expected_packets"] == 6


def test_streams_kept_apart_by_ssrc():
    counter = RtpCounter()
    counter.count(rtp(1, ssrc=1))
    counter.count(rtp(1, ssrc=2))
    assert sorted(counter.snapshot()) == ["1", "2"]


def test_rtcp_dtls_and_stun_not_rtp():
    receiver_report = struct.pack("!BBHL", 0x80, 201, 1, 1234)
    assert not is_rtp(receiver_report + bytes(8))
    assert not is_rtp(bytes([22, 254, 253]) + bytes(20))  # DTLS handshake
    assert not is_rtp(bytes([0, 1, 0, 0]) + bytes(16))  # STUN binding request
    assert is_rtp(rtp(5, marker=True))
