"""Run the same load against each server under test and print the figures.

For every room size and every repeat, each target in turn gets a fresh room:
one publisher process and one or more subscriber processes join it, the load
warms up, and then a window is measured. After the window a late subscriber
joins and is timed to its first keyframe. Targets rotate their order from one
repeat to the next, and ratios between targets are taken within one repeat,
so that a slow phase of a noisy machine touches all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ifaddr

from . import figures
from .clips import PROFILES, audio_clip_path, video_clip_path
from .targets import (
    CoworkingServer,
    JanusServer,
    WorkerProcess,
    cpu_seconds,
    rss_bytes,
    socket_inodes,
    udp_drops,
)

logger = logging.getLogger(__name__)

TARGETS = ("coworking", "janus", "transcode")
TARGET_LABELS = {
    "coworking": "this server",
    "janus": "Janus 1.1 VideoRoom",
    "transcode": "this server, transcoding",
}
STREAMS_PER_SUBSCRIBER_PROCESS = 24


def parse_size(text: str) -> tuple[int, int]:
    try:
        publishers, subscribers = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: expected PUBLISHERSxSUBSCRIBERS, e.g. 4x3"
        ) from None
    if publishers < 1 or subscribers < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: both must be >= 1")
    return publishers, subscribers


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sfuload",
        description=(
            "Compare this server, Janus VideoRoom and this server's transcoding "
            "baseline under the same pre-encoded load. Run it inside a "
            "loopback-only network namespace; bench/run does that and starts "
            "Janus."
        ),
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="break")
    parser.add_argument(
        "--no-audio",
        action="store_true",
        help="publishers send video only (the focus profile never sends audio)",
    )
    parser.add_argument(
        "--sizes",
        type=lambda s: [parse_size(p) for p in s.split(",")],
        default=[(2, 2), (4, 3), (6, 5)],
        help="comma-separated PUBLISHERSxSUBSCRIBERS room sizes (default 2x2,4x3,6x5)",
    )
    parser.add_argument(
        "--targets",
        type=lambda s: s.split(","),
        default=list(TARGETS),
        help=f"comma-separated servers to load, of {', '.join(TARGETS)} (default all)",
    )
    parser.add_argument("--runs", type=int, default=3, help="repeats per size")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="seconds of load before measuring"
    )
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument(
        "--subscriber-processes",
        type=int,
        default=0,
        help=(
            "processes that share the subscribers; 0 picks one per "
            f"{STREAMS_PER_SUBSCRIBER_PROCESS} received streams"
        ),
    )
    parser.add_argument(
        "--transcode-max-streams",
        type=int,
        default=12,
        help=(
            "skip the transcoding baseline in rooms with more forwarded video "
            "streams than this (default 12): it encodes once per stream and "
            "cannot keep up beyond a few streams per core"
        ),
    )
    parser.add_argument(
        "--no-late-join",
        action="store_true",
        help="skip the late joiner after each window",
    )
    parser.add_argument(
        "--janus-url",
        default="http://127.0.0.1:8088/janus",
        help="Janus HTTP API (default http://127.0.0.1:8088/janus)",
    )
    parser.add_argument(
        "--janus-pid", type=int, help="process id of that Janus, for its CPU time"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="write every run's figures as JSON to this file",
    )
    parser.add_argument("--verbose", action="store_true", help="log progress details")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    if "janus" in args.targets and args.janus_pid is None:
        parser.error("the janus target needs --janus-pid (bench/run passes it)")
    if args.runs < 1 or args.window <= 0 or args.warmup < 0:
        parser.error("--runs must be >= 1, --window > 0 and --warmup >= 0")
    return args


def require_loopback_only() -> None:
    others = [
        ip.ip if isinstance(ip.ip, str) else ip.ip[0]
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
    ]
    others = [a for a in others if a not in ("127.0.0.1", "::1")]
    if others:
        sys.exit(
            f"this network namespace has other addresses ({', '.join(others)}); "
            "run the benchmark through bench/run, or inside "
            "`unshare -n -- sh -c 'ip link set lo up && exec ...'`"
        )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.profile = PROFILES[args.profile]
        self.audio = self.profile.audio and not args.no_audio
        self.folder = Path(tempfile.mkdtemp(prefix="coworking-sfuload-run-"))
        self.video_clip = str(video_clip_path(self.profile))
        self.audio_clip = str(audio_clip_path()) if self.audio else ""

    def server_for(self, target: str, publishers: int, subscribers: int) -> Any:
        if target == "janus":
            return JanusServer(self.args.janus_url, self.args.janus_pid, publishers + 2)
        return CoworkingServer(
            transcode=target == "transcode", room_limit=publishers + subscribers + 2
        )

    def worker_config(self, role: str, target: str, join_info: dict) -> dict:
        return {
            "role": role,
            "target": "janus" if target == "janus" else "coworking",
            "profile": self.profile.name,
            "fps": self.profile.fps,
            "audio": self.audio,
            "video_clip": self.video_clip,
            "audio_clip": self.audio_clip,
            **join_info,
        }

    def subscriber_processes(self, publishers: int, subscribers: int) -> int:
        if self.args.subscriber_processes:
            return min(subscribers, self.args.subscriber_processes)
        streams = publishers * subscribers * (2 if self.audio else 1)
        return min(subscribers, math.ceil(streams / STREAMS_PER_SUBSCRIBER_PROCESS))

    async def measure(
        self, target: str, publishers: int, subscribers: int, tag: str
    ) -> dict[str, Any]:
        """Load one target with a fresh room and return the run's figures."""
        server = self.server_for(target, publishers, subscribers)
        workers: list[WorkerProcess] = []
        await server.start()
        try:
            return await self._measure(
                server, workers, target, publishers, subscribers, tag
            )
        finally:
            for worker in reversed(workers):
                await worker.stop()
            await server.stop()

    async def _measure(
        self,
        server: Any,
        workers: list[WorkerProcess],
        target: str,
        publishers: int,
        subscribers: int,
        tag: str,
    ) -> dict[str, Any]:
        args = self.args
        config = self.worker_config("publishers", target, server.join_info)
        config["count"] = publishers
        publisher_worker = WorkerProcess(config, self.folder / f"{tag}-publishers.log")
        workers.append(publisher_worker)
        publisher_ids = (await publisher_worker.start())["ids"]

        names = [f"sub-{i}" for i in range(subscribers)]
        share = self.subscriber_processes(publishers, subscribers)
        subscriber_workers = []
        for index in range(share):
            config = self.worker_config("subscribers", target, server.join_info)
            config["names"] = names[index::share]
            config["publishers"] = publisher_ids
            log = self.folder / f"{tag}-subscribers-{index}.log"
            subscriber_workers.append(WorkerProcess(config, log))
        workers.extend(subscriber_workers)
        ready = await asyncio.gather(*(w.start() for w in subscriber_workers))
        join_seconds = [s for r in ready for s in r["join_seconds"].values()]
        logger.info("%s: all streams flowing; warming up", tag)
        await asyncio.sleep(args.warmup)

        server_pids = server.pids()
        client_pids = [w.pid for w in workers]
        first = await asyncio.gather(
            *(w.request({"cmd": "snapshot"}, "snapshot") for w in subscriber_workers)
        )
        started = time.monotonic()
        server_cpu = cpu_seconds(server_pids)
        client_cpu = cpu_seconds(client_pids)
        load_average = os.getloadavg()[0]
        drops_before = udp_drops()
        await asyncio.sleep(args.window)
        server_cpu = cpu_seconds(server_pids) - server_cpu
        client_cpu = cpu_seconds(client_pids) - client_cpu
        drops = {
            inode: count - drops_before.get(inode, 0)
            for inode, count in udp_drops().items()
        }
        server_sockets = socket_inodes(server_pids)
        elapsed = time.monotonic() - started
        rss = rss_bytes(server_pids)
        last = await asyncio.gather(
            *(w.request({"cmd": "snapshot"}, "snapshot") for w in subscriber_workers)
        )
        ended = time.monotonic()

        sent_path = self.folder / f"{tag}-sent.json"
        await publisher_worker.request(
            {"cmd": "report", "path": str(sent_path)}, "reported"
        )
        received: dict[str, Any] = {}
        for index, worker in enumerate(subscriber_workers):
            path = self.folder / f"{tag}-received-{index}.json"
            await worker.request(
                {"cmd": "report", "path": str(path), "since": started, "until": ended},
                "reported",
            )
            received.update(json.loads(path.read_text()))
        sent = json.loads(sent_path.read_text())

        late = None
        if not args.no_late_join:
            late = await subscriber_workers[0].request(
                {"cmd": "late", "name": "late-joiner"}, "late"
            )

        start_streams = {k: v for r in first for k, v in r["streams"].items()}
        end_streams = {k: v for r in last for k, v in r["streams"].items()}
        streams = publishers * subscribers
        result = {
            "target": target,
            "publishers": publishers,
            "subscribers": subscribers,
            "audio": self.audio,
            "window_seconds": elapsed,
            "server_cpu_seconds": server_cpu,
            "server_cores": server_cpu / elapsed,
            "server_processes": len(server_pids),
            "ms_per_stream_second": server_cpu * 1000 / (streams * elapsed),
            "server_rss_bytes": rss,
            "client_cores": client_cpu / elapsed,
            "load_average": load_average,
            # Datagrams dropped by full receive buffers during the window.
            "udp_drops_server": sum(
                n for inode, n in drops.items() if inode in server_sockets
            ),
            "udp_drops_clients": sum(
                n for inode, n in drops.items() if inode not in server_sockets
            ),
            "subscriber_processes": share,
            "join_seconds_max": max(join_seconds),
            "delivery": figures.delivery(
                start_streams, end_streams, elapsed, publisher_ids
            ),
            "latency": figures.latency(sent, received),
            "publishers_sent": figures.publisher_totals(sent),
            "late_join": late,
        }
        log_result(tag, result)
        return result

    async def run(self) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for publishers, subscribers in self.args.sizes:
            targets = [
                t
                for t in self.args.targets
                if t != "transcode"
                or publishers * subscribers <= self.args.transcode_max_streams
            ]
            if targets != self.args.targets:
                logger.info(
                    "%dx%d: transcoding baseline skipped (--transcode-max-streams)",
                    publishers,
                    subscribers,
                )
            for repeat in range(self.args.runs):
                shift = repeat % len(targets)
                order = targets[shift:] + targets[:shift]
                for target in order:
                    tag = f"{publishers}x{subscribers}-run{repeat + 1}-{target}"
                    try:
                        result = await self.measure(
                            target, publishers, subscribers, tag
                        )
                    except Exception as exc:  # one failed run must not end the rest
                        logger.error("x %s failed: %s", tag, exc)
                        result = {
                            "target": target,
                            "publishers": publishers,
                            "subscribers": subscribers,
                            "error": f"{type(exc).__name__}: {exc}",
                        }
                    result["repeat"] = repeat
                    results.append(result)
        return results


def late_join_text(late: dict[str, Any] | None) -> str:
    """Describe the late joiner's phases: seconds from its first request."""
    if not late:
        return "no late joiner"
    keyframes = list((late.get("first_keyframe_seconds") or {}).values())
    packets = list((late.get("first_packet_seconds") or {}).values())
    connected = late.get("connected_seconds")
    parts = [f"answer {late['answer_seconds']:.2f}"]
    if connected is not None:
        parts.append(f"connected {connected:.2f}")
    if packets:
        parts.append(f"first video packet {statistics.median(packets):.2f}")
    if keyframes:
        parts.append(
            f"first keyframe {statistics.median(keyframes):.2f} / {max(keyframes):.2f}"
        )
    return "late joiner " + ", ".join(parts) + " s"


def log_result(tag: str, result: dict[str, Any]) -> None:
    delivery = result["delivery"]
    logger.info(
        "%s: %.1f ms/stream-s, %.2f cores, fps min %.1f, loss %.2f%%, "
        "%s, UDP drops %d at the server and %d at clients, "
        "clients %.2f cores, load %.1f",
        tag,
        result["ms_per_stream_second"],
        result["server_cores"],
        delivery["fps_min"],
        delivery["loss_max"] * 100,
        late_join_text(result["late_join"]),
        result["udp_drops_server"],
        result["udp_drops_clients"],
        result["client_cores"],
        result["load_average"],
    )


def median_range(values: list[float], digits: int = 1) -> str:
    if not values:
        return "-"
    text = f"{statistics.median(values):.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
    return text


def ratios(results: list[dict[str, Any]], target: str, other: str) -> list[float]:
    """Return target/other CPU per stream-second for each repeat that has both."""
    by_repeat: dict[tuple, dict[str, float]] = {}
    for r in results:
        if "error" in r:
            continue
        key = (r["publishers"], r["subscribers"], r["repeat"])
        by_repeat.setdefault(key, {})[r["target"]] = r["ms_per_stream_second"]
    return [
        values[target] / values[other]
        for values in by_repeat.values()
        if target in values and other in values
    ]


def table(results: list[dict[str, Any]], audio: bool) -> str:
    unit = "video+audio pair" if audio else "video stream"
    lines = [
        f"| size | server | CPU ms per {unit}-second | cores | ÷ Janus | "
        "÷ transcoding | fps, lowest subscriber | loss, worst subscriber | "
        "bit-exact | late joiner: first keyframe, median / max over publishers | "
        "hop latency, video / audio (median ms) | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    sizes = sorted({(r["publishers"], r["subscribers"]) for r in results})
    for publishers, subscribers in sizes:
        for target in TARGETS:
            runs = [
                r
                for r in results
                if (r["publishers"], r["subscribers"]) == (publishers, subscribers)
                and r["target"] == target
            ]
            if not runs:
                continue
            good = [r for r in runs if "error" not in r]
            size = f"{publishers}x{subscribers}"
            if not good:
                lines.append(
                    f"| {size} | {TARGET_LABELS[target]} | failed: "
                    f"{runs[0]['error'][:80]} |||||||||||"
                )
                continue
            subset = [
                r
                for r in results
                if (r["publishers"], r["subscribers"]) == (publishers, subscribers)
            ]
            to_janus = ratios(subset, target, "janus") if target != "janus" else []
            to_transcode = (
                ratios(subset, target, "transcode") if target != "transcode" else []
            )
            first_keyframes = []
            for r in good:
                late = r.get("late_join") or {}
                first_keyframes.extend(late.get("first_keyframe_seconds", {}).values())
            keyframe_text = "-"
            if first_keyframes:
                keyframe_text = (
                    f"{statistics.median(first_keyframes):.2f} / "
                    f"{max(first_keyframes):.2f} s"
                )
            video_latency = [
                r["latency"]["video"]["median_ms"]
                for r in good
                if "video" in r["latency"]
            ]
            audio_latency = [
                r["latency"]["audio"]["median_ms"]
                for r in good
                if "audio" in r["latency"]
            ]
            latency_text = median_range(video_latency, 0) if video_latency else "-"
            latency_text += " / " + (
                median_range(audio_latency, 0) if audio_latency else "-"
            )
            lines.append(
                "| "
                + " | ".join(
                    [
                        size,
                        TARGET_LABELS[target],
                        median_range([r["ms_per_stream_second"] for r in good]),
                        median_range([r["server_cores"] for r in good], 2),
                        f"{statistics.median(to_janus):.2f}" if to_janus else "-",
                        f"{statistics.median(to_transcode):.2f}"
                        if to_transcode
                        else "-",
                        median_range([r["delivery"]["fps_min"] for r in good]),
                        f"{max(r['delivery']['loss_max'] for r in good) * 100:.2f}%",
                        f"{min(r['delivery']['bit_exact_share'] for r in good):.0%}",
                        keyframe_text,
                        latency_text,
                        median_range([r["server_rss_bytes"] / 2**20 for r in good], 0),
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def describe_machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory} memory, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


async def main_async(args: argparse.Namespace) -> int:
    bench = Bench(args)
    started = time.monotonic()
    results = await bench.run()
    audio = bench.audio
    profile = bench.profile
    print()
    print(
        f"Profile {profile.name}: {profile.width}x{profile.height}, {profile.fps} fps, "
        f"VP8 at about {profile.bitrate // 1000} kbit/s"
        + (", plus Opus" if audio else ", no audio")
        + f"; {args.runs} run(s) per size, {args.warmup:.0f} s warm-up, "
        f"{args.window:.0f} s window"
    )
    print(f"Machine: {describe_machine()}")
    print(f"Command: python -m bench.sfuload {shlex.join(sys.argv[1:])}")
    print(f"Bench time: {time.monotonic() - started:.0f} s; logs in {bench.folder}")
    print()
    print(table(results, audio))
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))
        print(f"\nevery run's figures: {args.output}")
    return 1 if any("error" in r for r in results) else 0


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    require_loopback_only()
    raise SystemExit(asyncio.run(main_async(args)))
