"""How much forwarding this server sustains with 1 room worker against 2.

Several rooms of the same size run at once on one server, and the load rises
from size to size. The server places a room by a hash of its id, and room ids
are picked so that the rooms alternate between the two workers of
``--workers 2``. The same layout is loaded on a server with ``--workers 1``,
where one process hosts every room. Each room gets one process of publishers sending the
profile's pre-encoded video and one or more processes of sink subscribers,
which keep ICE, DTLS and SRTP but count RTP headers instead of receiving the
media (bench/sfuload/sink.py). A sink costs the client less than the server
spends forwarding to it, which leaves the server a larger share of the CPUs.

Run it inside a loopback-only network namespace: ``bench/run capacity``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from server.storage import ROLE_GUEST, SqliteStorage
from server.workers import worker_index

from .clips import PROFILES, video_clip_path
from .orchestrator import describe_machine, parse_size, require_loopback_only
from .targets import (
    CoworkingServer,
    WorkerProcess,
    cpu_seconds,
    socket_inodes,
    udp_drops,
)

logger = logging.getLogger(__name__)

# Streams that one sink process counts before the room gets another process.
STREAMS_PER_SINK_PROCESS = 64
# The workers that the rooms alternate between.
SPREAD_WORKERS = 2


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sfuload.capacity",
        description=(
            "Load this server with several rooms at once, with 1 and with 2 room "
            "worker processes, and print the CPU it uses and what the "
            "subscribers receive as the load rises."
        ),
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="break")
    parser.add_argument(
        "--sizes",
        type=lambda s: [parse_size(p) for p in s.split(",")],
        default=[(4, 4), (6, 6), (8, 8), (10, 10)],
        help="comma-separated PUBLISHERSxSUBSCRIBERS per room, rising "
        "(default 4x4,6x6,8x8,10x10)",
    )
    parser.add_argument(
        "--rooms", type=int, default=2, help="rooms loaded at once (default 2)"
    )
    parser.add_argument(
        "--workers",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 2],
        help="comma-separated room worker counts to compare (default 1,2)",
    )
    parser.add_argument("--runs", type=int, default=1, help="repeats per size")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before measuring"
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--output", type=Path, help="write every run as JSON")
    args = parser.parse_args(argv)
    if args.rooms < 1 or args.runs < 1 or args.window <= 0 or args.warmup < 0:
        parser.error("--rooms and --runs must be >= 1, --window > 0, --warmup >= 0")
    if any(n < 1 for n in args.workers):
        parser.error("--workers takes counts >= 1")
    return args


async def create_rooms(db_path: Path, count: int, limit: int) -> list[dict[str, Any]]:
    """Create ``count`` rooms whose ids alternate between the spread workers."""
    storage = await SqliteStorage.open(db_path)
    rooms: list[dict[str, Any]] = []
    try:
        while len(rooms) < count:
            room = await storage.create_room(f"capacity {len(rooms)}", limit)
            wanted = len(rooms) % SPREAD_WORKERS
            if worker_index(room.id, SPREAD_WORKERS) != wanted:
                continue  # left unused in the database
            invite = await storage.create_invite(room.id, ROLE_GUEST)
            rooms.append({"room": room.id, "token": invite.token, "worker": wanted})
    finally:
        await storage.close()
    return rooms


def stream_figures(
    start: dict[str, Any], end: dict[str, Any], elapsed: float
) -> dict[str, float]:
    """Return one subscriber's frame rate per stream and loss over the window."""
    rates = []
    received = expected = 0
    for ssrc, last in end.items():
        first = start.get(ssrc)
        if first is None:
            continue
        rates.append((last["frames"] - first["frames"]) / elapsed)
        received += last["packets"] - first["packets"]
        expected += last["expected_packets"] - first["expected_packets"]
    return {
        "streams": len(rates),
        "fps": statistics.mean(rates) if rates else 0.0,
        "fps_min": min(rates) if rates else 0.0,
        "loss": max(0.0, 1 - received / expected) if expected else 1.0,
    }


class CapacityRun:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.profile = PROFILES[args.profile]
        self.folder = Path(tempfile.mkdtemp(prefix="coworking-capacity-"))

    def config(self, role: str, room: dict[str, Any], base_url: str) -> dict:
        return {
            "role": role,
            "target": "coworking",
            "profile": self.profile.name,
            "fps": self.profile.fps,
            "audio": False,
            "video_clip": str(video_clip_path(self.profile)),
            "audio_clip": "",
            "base_url": base_url,
            "room": room["room"],
            "token": room["token"],
        }

    async def measure(
        self, workers: int, publishers: int, subscribers: int, tag: str
    ) -> dict[str, Any]:
        limit = publishers + subscribers + 2
        server = CoworkingServer(False, limit, workers)
        rooms = await create_rooms(server.db_path, self.args.rooms, limit)
        clients: list[WorkerProcess] = []
        await server.start()
        try:
            return await self._measure(
                server, rooms, clients, workers, publishers, subscribers, tag
            )
        finally:
            for client in reversed(clients):
                await client.stop()
            await server.stop()

    async def _start_room(
        self,
        room: dict[str, Any],
        base_url: str,
        clients: list[WorkerProcess],
        publishers: int,
        subscribers: int,
        tag: str,
    ) -> list[WorkerProcess]:
        config = self.config("publishers", room, base_url)
        config["count"] = publishers
        log = self.folder / f"{tag}-{room['room']}-publishers.log"
        publisher = WorkerProcess(config, log)
        clients.append(publisher)
        room["publisher_process"] = publisher
        ids = (await publisher.start())["ids"]
        names = [f"sink-{i}" for i in range(subscribers)]
        share = min(
            subscribers,
            math.ceil(publishers * subscribers / STREAMS_PER_SINK_PROCESS),
        )
        sinks = []
        for index in range(share):
            config = self.config("sinks", room, base_url)
            config["names"] = names[index::share]
            config["publishers"] = ids
            log = self.folder / f"{tag}-{room['room']}-sinks-{index}.log"
            sinks.append(WorkerProcess(config, log))
        clients.extend(sinks)
        await asyncio.gather(*(s.start() for s in sinks))
        return sinks

    async def _measure(
        self,
        server: CoworkingServer,
        rooms: list[dict[str, Any]],
        clients: list[WorkerProcess],
        workers: int,
        publishers: int,
        subscribers: int,
        tag: str,
    ) -> dict[str, Any]:
        base_url = server.join_info["base_url"]
        sinks = await asyncio.gather(
            *(
                self._start_room(r, base_url, clients, publishers, subscribers, tag)
                for r in rooms
            )
        )
        logger.info("%s: all streams flowing; warming up", tag)
        await asyncio.sleep(self.args.warmup)

        server_pids = server.pids()
        client_pids = [c.pid for c in clients]
        server_sockets = socket_inodes(server_pids)
        drops_before = udp_drops()
        first = await self._snapshot(sinks)
        sent_before = await self._publisher_totals(rooms)
        started = time.monotonic()
        cpu_before = {pid: cpu_seconds([pid]) for pid in server_pids}
        client_before = cpu_seconds(client_pids)
        load_average = os.getloadavg()[0]
        await asyncio.sleep(self.args.window)
        cpu = {pid: cpu_seconds([pid]) - cpu_before[pid] for pid in server_pids}
        drops = {
            inode: count - drops_before.get(inode, 0)
            for inode, count in udp_drops().items()
        }
        client_cpu = cpu_seconds(client_pids) - client_before
        elapsed = time.monotonic() - started
        last = await self._snapshot(sinks)
        sent_after = await self._publisher_totals(rooms)

        per_room = []
        for room, start, end, before, after in zip(
            rooms, first, last, sent_before, sent_after, strict=True
        ):
            figures = [
                stream_figures(
                    start[name]["streams"],
                    last_streams["streams"],
                    last_streams["time"] - start[name]["time"],
                )
                for name, last_streams in end.items()
            ]
            per_room.append(
                {
                    "room": room["room"],
                    "worker": room["worker"] % workers,
                    "fps_min": min(f["fps_min"] for f in figures),
                    "fps_mean": statistics.mean(f["fps"] for f in figures),
                    "loss_max": max(f["loss"] for f in figures),
                    "streams": sum(f["streams"] for f in figures),
                    # Frames per second each publisher sent, and how often a
                    # publisher fell behind its clock and skipped ahead.
                    "sent_fps": (after["frames"] - before["frames"])
                    / (elapsed * publishers),
                    "publisher_skips": after["skips"] - before["skips"],
                    "keyframe_requests": after["keyframe_requests"]
                    - before["keyframe_requests"],
                }
            )
        process_cores = sorted((c / elapsed for c in cpu.values()), reverse=True)
        result = {
            "workers": workers,
            "rooms": len(rooms),
            "publishers": publishers,
            "subscribers": subscribers,
            "streams": len(rooms) * publishers * subscribers,
            "window_seconds": elapsed,
            "server_cores": sum(cpu.values()) / elapsed,
            "process_cores": process_cores,
            "client_cores": client_cpu / elapsed,
            "load_average": load_average,
            # Datagrams that full receive buffers dropped during the window.
            "udp_drops_server": sum(
                n for inode, n in drops.items() if inode in server_sockets
            ),
            "udp_drops_clients": sum(
                n for inode, n in drops.items() if inode not in server_sockets
            ),
            "per_room": per_room,
        }
        logger.info(
            "%s: server %.2f cores (processes %s), fps min %s (sent %s), "
            "loss max %s, publisher skips %s, keyframe requests %s, "
            "UDP drops %d at the server and %d at clients, "
            "clients %.2f cores, load %.1f",
            tag,
            result["server_cores"],
            " ".join(f"{c:.2f}" for c in process_cores),
            " ".join(f"{r['fps_min']:.1f}" for r in per_room),
            " ".join(f"{r['sent_fps']:.1f}" for r in per_room),
            " ".join(f"{r['loss_max']:.2%}" for r in per_room),
            " ".join(str(r["publisher_skips"]) for r in per_room),
            " ".join(str(r["keyframe_requests"]) for r in per_room),
            result["udp_drops_server"],
            result["udp_drops_clients"],
            result["client_cores"],
            load_average,
        )
        return result

    async def _publisher_totals(
        self, rooms: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(
                *(
                    r["publisher_process"].request({"cmd": "totals"}, "totals")
                    for r in rooms
                )
            )
        )

    async def _snapshot(self, sinks: list[list[WorkerProcess]]) -> list[dict[str, Any]]:
        """Return each room's counters, keyed by subscriber name."""
        rooms = []
        for room_sinks in sinks:
            replies = await asyncio.gather(
                *(s.request({"cmd": "snapshot"}, "snapshot") for s in room_sinks)
            )
            merged: dict[str, Any] = {}
            for reply in replies:
                for name, streams in reply["streams"].items():
                    # The sink process's own clock: replies arrive late when
                    # the orchestrator or that process waits for a CPU.
                    merged[name] = {"time": reply["time"], "streams": streams}
            rooms.append(merged)
        return rooms

    async def run(self) -> list[dict[str, Any]]:
        results = []
        order = list(self.args.workers)
        for publishers, subscribers in self.args.sizes:
            for repeat in range(self.args.runs):
                for workers in order:
                    tag = (
                        f"{self.args.rooms}x{publishers}x{subscribers}"
                        f"-run{repeat + 1}-{workers}w"
                    )
                    try:
                        result = await self.measure(
                            workers, publishers, subscribers, tag
                        )
                    except Exception as exc:  # one failed run must not end the rest
                        logger.error("x %s failed: %s", tag, exc)
                        result = {
                            "workers": workers,
                            "publishers": publishers,
                            "subscribers": subscribers,
                            "error": f"{type(exc).__name__}: {exc}",
                        }
                    result["repeat"] = repeat
                    results.append(result)
                # Alternate which server goes first, against drift.
                order.reverse()
        return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| rooms x size | forwarded streams | workers | server cores "
        "(busiest process) | fps per room, lowest stream | "
        "loss per room, worst subscriber | datagrams dropped at the server | "
        "client cores | load average |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        size = f"{r['publishers']}x{r['subscribers']}"
        if "error" in r:
            lines.append(
                f"| {size} | | {r['workers']} | failed: {r['error'][:80]} |||||"
            )
            continue
        rooms = r["per_room"]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['rooms']} x {size}",
                    str(r["streams"]),
                    str(r["workers"]),
                    f"{r['server_cores']:.2f} ({r['process_cores'][0]:.2f})",
                    " / ".join(f"{x['fps_min']:.1f}" for x in rooms),
                    " / ".join(f"{x['loss_max']:.2%}" for x in rooms),
                    str(r["udp_drops_server"]),
                    f"{r['client_cores']:.2f}",
                    f"{r['load_average']:.1f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()
    run = CapacityRun(args)
    results = await run.run()
    profile = run.profile
    print()
    print(
        f"Profile {profile.name} without audio: {profile.width}x{profile.height}, "
        f"{profile.fps} fps, VP8 at about {profile.bitrate // 1000} kbit/s; "
        f"{args.rooms} rooms at once, {args.warmup:.0f} s warm-up, "
        f"{args.window:.0f} s window"
    )
    print(f"Machine: {describe_machine()}")
    print(f"Command: python -m bench.sfuload.capacity {shlex.join(sys.argv[1:])}")
    print(f"Bench time: {time.monotonic() - started:.0f} s; logs in {run.folder}")
    print(
        "The clients share the machine's CPUs with the server: on 2 CPUs the server"
        " can use at most what the clients and other load leave."
    )
    print()
    print(table(results))
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))
        print(f"\nevery run's figures: {args.output}")
    return 1 if any("error" in r for r in results) else 0


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    require_loopback_only()
    raise SystemExit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
