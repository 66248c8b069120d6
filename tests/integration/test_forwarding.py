"""Media through the real server between scripted aiortc peers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription

import sfu.frames
import sfu.ice
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets, vp8_clip
from tests.support.server import ServerProcess

CLIP = vp8_clip(frames=60)
TONE = opus_packets(seconds=1.0)


@pytest.fixture(scope="module", autouse=True)
def passthrough_peers() -> None:
    # The scripted peers in this process send pre-encoded frames and receive
    # frames still encoded, so what arrives can be compared byte for byte.
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])


def publisher_tracks() -> dict[str, LoopTrack]:
    return {
        "audio": LoopTrack("audio", TONE, 0.02),
        "video": LoopTrack("video", CLIP, 1 / 30),
    }


async def wait_until(condition, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def test_frames_arrive_bit_exact(server: ServerProcess) -> None:
    room = await server.create_room()
    token = room["guest"].token
    alice = Bot(server.url, room["room"].id, token, "Alice", **publisher_tracks())
    bob = Bot(server.url, room["room"].id, token, "Bob")
    try:
        await alice.join()
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 45, timeout=15)
        await wait_until(lambda: len(bob.frames_from(alice.id, "audio")) >= 25)
    finally:
        await bob.close()
        await alice.close()

    received = bob.frames_from(alice.id)
    sent = set(alice.video.sent)
    assert received[0].keyframe
    assert all(frame.data in sent for frame in received)
    audio = bob.frames_from(alice.id, "audio")
    assert all(frame.data in set(alice.audio.sent) for frame in audio)

    stats = await server.stats()
    assert stats["sfu"]["passthrough_decoders"] >= 2
    assert stats["sfu"]["encode_attempts"] == 0


async def test_slots_grow_on_request(server: ServerProcess) -> None:
    room = await server.create_room()
    token = room["guest"].token
    room_id = room["room"].id
    # Alice offers a single receive slot, so a second publisher needs more.
    alice = Bot(server.url, room_id, token, "Alice", slots=1)
    bob = Bot(server.url, room_id, token, "Bob", **publisher_tracks())
    carol = Bot(server.url, room_id, token, "Carol", **publisher_tracks())
    try:
        await alice.join()
        await bob.join()
        await carol.join()
        await wait_until(lambda: len(alice.frames_from(bob.id)) >= 10)
        await wait_until(lambda: len(alice.frames_from(carol.id)) >= 10)
    finally:
        await carol.close()
        await bob.close()
        await alice.close()

    requests = [m for m in alice.ws_messages if m["type"] == "slots"]
    assert requests
    assert requests[0]["count"] > 1
    assert alice.slot_count == requests[-1]["count"]
    assert [m["type"] for m in alice.ws_messages].count("answer") == 2


async def test_trickled_candidates_connect(server: ServerProcess) -> None:
    room = await server.create_room()
    token, room_id = room["guest"].token, room["room"].id
    alice = Bot(server.url, room_id, token, "Alice", **publisher_tracks())
    bob = Bot(server.url, room_id, token, "Bob")
    alice.trickle = bob.trickle = True
    before = (await server.stats())["sfu"]["trickled_candidates"]
    try:
        await alice.join()
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 10, timeout=15)
    finally:
        await bob.close()
        await alice.close()

    errors = [m for m in bob.ws_messages if m["type"] == "error"]
    assert not errors
    assert len(bob.frames_from(alice.id)) >= 10
    # Each bot has one host candidate on 127.0.0.1.
    after = (await server.stats())["sfu"]["trickled_candidates"]
    assert after - before >= 2


async def test_lost_packet_stalls_under_one_second(server: ServerProcess) -> None:
    room = await server.create_room()
    token, room_id = room["guest"].token, room["room"].id
    alice = Bot(
        server.url, room_id, token, "Alice", video=LoopTrack("video", CLIP, 1 / 30)
    )
    bob = Bot(server.url, room_id, token, "Bob")
    try:
        await alice.join()
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 15, timeout=15)
        drop_one_video_packet_for_good(alice)
        await asyncio.sleep(4)
        arrivals = list(bob.arrival_times(alice.id))
    finally:
        await bob.close()
        await alice.close()

    gaps = [arrivals[i + 1] - arrivals[i] for i in range(len(arrivals) - 1)]
    # The clip has a keyframe every second and cannot answer a PLI, so the
    # picture resumes at the next one; aiortc's own buffer stalls for seconds.
    assert max(gaps) < 1.5
    assert arrivals[-1] - arrivals[0] > 4


def drop_one_video_packet_for_good(bot: Bot) -> None:
    """Drop the publisher's next video RTP packet and never retransmit it."""
    video = bot.pc.getTransceivers()[1]
    payload_type = video.sender._RTCRtpSender__rtx_payload_type
    video.sender._retransmit = _no_retransmit
    transport = video.sender.transport
    send = transport._send_rtp
    dropped = False

    async def send_rtp(data: bytes) -> None:
        nonlocal dropped
        is_rtcp = 192 <= data[1] <= 223
        if not dropped and not is_rtcp and (data[1] & 0x7F) != payload_type:
            if len(data) > 200:
                dropped = True
                return
        await send(data)

    transport._send_rtp = send_rtp


async def _no_retransmit(sequence_number: int) -> None:
    return None


async def test_lost_packets_retransmitted(server: ServerProcess) -> None:
    room = await server.create_room()
    token, room_id = room["guest"].token, room["room"].id
    alice = Bot(
        server.url, room_id, token, "Alice", video=LoopTrack("video", CLIP, 1 / 30)
    )
    # One slot: aiortc 1.16.0 routes a retransmission (RTX) packet by its SSRC
    # or, when only one receiver has its payload type, by that, so a
    # scripted subscriber with several video slots drops retransmissions.
    bob = Bot(server.url, room_id, token, "Bob", slots=1)
    try:
        await alice.join()
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 5, timeout=15)
        before = (await server.stats())["sfu"]["retransmissions"]
        dropped = drop_every_nth_video_packet(bob, 10)
        start = len(bob.frames_from(alice.id))
        await asyncio.sleep(3)
        received = bob.frames_from(alice.id)[start:]
        retransmitted = (await server.stats())["sfu"]["retransmissions"] - before
    finally:
        await bob.close()
        await alice.close()

    assert dropped[0] >= 5
    assert retransmitted >= dropped[0]
    # Every lost packet came back through a retransmission: no frame is
    # missing and each is the publisher's own.
    assert len(received) >= 80
    assert all(frame.data in set(alice.video.sent) for frame in received)


def drop_every_nth_video_packet(bot: Bot, n: int) -> list[int]:
    """Drop every nth first-time video packet arriving at ``bot``; count them."""
    dropped = [0]
    for transceiver in bot.pc.getTransceivers():
        if transceiver.kind != "video" or transceiver.direction != "recvonly":
            continue
        receiver = transceiver.receiver
        codecs = receiver._RTCRtpReceiver__codecs
        primary = {pt for pt, codec in codecs.items() if codec.name == "VP8"}
        receiver._handle_rtp_packet = dropping_handler(
            receiver._handle_rtp_packet, primary, n, dropped
        )
    return dropped


def dropping_handler(handle, primary: set[int], n: int, dropped: list[int]):
    seen = [0]

    async def handle_packet(packet, arrival_time_ms):
        if packet.payload_type in primary:
            seen[0] += 1
            if seen[0] % n == 0:
                dropped[0] += 1
                return
        await handle(packet, arrival_time_ms)

    return handle_packet


async def test_subscriber_remb_reaches_publisher(server: ServerProcess) -> None:
    room = await server.create_room()
    token, room_id = room["guest"].token, room["room"].id
    alice = Bot(
        server.url, room_id, token, "Alice", video=LoopTrack("video", CLIP, 1 / 30)
    )
    bob = Bot(server.url, room_id, token, "Bob", slots=1)
    estimates: list[int] = []
    try:
        await alice.join()
        watch_publisher_remb(alice, estimates)
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 5, timeout=15)
        await wait_until(lambda: len(estimates) >= 1)
        own = list(estimates)
        # Bob's receiver estimates that its link carries 100 kbit/s, the
        # lowest estimate the server relays.
        for _ in range(3):
            await send_remb(bob, 100_000)
            await asyncio.sleep(0.5)
        await wait_until(lambda: min(estimates) <= 100_000, timeout=5)
    finally:
        await bob.close()
        await alice.close()

    # The server's own estimate of Alice's stream (about 150 kbit/s) is higher.
    assert min(own) > 110_000
    assert min(estimates) == 100_000


def watch_publisher_remb(bot: Bot, estimates: list[int]) -> None:
    """Record every REMB bitrate that reaches the bot's video sender."""
    sender = bot.pc.getTransceivers()[1].sender
    handle = sender._handle_rtcp_packet

    async def handle_rtcp(packet) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            estimates.append(unpack_remb_fci(packet.fci)[0])
        await handle(packet)

    sender._handle_rtcp_packet = handle_rtcp


async def send_remb(bot: Bot, bitrate: int) -> None:
    """Send a REMB for the bot's first video slot, as a slow link would."""
    transceiver = next(
        t
        for t in bot.pc.getTransceivers()
        if t.kind == "video" and t.direction == "recvonly"
    )
    receiver = transceiver.receiver
    media = next(
        m
        for m in SessionDescription.parse(bot.pc.remoteDescription.sdp).media
        if m.rtp.muxId == transceiver.mid
    )
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP,
        ssrc=receiver._RTCRtpReceiver__rtcp_ssrc,
        media_ssrc=0,
        fci=pack_remb_fci(bitrate, [media.ssrc[0].ssrc]),
    )
    await receiver._send_rtcp(packet)


async def test_idle_slots_send_no_reports(server: ServerProcess) -> None:
    room = await server.create_room()
    token, room_id = room["guest"].token, room["room"].id
    alice = Bot(
        server.url, room_id, token, "Alice", video=LoopTrack("video", CLIP, 1 / 30)
    )
    bob = Bot(server.url, room_id, token, "Bob", slots=3)
    reporting: set[int] = set()
    try:
        await alice.join()
        await bob.join()
        transport = bob.pc.getTransceivers()[0].receiver.transport
        handle = transport._handle_rtcp_data

        async def handle_rtcp(data: bytes) -> None:
            for packet in RtcpPacket.parse(data):
                if isinstance(packet, RtcpSrPacket):
                    reporting.add(packet.ssrc)
            await handle(data)

        transport._handle_rtcp_data = handle_rtcp
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 5, timeout=15)
        await asyncio.sleep(3)
    finally:
        await bob.close()
        await alice.close()

    # Of Bob's six slot senders only the one with Alice's video reports.
    assert len(reporting) == 1


async def test_hidden_page_gets_no_video(server: ServerProcess) -> None:
    room = await server.create_room()
    token, room_id = room["guest"].token, room["room"].id
    alice = Bot(server.url, room_id, token, "Alice", **publisher_tracks())
    bob = Bot(server.url, room_id, token, "Bob", slots=1)
    try:
        await alice.join()
        await bob.join()
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= 5, timeout=15)
        bob.channel.send(json.dumps({"type": "view", "video": False}))
        await asyncio.sleep(0.5)
        hidden_video = len(bob.frames_from(alice.id))
        hidden_audio = len(bob.frames_from(alice.id, "audio"))
        await asyncio.sleep(1.5)
        video_while_hidden = len(bob.frames_from(alice.id)) - hidden_video
        audio_while_hidden = len(bob.frames_from(alice.id, "audio")) - hidden_audio
        bob.channel.send(json.dumps({"type": "view", "video": True}))
        shown = len(bob.frames_from(alice.id))
        await wait_until(lambda: len(bob.frames_from(alice.id)) >= shown + 10)
        resumed = bob.frames_from(alice.id)[shown:]
    finally:
        await bob.close()
        await alice.close()

    assert video_while_hidden == 0
    assert audio_while_hidden >= 50
    # aiortc's receiver in the bot held the last frame before the pause until
    # the next one arrived. The first frame sent after the pause is a keyframe.
    assert resumed[1].keyframe


async def test_bad_view_message_rejected(server: ServerProcess) -> None:
    room = await server.create_room()
    bob = Bot(server.url, room["room"].id, room["guest"].token, "Bob")
    try:
        await bob.join()
        await bob.wait_data("roster")
        bob.channel.send(json.dumps({"type": "view", "video": "no"}))
        error = await bob.wait_data("error")
    finally:
        await bob.close()

    assert error["code"] == "bad_message"
    assert "video" in error["message"]
