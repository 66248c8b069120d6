"""The real server, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from server.storage import ROLE_GUEST, ROLE_HOST, Room, SqliteStorage

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(http://[^\s#]+/r/([A-Za-z0-9_-]+))#([A-Za-z0-9_-]+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

# Seconds the server may take to print its links. Three processes start
# (front and two workers), which takes far longer on a machine at full load.
START_TIMEOUT = 60


class ServerProcess:
    def __init__(
        self,
        db_path: Path,
        room_limit: int = 25,
        workers: int = 2,
        admission_failures: int = 1_000_000,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.db_path = db_path
        self.environment = environment or {}
        self.admission_failures = admission_failures
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_urlsafe(24)
        self.room_limit = room_limit
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self.default_links: list[tuple[str, str, str]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = dict(os.environ)
        env.update(
            COWORKING_ADMIN_TOKEN=self.admin_token,
            COWORKING_ROOM_LIMIT=str(self.room_limit),
            # Many tests try bad invites from 127.0.0.1 on one server.
            COWORKING_ADMISSION_FAILURES=str(self.admission_failures),
            COWORKING_LOG_LEVEL=os.environ.get("COWORKING_TEST_LOG_LEVEL", "INFO"),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.environment)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "serve",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--db={self.db_path}",
            "--ice-host-address=127.0.0.1",
            f"--workers={self.workers}",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await asyncio.wait_for(self._wait_for_links(), timeout=START_TIMEOUT)
        self._reader = asyncio.create_task(self._read_rest())

    async def _wait_for_links(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = (await self.process.stdout.readline()).decode()
            if not line:
                raise RuntimeError("server exited:\n" + "".join(self.output))
            self.output.append(line)
            match = LINK.search(line)
            if match:
                self.default_links.append(match.groups())
            if "Host link" in line:
                return

    async def _read_rest(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode())

    def log_text(self) -> str:
        return "".join(self.output)

    async def create_room(
        self, name: str = "Test room", limit: int = 25
    ) -> dict[str, Any]:
        """Create a room in the server's database, as `coworking room create` does."""
        storage = await SqliteStorage.open(self.db_path)
        try:
            room: Room = await storage.create_room(name, limit)
            guest = await storage.create_invite(room.id, ROLE_GUEST)
            host = await storage.create_invite(room.id, ROLE_HOST)
        finally:
            await storage.close()
        return {"room": room, "guest": guest, "host": host}

    async def storage(self) -> SqliteStorage:
        return await SqliteStorage.open(self.db_path)

    async def stats(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url + "/api/admin/stats", headers=headers) as r:
                r.raise_for_status()
                return await r.json()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader
        return self.process.returncode
