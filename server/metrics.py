"""Prometheus metrics in the text exposition format, and the event-loop lag probe.

Every process (the front and each worker) reports its own numbers, from
`server.app.local_stats`. The front adds them up and `render` writes the
exposition.
Counters restart from zero when a worker restarts, which Prometheus' rate()
treats as a counter reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

LAG_INTERVAL = 0.5  # seconds between two event-loop lag probes

# SFU counter name -> (metric name, help text). Each is a Prometheus counter.
SFU_COUNTERS = {
    "rtp_packets_forwarded": (
        "coworking_rtp_packets_forwarded_total",
        "RTP packets sent to subscribers, retransmissions excluded.",
    ),
    "rtp_bytes_forwarded": (
        "coworking_rtp_bytes_forwarded_total",
        "Bytes of SRTP packets sent to subscribers, retransmissions excluded.",
    ),
    "frames_received": (
        "coworking_frames_received_total",
        "Frames received from publishers.",
    ),
    "frames_forwarded": (
        "coworking_frames_forwarded_total",
        "Frames sent to subscribers.",
    ),
    "frames_dropped": (
        "coworking_frames_dropped_total",
        "Frames not sent to a subscriber, while waiting for a keyframe or a"
        " free socket buffer.",
    ),
    "keyframe_requests": (
        "coworking_keyframe_requests_total",
        "Keyframe requests (PLI) sent to publishers.",
    ),
    "retransmissions": (
        "coworking_rtp_retransmissions_total",
        "RTP packets sent again after a subscriber's NACK.",
    ),
}

# Gauge name in a process report -> (metric name, help text).
GAUGES = {
    "rooms": ("coworking_rooms", "Rooms with at least one participant."),
    "participants": ("coworking_participants", "Participants in all rooms."),
    "published_tracks": (
        "coworking_published_tracks",
        "Audio and video tracks that participants send to the server.",
    ),
    "forwarded_tracks": (
        "coworking_forwarded_tracks",
        "Receive-slot tracks that carry another participant's media.",
    ),
    "subscriptions": (
        "coworking_subscriptions",
        "Slot tracks that publishers' forwarders push frames to. Each ends"
        " when its subscriber leaves or is moved to another publisher.",
    ),
    "peer_connections": (
        "coworking_peer_connections",
        "Open WebRTC peer connections.",
    ),
}


class LoopLagProbe:
    """Measures how late the event loop wakes a task that sleeps LAG_INTERVAL.

    A late wake-up means that callbacks, media forwarding included, wait that
    long too. `lag` is the latest measure and `max_lag` the largest since the
    last call to `take_max`.
    """

    def __init__(self) -> None:
        self.lag = 0.0
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def take_max(self) -> float:
        value, self.max_lag = self.max_lag, self.lag
        return value

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.lag = max(0.0, loop.time() - expected)
            self.max_lag = max(self.max_lag, self.lag)


def room_gauges(rooms: Iterable[Any]) -> dict[str, int]:
    """Count participants and tracks in a process's open rooms."""
    gauges = {"rooms": 0, "participants": 0, "published_tracks": 0}
    gauges["forwarded_tracks"] = 0
    gauges["subscriptions"] = 0
    for room in rooms:
        gauges["rooms"] += 1 if room.participants else 0
        gauges["participants"] += len(room.participants)
        for peer in room.router.peers.values():
            gauges["published_tracks"] += len(peer.forwarders)
            gauges["subscriptions"] += sum(
                f.subscriber_count for f in peer.forwarders.values()
            )
            for slot in peer.slots:
                tracks = (slot.audio, slot.video)
                gauges["forwarded_tracks"] += sum(
                    1 for track in tracks if track.source is not None
                )
    return gauges


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(
    lines: list[str], name: str, kind: str, text: str, samples: list[tuple[str, Any]]
) -> None:
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lines.append(f"{name}{labels} {value}")


def render(reports: Mapping[str, Mapping[str, Any]], websockets: int) -> str:
    """Write the exposition for process reports keyed by process name.

    `websockets` is the number of client WebSockets: the front's own, because
    a worker's sockets are the front's relays of those same connections.
    """
    lines: list[str] = []
    for key, (name, text) in GAUGES.items():
        total = sum(report["gauges"].get(key, 0) for report in reports.values())
        _family(lines, name, "gauge", text, [("", total)])
    _family(
        lines,
        "coworking_websocket_connections",
        "gauge",
        "Open signalling WebSockets of clients.",
        [("", websockets)],
    )
    for key, (name, text) in SFU_COUNTERS.items():
        total = sum(report["sfu"].get(key, 0) for report in reports.values())
        _family(lines, name, "counter", text, [("", total)])
    per_process = [
        (f'{{process="{_escape(process)}"}}', report)
        for process, report in sorted(reports.items())
    ]
    _family(
        lines,
        "coworking_event_loop_lag_seconds",
        "gauge",
        f"Largest delay of a {LAG_INTERVAL} s timer on the process's event loop"
        " since the previous scrape.",
        [(labels, f"{r['loop_lag']:.6f}") for labels, r in per_process],
    )
    _family(
        lines,
        "coworking_process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the process.",
        [(labels, f"{r['process']['cpu_seconds']:.3f}") for labels, r in per_process],
    )
    _family(
        lines,
        "coworking_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        [(labels, r["process"]["rss_bytes"]) for labels, r in per_process],
    )
    return "\n".join(lines) + "\n"
