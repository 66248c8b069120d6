"""Sending a slot's frames as RTP at the moment the forwarder hands them over.

aiortc 1.16.0 runs one task per ``RTCRtpSender`` that awaits its track for
each frame, builds an ``RtpPacket`` object per packet, serializes its header
extensions per packet and awaits four coroutines down to the socket. For a
forwarded frame none of that waiting is needed: the frame is already encoded
and the forwarder calls every subscriber in turn. :class:`FrameSender` takes
over the sender's RTP task and writes the packets straight to the ICE
connection's socket, keeping the counters that aiortc's RTCP reports and
retransmissions read.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender, clock
from aiortc.codecs import get_encoder
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensions
from aiortc.utils import random16, random32

from .frames import EncodedFrame
from .stats import counters

logger = logging.getLogger(__name__)

HISTORY_SIZE = 128
# Bytes queued in the socket's transport beyond which frames are dropped:
# the subscriber's path cannot keep up, and a keyframe restarts it.
MAX_WRITE_BUFFER = 256 * 1024
RTP_HEADER = struct.Struct("!BBHLL")
EXTENSION_HEADER = struct.Struct("!HH")
SEQUENCE = struct.Struct("!H")


def extension_header(profile: int, extension: bytes) -> bytes:
    """Return the RTP header extension block (RFC 8285), empty without one."""
    if not extension:
        return b""
    return EXTENSION_HEADER.pack(profile, len(extension) >> 2) + extension


class FrameSender:
    """Sends the frames of one slot track on one aiortc ``RTCRtpSender``.

    ``on_started`` is called once the sender is negotiated and DTLS is up,
    which is when aiortc starts its RTP task.
    """

    def __init__(self, sender: RTCRtpSender, on_started: Callable[[], None]) -> None:
        self._sender = sender
        self._on_started = on_started
        self.ready = False
        self._encoder: Any = None
        self._payload_type = 0
        self._rtx_payload_type: int | None = None
        self._ssrc = 0
        self._mid: str | None = None
        self._extensions: Any = None
        self._sequence = 0
        self._rtx_sequence = 0
        self._origin = 0
        self._history: list[tuple[int, int, int, bytes] | None] = [None] * HISTORY_SIZE
        self._sent_any = asyncio.Event()
        # aiortc starts its tasks through these attributes of the instance.
        sender._run_rtp = self._run  # type: ignore[method-assign]
        sender._run_rtcp = self._run_rtcp  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]

    async def _run(self, codec: RTCRtpCodecParameters) -> None:
        sender = self._sender
        self._encoder = get_encoder(codec)
        self._payload_type = codec.payloadType
        self._rtx_payload_type = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        self._ssrc = sender._ssrc
        self._mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self._extensions = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        self._sequence = random16()
        self._rtx_sequence = random16()
        self._origin = random32()
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        self.ready = True
        self._on_started()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            pass
        finally:
            self.ready = False
            # RTCRtpSender.stop() waits for this.
            sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    async def _run_rtcp(self) -> None:
        """Run aiortc's sender reports once the slot has sent its first packet.

        A slot that never carries media sends no reports: a room has a few
        idle slots per participant, and each would send one every second.
        """
        sender = self._sender
        # RTCRtpSender.stop() waits for this before it cancels the task.
        sender._RTCRtpSender__rtcp_started.set()  # type: ignore[attr-defined]
        try:
            await self._sent_any.wait()
        except asyncio.CancelledError:
            sender._RTCRtpSender__rtcp_exited.set()  # type: ignore[attr-defined]
            return
        await RTCRtpSender._run_rtcp(sender)

    def _socket(self) -> tuple[Any, Any, tuple[str, int]] | None:
        """Return the SRTP session, datagram transport and address, if connected."""
        dtls = self._sender.transport
        if dtls is None or dtls._state != State.CONNECTED:
            return None
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return None
        return dtls._tx_srtp, pair.protocol.transport, pair.remote_addr

    def send(self, frame: EncodedFrame) -> bool:
        """Packetize and send one frame; return False if it was not sent.

        A frame is not sent before the sender starts, after the connection
        closed, or while the socket's outgoing buffer is full.
        """
        if not self.ready:
            return False
        socket = self._socket()
        if socket is None:
            return False
        srtp, transport, address = socket
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            return False

        payloads, timestamp = self._encoder.pack(frame)
        timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        ntp_time = clock.current_ntp_time()
        profile, extension = self._extensions.set(
            HeaderExtensions(mid=self._mid, abs_send_time=(ntp_time >> 14) & 0xFFFFFF)
        )
        extension_block = extension_header(profile, extension)
        first_byte = 0x90 if extension else 0x80

        last = len(payloads) - 1
        sequence = self._sequence
        octets = 0
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == last else 0
            header = RTP_HEADER.pack(
                first_byte,
                marker | self._payload_type,
                sequence,
                timestamp,
                self._ssrc,
            )
            self._history[sequence % HISTORY_SIZE] = (
                sequence,
                marker,
                timestamp,
                payload,
            )
            packet = srtp.protect(header + extension_block + payload)
            transport.sendto(packet, address)
            counters.rtp_packets_forwarded += 1
            counters.rtp_bytes_forwarded += len(packet)
            octets += len(payload)
            sequence = (sequence + 1) & 0xFFFF
        self._sequence = sequence

        # The figures aiortc's RTCP task puts in its sender reports.
        sender = self._sender
        sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += len(payloads)  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
        self._sent_any.set()
        return True

    async def _retransmit(self, sequence_number: int) -> None:
        """Send a packet again that a subscriber reported lost (NACK)."""
        entry = self._history[sequence_number % HISTORY_SIZE]
        if entry is None or entry[0] != sequence_number:
            return
        counters.retransmissions += 1
        socket = self._socket()
        if socket is None:
            return
        srtp, transport, address = socket
        sequence, marker, timestamp, payload = entry

        profile, extension = self._extensions.set(HeaderExtensions(mid=self._mid))
        extension_block = extension_header(profile, extension)
        first_byte = 0x90 if extension else 0x80
        if self._rtx_payload_type is None:
            header = RTP_HEADER.pack(
                first_byte, marker | self._payload_type, sequence, timestamp, self._ssrc
            )
        else:
            # RFC 4588: the retransmission stream carries the original
            # sequence number in front of the payload.
            header = RTP_HEADER.pack(
                first_byte,
                marker | self._rtx_payload_type,
                self._rtx_sequence,
                timestamp,
                self._sender._rtx_ssrc,
            )
            payload = SEQUENCE.pack(sequence) + payload
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF

        transport.sendto(srtp.protect(header + extension_block + payload), address)
