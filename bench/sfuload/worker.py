"""A client process of the benchmark: all publishers, or a share of subscribers.

Started by the orchestrator as ``python -m bench.sfuload.worker CONFIG_JSON``.
It writes one JSON object per line to stdout (events and replies) and reads
one command per line from stdin, so its CPU time is never counted as the
server's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import sfu.estimator

from .clips import Clip, content_hash, read_clip
from .coworking import CoworkingParticipant
from .janus import JanusPublisher, JanusSession, JanusSubscriber
from .media import (
    ClipTrack,
    SampleDecoder,
    StreamStats,
    install_keep_encoded,
    use_loopback,
)
from .sink import RtpCounter

logger = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
LATE_JOIN_TIMEOUT = 20.0


class Subscriber(Protocol):
    started_at: float
    answered_at: float
    connected_at: float

    def received(self) -> list[StreamStats]: ...

    async def close(self) -> None: ...


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def read_commands() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


def load_clips(config: dict[str, Any]) -> tuple[Clip, Clip | None]:
    video = read_clip(Path(config["video_clip"]), "video", config["fps"])
    audio = None
    if config["audio"]:
        audio = read_clip(Path(config["audio_clip"]), "audio", 50)
    return video, audio


class PublisherWorker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.video_clip, self.audio_clip = load_clips(config)
        self.publishers: list[Any] = []
        self.tracks: list[tuple[str, ClipTrack, ClipTrack | None]] = []
        self.janus: JanusSession | None = None

    async def start(self) -> None:
        count = self.config["count"]
        frames = len(self.video_clip.frames)
        if self.config["target"] == "janus":
            self.janus = JanusSession(self.config["janus_url"])
            await self.janus.create()
        for index in range(count):
            # Spread the publishers over the clip so keyframes do not coincide.
            start = index * frames // count
            video = ClipTrack(self.video_clip, start)
            audio = None
            if self.audio_clip is not None:
                audio = ClipTrack(
                    self.audio_clip, index * len(self.audio_clip.frames) // count
                )
            name = f"pub-{index}"
            publisher: Any
            if self.janus is not None:
                publisher = JanusPublisher(
                    self.janus, self.config["janus_room"], name, video, audio
                )
            else:
                publisher = CoworkingParticipant(
                    self.config["base_url"],
                    self.config["room"],
                    self.config["token"],
                    name,
                    video=video,
                    audio=audio,
                )
            await publisher.join()
            self.publishers.append(publisher)
            self.tracks.append((publisher.id, video, audio))
        emit("ready", ids=[p.id for p in self.publishers])

    def report(self, path: str) -> None:
        result = []
        for publisher_id, video, audio in self.tracks:
            entry: dict[str, Any] = {"id": publisher_id}
            for kind, track in (("video", video), ("audio", audio)):
                if track is None:
                    continue
                entry[kind] = {
                    "sent": track.sent,
                    "keyframe_requests": track.keyframe_requests,
                    "skips": track.skips,
                    "log": track.log,
                }
            result.append(entry)
        Path(path).write_text(json.dumps(result))

    def totals(self) -> dict[str, int]:
        """Return the video frames sent so far and how often a clip skipped ahead."""
        return {
            "frames": sum(video.sent for _, video, _ in self.tracks),
            "skips": sum(video.skips for _, video, _ in self.tracks),
            "keyframe_requests": sum(
                video.keyframe_requests for _, video, _ in self.tracks
            ),
        }

    async def close(self) -> None:
        for publisher in self.publishers:
            await publisher.close()
        if self.janus is not None:
            await self.janus.close()


class SubscriberWorker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        video, audio = load_clips(config)
        self.known_hashes = {"video": {content_hash(f) for f in video.frames}}
        if audio is not None:
            self.known_hashes["audio"] = {content_hash(f) for f in audio.frames}
        self.decoder = SampleDecoder()
        self.subscribers: dict[str, Subscriber] = {}
        self.janus: JanusSession | None = None

    def expected_streams(self) -> set[tuple[str, str]]:
        kinds = ["video", "audio"] if self.config["audio"] else ["video"]
        return {(p, k) for p in self.config["publishers"] for k in kinds}

    async def new_subscriber(self, name: str) -> Subscriber:
        subscriber: Any
        if self.config["target"] == "janus":
            if self.janus is None:
                self.janus = JanusSession(self.config["janus_url"])
                await self.janus.create()
            subscriber = JanusSubscriber(
                self.janus,
                self.config["janus_room"],
                name,
                self.known_hashes,
                self.decoder,
            )
            await subscriber.join(self.config["publishers"])
        else:
            subscriber = CoworkingParticipant(
                self.config["base_url"],
                self.config["room"],
                self.config["token"],
                name,
                known_hashes=self.known_hashes,
                decoder=self.decoder,
            )
            await subscriber.join()
        return subscriber

    def complete(self, subscriber: Subscriber, keyframe: bool = False) -> bool:
        """Return whether every expected stream has delivered a (key)frame."""
        seen = {
            (s.publisher, s.kind)
            for s in subscriber.received()
            if (s.first_keyframe_at if keyframe and s.kind == "video" else s.frames)
        }
        return self.expected_streams() <= seen

    async def start(self) -> None:
        for name in self.config["names"]:
            self.subscribers[name] = await self.new_subscriber(name)
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(self.complete(s) for s in self.subscribers.values()):
            if time.monotonic() > deadline:
                missing = {
                    name: sorted(
                        self.expected_streams()
                        - {(s.publisher, s.kind) for s in sub.received() if s.frames}
                    )
                    for name, sub in self.subscribers.items()
                }
                raise TimeoutError(
                    f"streams missing after {READY_TIMEOUT} s: {missing}"
                )
            await asyncio.sleep(0.1)
        emit(
            "ready",
            join_seconds={
                name: s.answered_at - s.started_at
                for name, s in self.subscribers.items()
            },
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            name: [s.snapshot() for s in sub.received()]
            for name, sub in self.subscribers.items()
        }

    def report(self, path: str, since: float, until: float) -> None:
        result = {
            name: [
                {
                    "publisher": s.publisher,
                    "kind": s.kind,
                    "log": [e for e in s.log if since <= e[1] <= until],
                }
                for s in sub.received()
            ]
            for name, sub in self.subscribers.items()
        }
        Path(path).write_text(json.dumps(result))

    async def late_join(self, name: str) -> dict[str, Any]:
        """Join one more subscriber and time its first keyframe per publisher."""
        subscriber = await self.new_subscriber(name)
        deadline = time.monotonic() + LATE_JOIN_TIMEOUT
        while not self.complete(subscriber, keyframe=True):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        start = subscriber.started_at
        video = [s for s in subscriber.received() if s.kind == "video" and s.publisher]
        first_packet = {
            s.publisher: s.first_packet_at - start
            for s in video
            if s.first_packet_at is not None
        }
        first_keyframe = {
            s.publisher: s.first_keyframe_at - start
            for s in video
            if s.first_keyframe_at is not None
        }
        await subscriber.close()
        connected = subscriber.connected_at
        return {
            "answer_seconds": subscriber.answered_at - start,
            "connected_seconds": connected - start if connected else None,
            "first_packet_seconds": first_packet,
            "first_keyframe_seconds": first_keyframe,
            "publishers": len(self.config["publishers"]),
        }

    async def close(self) -> None:
        for subscriber in self.subscribers.values():
            await subscriber.close()
        if self.janus is not None:
            await self.janus.close()
        self.decoder.close()


class SinkWorker:
    """Subscribers of this server that count RTP headers (bench/sfuload/sink.py)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.subscribers: dict[str, CoworkingParticipant] = {}
        self.counters: dict[str, RtpCounter] = {}

    async def start(self) -> None:
        for name in self.config["names"]:
            counter = RtpCounter()
            subscriber = CoworkingParticipant(
                self.config["base_url"],
                self.config["room"],
                self.config["token"],
                name,
                counter=counter,
            )
            await subscriber.join()
            self.subscribers[name] = subscriber
            self.counters[name] = counter
        publishers = len(self.config["publishers"])
        deadline = time.monotonic() + READY_TIMEOUT
        while any(len(c.streams) < publishers for c in self.counters.values()):
            if time.monotonic() > deadline:
                seen = {n: len(c.streams) for n, c in self.counters.items()}
                raise TimeoutError(
                    f"streams per subscriber after {READY_TIMEOUT} s: {seen}, "
                    f"expected {publishers}"
                )
            await asyncio.sleep(0.1)
        emit("ready")

    def snapshot(self) -> dict[str, Any]:
        return {name: c.snapshot() for name, c in self.counters.items()}

    async def close(self) -> None:
        for subscriber in self.subscribers.values():
            await subscriber.close()


async def serve(config: dict[str, Any]) -> None:
    use_loopback()
    # Every video receiver builds a bandwidth estimator, and aiortc's own rate
    # counter made the clients of every target slow to set up receivers.
    sfu.estimator.install_window_rate_counter()
    worker: PublisherWorker | SubscriberWorker | SinkWorker
    if config["role"] == "publishers":
        worker = PublisherWorker(config)
    elif config["role"] == "sinks":
        worker = SinkWorker(config)
    else:
        install_keep_encoded()
        worker = SubscriberWorker(config)
    commands = await read_commands()
    await worker.start()
    try:
        while True:
            line = await commands.readline()
            if not line:
                break
            command = json.loads(line)
            name = command["cmd"]
            counts = isinstance(worker, (SubscriberWorker, SinkWorker))
            if name == "snapshot" and counts:
                emit("snapshot", time=time.monotonic(), streams=worker.snapshot())
            elif name == "report" and isinstance(worker, SubscriberWorker):
                worker.report(command["path"], command["since"], command["until"])
                emit("reported")
            elif name == "report" and isinstance(worker, PublisherWorker):
                worker.report(command["path"])
                emit("reported")
            elif name == "totals" and isinstance(worker, PublisherWorker):
                emit("totals", **worker.totals())
            elif name == "late" and isinstance(worker, SubscriberWorker):
                emit("late", **await worker.late_join(command["name"]))
            elif name == "stop":
                break
            else:
                emit("error", message=f"unknown command {name!r}")
    finally:
        await worker.close()
        emit("stopped")


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = json.loads(sys.argv[1])
    try:
        asyncio.run(serve(config))
    except Exception as exc:
        logger.exception("worker failed")
        emit("failed", message=f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
