"""Counting received RTP from the plain header only, for the capacity run.

aiortc's receive path (SRTP, RTP parsing, jitter buffer, NACK generator and
frame assembly, mostly in Python) costs a client several times the server's
CPU per forwarded stream. A sink subscriber keeps ICE and DTLS, but takes each
RTP packet from its UDP socket before STUN parsing and decryption and hands it to
:class:`RtpCounter`. SRTP leaves the RTP header in the clear (RFC 3711), so the
counter reads the sequence number, marker bit and SSRC there and drops the
packet. The marker bit ends a video frame (RFC 7741 for VP8), so the counter
yields frames, packets and losses per stream at a fraction of the cost.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection

HEADER = struct.Struct("!BBHLL")


class StreamCounter:
    """Packets, frames and sequence numbers of one SSRC."""

    __slots__ = ("packets", "frames", "first_seq", "highest_seq")

    def __init__(self, seq: int) -> None:
        self.packets = 0
        self.frames = 0
        self.first_seq = seq
        # Extended over 16-bit wrap-arounds.
        self.highest_seq = seq

    def add(self, seq: int, marker: bool) -> None:
        self.packets += 1
        if marker:
            self.frames += 1
        delta = (seq - self.highest_seq) & 0xFFFF
        if delta and delta < 0x8000:
            self.highest_seq += delta

    def snapshot(self) -> dict[str, int]:
        return {
            "packets": self.packets,
            "frames": self.frames,
            "expected_packets": self.highest_seq - self.first_seq + 1,
        }


class RtpCounter:
    """Counts the RTP packets of one peer connection, per SSRC."""

    def __init__(self) -> None:
        self.streams: dict[int, StreamCounter] = {}

    def count(self, data: bytes) -> None:
        if len(data) < HEADER.size:
            return
        _, second, seq, _, ssrc = HEADER.unpack_from(data)
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = StreamCounter(seq)
        stream.add(seq, bool(second & 0x80))

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {str(ssrc): s.snapshot() for ssrc, s in self.streams.items()}


def is_rtp(data: bytes) -> bool:
    """Tell RTP from RTCP, DTLS and STUN by the first two bytes (RFC 7983, 5761)."""
    return len(data) >= HEADER.size and 127 < data[0] < 192 and not 191 < data[1] < 224


def count_instead_of_receiving(pc: RTCPeerConnection, counter: RtpCounter) -> None:
    """Send the connection's RTP to ``counter`` instead of its receivers.

    Call it once the first local description is set: ICE has gathered its
    sockets then, and with the max-bundle policy every transceiver shares the
    first one's ICE connection. STUN, DTLS and RTCP still take aiortc's path.
    """
    # aiortc 1.16.0 and aioice 0.13: each gathered socket's StunProtocol parses
    # every datagram as STUN first and passes the rest on to the Connection.
    connection: Any = pc.getTransceivers()[0].receiver.transport.transport._connection
    for protocol in connection._protocols:
        protocol.datagram_received = counting_receiver(
            protocol.datagram_received, counter
        )


def counting_receiver(
    receive: Callable[[bytes, tuple[Any, ...]], None], counter: RtpCounter
) -> Callable[[bytes, tuple[Any, ...]], None]:
    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if is_rtp(data):
            counter.count(data)
        else:
            receive(data, addr)

    return datagram_received
