"""Figures of one measured run, computed from the workers' counters and logs."""

from __future__ import annotations

import bisect
import collections
import statistics
from typing import Any


def stream_totals(snapshot: dict[str, list[dict[str, Any]]]) -> dict[tuple, dict]:
    """Key a subscriber snapshot by (subscriber, publisher, kind)."""
    totals: dict[tuple, dict] = {}
    for subscriber, streams in snapshot.items():
        for stream in streams:
            key = (subscriber, stream["publisher"], stream["kind"])
            entry = totals.setdefault(key, collections.Counter())
            entry.update({k: v for k, v in stream.items() if isinstance(v, int)})
    return totals


def delivery(
    start: dict[str, list[dict[str, Any]]],
    end: dict[str, list[dict[str, Any]]],
    seconds: float,
    publishers: list[str],
) -> dict[str, Any]:
    """Frame rate, loss and validity per subscriber over the window."""
    before = stream_totals(start)
    after = stream_totals(end)
    fps: dict[str, list[float]] = collections.defaultdict(list)
    expected: dict[str, int] = collections.Counter()
    unique: dict[str, int] = collections.Counter()
    gaps = frames = bit_exact = 0
    packets: dict[str, int] = collections.Counter()
    for key, now in after.items():
        subscriber, publisher, kind = key
        if publisher not in publishers:
            continue
        then = before.get(key, collections.Counter())
        delta = {k: now[k] - then.get(k, 0) for k in now}
        if kind == "video":
            fps[subscriber].append(delta["frames"] / seconds)
        expected[subscriber] += delta["expected_packets"]
        unique[subscriber] += delta["unique_packets"]
        packets[kind] += delta["packets"]
        gaps += delta["gaps"]
        frames += delta["frames"]
        bit_exact += delta["bit_exact"]
    mean_fps = {s: statistics.fmean(v) for s, v in fps.items() if v}
    loss = {
        s: max(0, expected[s] - unique[s]) / expected[s] if expected[s] else 0.0
        for s in expected
    }
    decoded = sum(v["decoded"] for v in after.values())
    decode_errors = sum(v["decode_errors"] for v in after.values())
    return {
        "fps_per_subscriber": mean_fps,
        "fps_min": min(mean_fps.values(), default=0.0),
        "fps_lowest_stream": min((min(v) for v in fps.values() if v), default=0.0),
        "loss_per_subscriber": loss,
        "loss_max": max(loss.values(), default=0.0),
        "sequence_gaps": gaps,
        "packets_per_second": {k: v / seconds for k, v in packets.items()},
        "bit_exact_share": bit_exact / frames if frames else 0.0,
        "sampled_decodes": decoded,
        "sampled_decode_errors": decode_errors,
    }


def latency(
    sent: list[dict[str, Any]], received: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Match received frames to sends by content hash and time the hop.

    The clip loops, so a hash recurs once per loop; a received frame belongs
    to the latest send of its hash before its arrival. The arrival is that of
    the frame's last RTP packet at the subscriber, before its jitter buffer.
    """
    sends: dict[tuple[str, str, str], list[float]] = collections.defaultdict(list)
    for publisher in sent:
        for kind in ("video", "audio"):
            for digest, when in publisher.get(kind, {}).get("log", []):
                sends[(publisher["id"], kind, digest)].append(when)
    for times in sends.values():
        times.sort()
    hop: dict[str, list[float]] = collections.defaultdict(list)
    to_track: dict[str, list[float]] = collections.defaultdict(list)
    unmatched = 0
    for streams in received.values():
        for stream in streams:
            for digest, arrival, yielded in stream["log"]:
                times = sends.get((stream["publisher"], stream["kind"], digest))
                index = bisect.bisect_right(times, arrival) if times else 0
                if not index:
                    unmatched += 1
                    continue
                hop[stream["kind"]].append(arrival - times[index - 1])
                to_track[stream["kind"]].append(yielded - times[index - 1])
    result: dict[str, Any] = {"unmatched_frames": unmatched}
    for kind, values in hop.items():
        result[kind] = {
            "frames": len(values),
            "median_ms": statistics.median(values) * 1000,
            "p95_ms": percentile(values, 0.95) * 1000,
            "to_track_median_ms": statistics.median(to_track[kind]) * 1000,
        }
    return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def publisher_totals(sent: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "keyframe_requests": sum(
            p["video"]["keyframe_requests"] for p in sent if "video" in p
        ),
        "schedule_skips": sum(
            p[k]["skips"] for p in sent for k in ("video", "audio") if k in p
        ),
    }
