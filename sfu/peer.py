"""One participant's peer connection to the SFU."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
from collections.abc import Callable

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.rtcicetransport import RTCIceCandidate

from .bandwidth import watch_subscriber_remb
from .forwarder import TrackForwarder
from .frames import DirectFrameSink, passthrough_installed
from .jitter import HoleSkippingJitterBuffer, ImmediateAudioBuffer
from .rtpsend import FrameSender
from .slot import SlotTrack
from .stats import counters

logger = logging.getLogger(__name__)

DATA_CHANNEL_LABEL = "state"
# RFC 8839 section 5.1: foundation, component, transport, priority, address,
# port, "typ" and the candidate type, then optional attributes.
CANDIDATE_PATTERN = re.compile(
    r"\S{1,32} \d{1,3} (?i:udp|tcp) \d{1,10} \S{1,255} \d{1,5} typ [a-z]{4,5}( |$)"
)
MAX_DATA_MESSAGE = 16 * 1024


class OfferError(ValueError):
    """The offer is not valid SDP or does not have the layout the SFU expects."""


@dataclasses.dataclass
class Slot:
    index: int
    audio: SlotTrack
    video: SlotTrack
    audio_mid: str | None = None
    video_mid: str | None = None
    publisher_id: str | None = None


def codec_preferences(kind: str, mime_type: str) -> list[RTCRtpCodecCapability]:
    """Return the one codec allowed for ``kind``, with its retransmission codec."""
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in codecs if c.mimeType.lower() == mime_type.lower()]
    if not chosen:
        raise ValueError(f"codec {mime_type!r} is not supported by aiortc")
    rtx = [c for c in codecs if c.mimeType.lower() == f"{kind}/rtx"]
    return chosen + rtx


def describe(error: Exception) -> str:
    # aiortc raises some errors, assertions among them, without a message.
    return str(error) or type(error).__name__


def usable_address(address: str) -> bool:
    """Tell whether a candidate address may receive connectivity checks.

    Multicast, broadcast and unspecified addresses would make the server send
    STUN packets where no peer can be. Host names (browsers hide their
    addresses behind mDNS ``.local`` names) are left to aioice to resolve.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return not (
        ip.is_multicast
        or ip.is_unspecified
        or ip == ipaddress.IPv4Address("255.255.255.255")
    )


def publisher_ssrcs(description: aiortc_sdp.SessionDescription) -> dict[str, int]:
    """Map each media section's mid to its primary SSRC, skipping RTX SSRCs."""
    result = {}
    for media in description.media:
        mid = media.rtp.muxId
        fid = next((g for g in media.ssrc_group if g.semantic == "FID"), None)
        if fid is not None and fid.items:
            result[mid] = int(fid.items[0])
        elif media.ssrc:
            result[mid] = media.ssrc[0].ssrc
    return result


def check_layout(description: aiortc_sdp.SessionDescription, max_slots: int) -> int:
    """Check the offer's media sections and return its number of slots.

    Audio and video sections must come as the participant's own audio and
    video, then pairs of receive-only audio and video. The data channel's
    section may sit anywhere: browsers and aiortc place it differently.
    """
    for section in description.media:
        if not section.dtls or not section.dtls.fingerprints:
            raise OfferError(
                "Every media section of the offer needs a DTLS fingerprint."
            )
        if (
            not section.ice
            or not section.ice.usernameFragment
            or not section.ice.password
        ):
            raise OfferError("Every media section of the offer needs ICE credentials.")
    media = [m for m in description.media if m.kind != "application"]
    if len(description.media) - len(media) > 1:
        raise OfferError("The offer may have at most one data channel section.")
    if [m.kind for m in media[:2]] != ["audio", "video"]:
        raise OfferError("The offer must start with one audio and one video section.")
    rest = media[2:]
    if len(rest) % 2 or len(rest) // 2 > max_slots:
        raise OfferError(
            f"The offer must have at most {max_slots} pairs of receive-only "
            "audio and video sections after its own media."
        )
    for i in range(0, len(rest), 2):
        audio, video = rest[i], rest[i + 1]
        kinds = (audio.kind, video.kind)
        if kinds != ("audio", "video") or {audio.direction, video.direction} != {
            "recvonly"
        }:
            raise OfferError(
                f"Receive slot {i // 2} must be a receive-only audio section "
                "followed by a receive-only video section."
            )
    return len(rest) // 2


class Peer:
    """Publishes one participant's media and carries everyone else's to it."""

    def __init__(
        self,
        participant_id: str,
        configuration: RTCConfiguration,
        video_codec: str = "video/VP8",
    ) -> None:
        self.id = participant_id
        self.pc = RTCPeerConnection(configuration)
        self.video_codec = video_codec
        self.slots: list[Slot] = []
        self.forwarders: dict[str, TrackForwarder] = {}
        self._sinks: dict[str, DirectFrameSink] = {}
        self.channel: RTCDataChannel | None = None
        # Whether the participant asked for no video, e.g. from a hidden tab.
        self.video_paused = False
        # Called with None for a message that is binary or too large.
        self.on_message: Callable[[Peer, str | None], None] | None = None
        self.on_channel_open: Callable[[Peer], None] | None = None
        self.on_failed: Callable[[Peer], None] | None = None
        self._closed = False
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        counters.peer_connections += 1

    def __repr__(self) -> str:
        return f"Peer({self.id})"

    async def answer(self, offer_sdp: str, max_slots: int) -> str:
        """Apply the participant's offer and return the SDP answer.

        A later offer on the same connection may add receive slots; it must
        keep every section the earlier offers had.
        """
        try:
            description = aiortc_sdp.SessionDescription.parse(offer_sdp)
        except Exception as exc:  # the parser raises many kinds of errors
            raise OfferError(f"The offer is not valid SDP: {describe(exc)}") from exc
        slot_count = check_layout(description, max_slots)
        if slot_count < len(self.slots):
            raise OfferError(
                f"The offer has {slot_count} receive slots; it may add slots "
                f"but not remove any of the {len(self.slots)} negotiated."
            )
        first = not self.pc.getTransceivers()
        self._add_transceivers(first, slot_count)

        try:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=offer_sdp, type="offer")
            )
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError, OperationError, ...
            raise OfferError(
                f"The offer could not be applied: {describe(exc)}"
            ) from exc

        if first:
            self._start_forwarders(publisher_ssrcs(description))
        transceivers = self.pc.getTransceivers()
        for slot in self.slots:
            slot.audio_mid = transceivers[2 + 2 * slot.index].mid
            slot.video_mid = transceivers[3 + 2 * slot.index].mid
        logger.debug("- %r answered with %d slots", self, slot_count)
        return self.pc.localDescription.sdp

    def _add_transceivers(self, first: bool, slot_count: int) -> None:
        audio_codecs = codec_preferences("audio", "audio/opus")
        video_codecs = codec_preferences("video", self.video_codec)
        # aiortc pairs offered sections with transceivers of the same kind in
        # the order they were added, so this order mirrors the offer's.
        if first:
            for kind, codecs in (("audio", audio_codecs), ("video", video_codecs)):
                transceiver = self.pc.addTransceiver(kind, direction="recvonly")
                transceiver.setCodecPreferences(codecs)
                if passthrough_installed():
                    self._sinks[kind] = self._replace_receiver_parts(transceiver)
        for index in range(len(self.slots), slot_count):
            slot = Slot(index, SlotTrack("audio"), SlotTrack("video"))
            for track, codecs in (
                (slot.audio, audio_codecs),
                (slot.video, video_codecs),
            ):
                transceiver = self.pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(codecs)
                self._prepare_sender(transceiver, slot, track)
            self.slots.append(slot)

    def _replace_receiver_parts(
        self, transceiver: RTCRtpTransceiver
    ) -> DirectFrameSink:
        """Give a receiver jitter buffers that do not wait, and the direct sink.

        Both replace private attributes of aiortc 1.16.0's RTCRtpReceiver
        before it starts: the receiver creates its decoder thread with the
        queue it has then.
        """
        receiver = transceiver.receiver
        jitter_buffer: HoleSkippingJitterBuffer | None = None
        if transceiver.kind == "video":
            jitter_buffer = HoleSkippingJitterBuffer()
            receiver._RTCRtpReceiver__jitter_buffer = jitter_buffer  # type: ignore[attr-defined]
        else:
            receiver._RTCRtpReceiver__jitter_buffer = ImmediateAudioBuffer()  # type: ignore[attr-defined]
        sink = DirectFrameSink(jitter_buffer)
        receiver._RTCRtpReceiver__decoder_queue = sink  # type: ignore[attr-defined]
        return sink

    def _prepare_sender(
        self, transceiver: RTCRtpTransceiver, slot: Slot, track: SlotTrack
    ) -> None:
        sender = transceiver.sender
        # One stream id per slot lets the browser lip-sync its audio and video.
        # aiortc gives every sender of a connection the same id otherwise.
        sender._stream_id = f"{self.id}-{slot.index}"
        if passthrough_installed():
            track.sender = FrameSender(sender, track.on_sender_started)
        if track.kind == "video":
            # A subscriber's PLI or FIR goes to the publisher, and so does its
            # bandwidth estimate; aiortc would hand both to its unused encoder.
            sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
            watch_subscriber_remb(sender, track.on_estimate)

    def _start_forwarders(self, ssrcs: dict[str, int]) -> None:
        for transceiver in self.pc.getTransceivers()[:2]:
            track = transceiver.receiver.track
            if track is None:
                continue
            forwarder = TrackForwarder(
                track, transceiver.receiver, ssrcs.get(transceiver.mid), self.id
            )
            self.forwarders[transceiver.kind] = forwarder
            sink = self._sinks.get(transceiver.kind)
            if sink is not None:
                sink.on_frame = forwarder.push

    async def add_candidate(
        self, text: str | None, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        """Add one of the participant's trickled ICE candidates.

        ``None`` marks the end of the participant's candidates.
        """
        candidate: RTCIceCandidate | None = None
        if text is not None:
            value = text.removeprefix("candidate:")
            if not CANDIDATE_PATTERN.match(value):
                raise OfferError(f"The ICE candidate is not valid: {text[:80]!r}")
            try:
                candidate = aiortc_sdp.candidate_from_sdp(value)
            except (ValueError, IndexError, AssertionError) as exc:
                # aiortc checks candidate fields with assert.
                raise OfferError(
                    f"The ICE candidate is not valid: {describe(exc)}"
                ) from exc
            if not usable_address(candidate.ip):
                raise OfferError(
                    f"The ICE candidate's address {candidate.ip[:64]!r} cannot be used."
                )
            candidate.sdpMid = sdp_mid
            candidate.sdpMLineIndex = sdp_mline_index
            counters.trickled_candidates += 1
        await self.pc.addIceCandidate(candidate)

    def track_map(self) -> dict[str, str | None]:
        """Return the publisher of each slot, keyed by the slot's mids."""
        mids: dict[str, str | None] = {}
        for slot in self.slots:
            for mid in (slot.audio_mid, slot.video_mid):
                if mid is not None:
                    mids[mid] = slot.publisher_id
        return mids

    def free_slot(self) -> Slot | None:
        return next((s for s in self.slots if s.publisher_id is None), None)

    def slot_of(self, publisher_id: str) -> Slot | None:
        return next((s for s in self.slots if s.publisher_id == publisher_id), None)

    def send(self, text: str) -> bool:
        """Send a data-channel message; return False if the channel is not open."""
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return False
        channel.send(text)
        return True

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != DATA_CHANNEL_LABEL or self.channel is not None:
            logger.warning(
                "x %r opened an unexpected data channel %r; closing it",
                self,
                channel.label[:64],
            )
            channel.close()
            return
        self.channel = channel
        channel.on("message", self._on_channel_message)
        if channel.readyState == "open":
            self._channel_opened()
        else:
            channel.on("open", self._channel_opened)

    def _channel_opened(self) -> None:
        if self.on_channel_open is not None:
            self.on_channel_open(self)

    def _on_channel_message(self, message: str | bytes) -> None:
        if self.on_message is None:
            return
        if isinstance(message, bytes) or len(message) > MAX_DATA_MESSAGE:
            self.on_message(self, None)
        else:
            self.on_message(self, message)

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("- %r connection %s", self, state)
        if state in ("failed", "closed") and self.on_failed is not None:
            self.on_failed(self)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for forwarder in self.forwarders.values():
            await forwarder.stop()
        for slot in self.slots:
            slot.audio.stop()
            slot.video.stop()
        await self.pc.close()
        counters.peer_connections -= 1
        logger.debug("- %r closed", self)
