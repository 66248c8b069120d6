"""Rooms spread over worker processes, behind one front process.

One Python process forwards media on one core. The front process serves the
pages and accepts every HTTP request and WebSocket. Each room lives in exactly
one worker process, chosen from a hash of its id, and the front relays the
room's API requests and signalling to that worker over a Unix socket. Media
does not pass through the front: each worker's peer connections have their own
UDP ports.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from .config import Settings, settings_environment

logger = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
MAX_RELAYED_BODY = 64 * 1024
# Answers once the worker listens; /healthz also checks the database and media.
READY_URL = "http://worker/internal/ready"
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0)
FORWARDED_FOR = "X-Forwarded-For"
# Close codes that RFC 6455 section 7.4.1 forbids in a close frame.
UNSENDABLE_CLOSE_CODES = {1005, 1006, 1015}


class WorkerUnavailable(Exception):
    """A worker process is down or restarting."""


def room_of(first_message: str) -> str:
    """Return the room id named in a join message, or "" if there is none.

    The worker validates the message itself; this only picks the worker.
    """
    try:
        message = json.loads(first_message)
    except (ValueError, RecursionError):
        return ""
    room = message.get("room") if isinstance(message, dict) else None
    return room if isinstance(room, str) else ""


def worker_index(room_id: str, count: int) -> int:
    """Return which of ``count`` workers hosts a room: the same one every time."""
    digest = hashlib.sha256(room_id.encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:4], "big") % count


class Worker:
    """One worker process and the HTTP client that reaches it."""

    def __init__(self, index: int, socket_path: Path, settings: Settings) -> None:
        self.index = index
        self.socket_path = socket_path
        self.settings = settings
        self.process: asyncio.subprocess.Process | None = None
        self.client: aiohttp.ClientSession | None = None
        self.restarts = 0

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"Worker({self.index}, pid {pid})"

    async def start(self) -> None:
        env = dict(os.environ)
        env.update(settings_environment(self.settings))
        self.socket_path.unlink(missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "worker",
            f"--socket={self.socket_path}",
            env=env,
        )
        if self.client is None:
            connector = aiohttp.UnixConnector(path=str(self.socket_path))
            self.client = aiohttp.ClientSession(connector=connector)
        await self._wait_ready()
        logger.info("worker %d started (pid %d)", self.index, self.process.pid)

    async def _wait_ready(self) -> None:
        assert self.process is not None and self.client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(
                    f"worker {self.index} exited with status {self.process.returncode}"
                )
            try:
                async with self.client.get(READY_URL) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise RuntimeError(f"worker {self.index} did not start in time")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except asyncio.TimeoutError:
                logger.warning("x %r did not stop in 10 s; killing it", self)
                self.process.kill()
                await self.process.wait()
        if self.client is not None:
            await self.client.close()
            self.client = None


class WorkerPool:
    """Starts the workers, restarts one that dies, and maps rooms to workers."""

    def __init__(self, settings: Settings) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="coworking-"))
        self.workers = [
            Worker(index, self._folder / f"worker-{index}.sock", settings)
            for index in range(settings.worker_count)
        ]
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await asyncio.gather(*(worker.start() for worker in self.workers))
        self._supervisor = asyncio.create_task(self._supervise())

    def worker_for(self, room_id: str) -> Worker:
        return self.workers[worker_index(room_id, len(self.workers))]

    async def _supervise(self) -> None:
        waits = {
            asyncio.ensure_future(w.process.wait()): w
            for w in self.workers
            if w.process is not None
        }
        while waits and not self._stopping:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                worker = waits.pop(future)
                if self._stopping:
                    return
                delay = RESTART_DELAYS[min(worker.restarts, len(RESTART_DELAYS) - 1)]
                logger.error(
                    "%r exited with status %s, losing its rooms; restart in %.0f s",
                    worker,
                    future.result(),
                    delay,
                )
                worker.restarts += 1
                await asyncio.sleep(delay)
                try:
                    await worker.start()
                except RuntimeError as error:
                    logger.error(
                        "x restarting worker %d failed: %s", worker.index, error
                    )
                    continue
                assert worker.process is not None
                waits[asyncio.ensure_future(worker.process.wait())] = worker
        for future in waits:
            future.cancel()

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in self.workers))
        shutil.rmtree(self._folder, ignore_errors=True)

    async def health_problems(self) -> list[str]:
        """Return what each unhealthy worker reports; empty when all are healthy."""

        async def one(worker: Worker) -> list[str]:
            if worker.client is None:
                return [f"worker {worker.index}: restarting"]
            try:
                async with worker.client.get("http://worker/healthz") as reply:
                    if reply.status == 200:
                        return []
                    body = await reply.json()
                    return [f"worker {worker.index}: {p}" for p in body["problems"]]
            except (aiohttp.ClientError, ValueError, KeyError, TypeError) as error:
                return [f"worker {worker.index}: unreachable ({error})"]

        results = await asyncio.gather(*(one(w) for w in self.workers))
        return [problem for problems in results for problem in problems]

    async def stats(self) -> list[dict[str, Any]]:
        """Return each worker's counters; raise WorkerUnavailable if one is down."""

        async def one(worker: Worker) -> dict[str, Any]:
            if worker.client is None:
                raise WorkerUnavailable(f"worker {worker.index} is restarting")
            try:
                async with worker.client.get("http://worker/internal/stats") as reply:
                    return await reply.json()
            except aiohttp.ClientError as error:
                raise WorkerUnavailable(f"worker {worker.index}: {error}") from error

        return list(await asyncio.gather(*(one(w) for w in self.workers)))


def unavailable() -> web.Response:
    return web.json_response(
        {
            "error": {
                "code": "unavailable",
                "message": "The server is restarting this room. Try again shortly.",
            }
        },
        status=503,
        headers={"Retry-After": "2"},
    )


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Read a request body to its end, but at most ``limit + 1`` bytes.

    One ``read(n)`` returns only the bytes that have arrived, which for a
    large body is a part of it, so this reads until the end or the limit.
    """
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = await stream.read(limit + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


async def relay_api(
    request: web.Request,
    pool: WorkerPool,
    max_body: int = MAX_RELAYED_BODY,
    too_large: web.Response | None = None,
) -> web.Response:
    """Pass a room's API request, with its method and body, to the worker that
    hosts the room. A body over ``max_body`` bytes gets ``too_large``, or a
    generic 413 response."""
    worker = pool.worker_for(request.match_info["room_id"])
    if worker.client is None:
        return unavailable()
    headers = {FORWARDED_FOR: request.remote or ""}
    for name in ("Authorization", "Content-Type"):
        if name in request.headers:
            headers[name] = request.headers[name]
    # The worker rejects bodies over its own limit; this bounds what is buffered.
    data = await read_limited(request.content, max_body)
    if len(data) > max_body:
        if too_large is not None:
            return too_large
        return web.json_response(
            {
                "error": {
                    "code": "too_large",
                    "message": f"The request body is larger than {max_body} bytes.",
                }
            },
            status=413,
        )
    try:
        async with worker.client.request(
            request.method,
            "http://worker" + request.rel_url.path,
            headers=headers,
            data=data or None,
        ) as upstream:
            body = await upstream.read()
            response = web.Response(
                body=body, status=upstream.status, content_type=upstream.content_type
            )
            for name in ("Content-Disposition", "Retry-After"):
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
            return response
    except aiohttp.ClientError as error:
        logger.warning("x %r unreachable for %s: %s", worker, request.remote, error)
        return unavailable()


async def relay_websocket(
    ws: web.WebSocketResponse, request: web.Request, pool: WorkerPool, timeout: float
) -> None:
    """Relay a prepared WebSocket to the worker of the room its join names."""
    try:
        first = await ws.receive(timeout=timeout)
    except asyncio.TimeoutError:
        await ws.close(code=4000, message=b"liveness timeout")
        return
    if first.type == WSMsgType.ERROR:
        log_client_error(request, ws)
        return
    if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        return
    worker = pool.worker_for(
        room_of(first.data) if first.type == WSMsgType.TEXT else ""
    )
    if worker.client is None:
        await ws.close(code=1013, message=b"try again later")
        return
    try:
        upstream = await worker.client.ws_connect(
            "http://worker/ws",
            headers={FORWARDED_FOR: request.remote or ""},
            max_msg_size=0,
            autoping=True,
        )
    except aiohttp.ClientError as error:
        logger.warning("x %r unreachable for %s: %s", worker, request.remote, error)
        await ws.close(code=1013, message=b"try again later")
        return
    async with upstream:
        await _send(upstream, first)
        await _pump_both(ws, upstream, lambda: log_client_error(request, ws))


def log_client_error(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Log why a client's WebSocket failed, such as an oversized or invalid frame.

    The worker only receives the close that the front relays, so this is the one
    log line about it.
    """
    error = ws.exception()
    # aiohttp's WebSocketError carries the close code sent to the client.
    code = getattr(error, "code", ws.close_code)
    logger.warning("x WebSocket of %s closed with %s: %s", request.remote, code, error)


async def _send(target: Any, message: aiohttp.WSMessage) -> None:
    if message.type == WSMsgType.TEXT:
        await target.send_str(message.data)
    else:
        await target.send_bytes(message.data)


async def _pump(
    source: Any, target: Any, on_error: Callable[[], None] | None = None
) -> None:
    """Copy messages until ``source`` closes, then close ``target`` alike.

    ``on_error`` is called when ``source`` fails with a WebSocket error.
    """
    async for message in source:
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            try:
                await _send(target, message)
            except ConnectionError:
                break
        elif message.type == WSMsgType.ERROR:
            if on_error is not None:
                on_error()
            break
    code = source.close_code
    if code is None or code in UNSENDABLE_CLOSE_CODES:
        # A vanished peer: tell the other side that it went away.
        code = 1001
    if not target.closed:
        await target.close(code=code, message=b"")


async def _pump_both(
    client: web.WebSocketResponse,
    upstream: Any,
    on_client_error: Callable[[], None],
) -> None:
    tasks = [
        asyncio.create_task(_pump(client, upstream, on_client_error)),
        asyncio.create_task(_pump(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
