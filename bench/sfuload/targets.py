"""The servers under test, and the client worker processes that load them."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from .janus import JanusSession, create_room, destroy_room

ROOT = Path(__file__).resolve().parents[2]
INVITE_LINK = re.compile(
    r"Invite link: (http://\S+)/r/([A-Za-z0-9_-]+)#([A-Za-z0-9_-]+)"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_START_TIMEOUT = 30.0
WORKER_TIMEOUT = 120.0
MAX_ROOM_LIMIT = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and all of its descendants that are alive now."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
            except FileNotFoundError:
                continue
            found.extend(int(child) for child in children.split())
    return found


def cpu_seconds(pids: list[int]) -> float:
    """Return user plus system CPU time of these processes, all threads."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            total += int(match.group(1)) * 1024
    return total


def udp_drops() -> dict[int, int]:
    """Return the datagrams each UDP socket of this namespace dropped on receipt.

    Keyed by socket inode, from the "drops" column of /proc/net/udp and
    /proc/net/udp6; a socket drops when its receive buffer is full.
    """
    drops = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            drops[int(fields[9])] = int(fields[-1])
    return drops


def socket_inodes(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
            except FileNotFoundError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


class CoworkingServer:
    """This server as a subprocess, optionally in its transcoding mode."""

    def __init__(
        self, transcode: bool, room_limit: int, workers: int | None = None
    ) -> None:
        self.transcode = transcode
        self.room_limit = min(MAX_ROOM_LIMIT, max(25, room_limit))
        # Room worker processes; None leaves the server's default, one per core.
        self.workers = workers
        self.process: asyncio.subprocess.Process | None = None
        self.join_info: dict[str, Any] = {}
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._folder = tempfile.TemporaryDirectory(prefix="coworking-sfuload-")
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def db_path(self) -> Path:
        """The server's database: rooms created there before start are served."""
        return Path(self._folder.name) / "bench.sqlite3"

    async def start(self) -> None:
        env = dict(os.environ)
        env.update(
            COWORKING_LOG_LEVEL="WARNING",
            COWORKING_ROOM_LIMIT=str(self.room_limit),
            PYTHONUNBUFFERED="1",
        )
        env.pop("COWORKING_SFU_TRANSCODE", None)
        if self.transcode:
            env["COWORKING_SFU_TRANSCODE"] = "1"
        workers = [] if self.workers is None else [f"--workers={self.workers}"]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "serve",
            "--host=127.0.0.1",
            f"--port={free_port()}",
            f"--db={self.db_path}",
            "--ice-host-address=127.0.0.1",
            *workers,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await asyncio.wait_for(self._read_invite_link(), SERVER_START_TIMEOUT)
        self._reader = asyncio.create_task(self._drain())

    async def _read_invite_link(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = (await self.process.stdout.readline()).decode(errors="replace")
            if not line:
                raise RuntimeError(
                    "the server exited before printing its invite link:\n"
                    + "".join(self.output)
                )
            self.output.append(line)
            match = INVITE_LINK.search(line)
            if match:
                base_url, room, token = match.groups()
                self.join_info = {"base_url": base_url, "room": room, "token": token}
                return

    async def _drain(self) -> None:
        # The server blocks once a full pipe stops it from logging.
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    def pids(self) -> list[int]:
        # Rooms may live in worker processes of the server.
        return process_tree(self.pid)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader
        self._folder.cleanup()


class JanusServer:
    """A Janus started outside the benchmark; each run gets a fresh room."""

    def __init__(self, url: str, pid: int, publishers: int) -> None:
        self.url = url
        self.pid = pid
        self.publishers = publishers
        self.join_info: dict[str, Any] = {}
        self._session: JanusSession | None = None
        self._room = 0
        self._handle = 0

    async def start(self) -> None:
        if not Path(f"/proc/{self.pid}").exists():
            raise RuntimeError(f"Janus process {self.pid} is not running")
        self._session = JanusSession(self.url)
        await self._session.create()
        self._room, self._handle = await create_room(self._session, self.publishers)
        self.join_info = {"janus_url": self.url, "janus_room": self._room}

    def pids(self) -> list[int]:
        return [self.pid]

    async def stop(self) -> None:
        if self._session is not None:
            try:
                await destroy_room(self._session, self._handle, self._room)
            finally:
                await self._session.close()


class WorkerProcess:
    """A client process (bench/sfuload/worker.py) driven over stdin and stdout."""

    def __init__(self, config: dict[str, Any], log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> dict[str, Any]:
        """Start the process and return its "ready" event."""
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.sfuload.worker",
                json.dumps(self.config),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=1 << 24,
            )
        return await self.expect("ready")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def expect(
        self, event: str, timeout: float = WORKER_TIMEOUT
    ) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(
                    f"{self.config['role']} worker exited; see {self.log_path}"
                )
            message = json.loads(line)
            if message["event"] == event:
                return message
            if message["event"] in ("failed", "error"):
                raise RuntimeError(
                    f"{self.config['role']} worker: {message['message']}; "
                    f"see {self.log_path}"
                )

    async def request(
        self, command: dict[str, Any], reply: str, timeout: float = WORKER_TIMEOUT
    ) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        return await self.expect(reply, timeout)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        try:
            await self.request({"cmd": "stop"}, "stopped", timeout=20)
            await asyncio.wait_for(self.process.wait(), 10)
        except (RuntimeError, asyncio.TimeoutError, ConnectionError, ValueError):
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
