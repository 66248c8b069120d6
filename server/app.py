"""The aiohttp application: pages, JSON API, WebSocket signalling."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import resource
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web

import sfu.frames
import sfu.ice
from sfu.stats import counters

from .config import Settings
from .invites import InviteError, admit, make_link
from .rooms import RoomRegistry
from .signalling import MAX_FRAME_SIZE, Session
from .storage import ROLE_GUEST, ROLE_HOST, Storage

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
REGISTRY = web.AppKey("registry", RoomRegistry)
SOCKETS = web.AppKey("sockets", set)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=()",
}


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def invalid_invite_response() -> web.Response:
    error = InviteError()
    return web.json_response(
        {"error": {"code": error.code, "message": str(error)}}, status=403
    )


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


async def room_page(request: web.Request) -> web.FileResponse:
    # The page is the same for every room id and holds no room data; the
    # script reads the token from the link and asks the API.
    return web.FileResponse(STATIC_DIR / "room.html")


async def index_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def room_info(request: web.Request) -> web.Response:
    storage = request.app[STORAGE]
    try:
        room, invite = await admit(
            storage, request.match_info["room_id"], bearer_token(request)
        )
    except InviteError:
        return invalid_invite_response()
    invite_url = None
    if invite.role == ROLE_HOST:
        now = time.time()
        guests = [
            i
            for i in await storage.list_invites(room.id)
            if i.role == ROLE_GUEST and i.is_usable(now)
        ]
        if guests:
            newest = max(guests, key=lambda i: i.created_at)
            invite_url = make_link(request.app[SETTINGS].url, room.id, newest.token)
    return web.json_response(
        {
            "room": {
                "id": room.id,
                "name": room.name,
                "limit": room.limit,
                "participants": request.app[REGISTRY].participant_count(room.id),
            },
            "role": invite.role,
            "invite_url": invite_url,
        }
    )


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        # Not a browser; browsers always send Origin on a WebSocket handshake.
        return True
    allowed = {request.host, urlsplit(request.app[SETTINGS].url).netloc}
    return urlsplit(origin).netloc in allowed


async def websocket(request: web.Request) -> web.WebSocketResponse:
    if not same_origin(request):
        logger.warning(
            "x WebSocket from origin %r refused (%s)",
            request.headers.get("Origin", "")[:100],
            request.remote,
        )
        raise web.HTTPForbidden(
            text="WebSocket connections from other sites are refused."
        )
    # aiohttp rejects a message of max_msg_size bytes or more.
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_SIZE + 1, compress=False)
    await ws.prepare(request)
    settings = request.app[SETTINGS]
    session = Session(
        ws,
        request.app[STORAGE],
        request.app[REGISTRY],
        [{"urls": [url]} for url in settings.ice_servers],
        request.remote or "?",
    )
    request.app[SOCKETS].add(ws)
    try:
        await session.run()
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def process_stats() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "rss_bytes": rss_pages * os.sysconf("SC_PAGE_SIZE"),
        "open_files": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
    }


async def admin_stats(request: web.Request) -> web.Response:
    expected = request.app[SETTINGS].admin_token
    if expected is None:
        raise web.HTTPNotFound()
    given = (bearer_token(request) or "").encode()
    if not hmac.compare_digest(given, expected.reveal().encode()):
        return web.json_response({"error": {"code": "forbidden"}}, status=403)
    registry = request.app[REGISTRY]
    rooms = {
        room_id: {
            "participants": len(room.participants),
            "peers": len(room.router.peers),
        }
        for room_id, room in registry.rooms.items()
    }
    return web.json_response(
        {"process": process_stats(), "sfu": counters.as_dict(), "rooms": rooms}
    )


async def close_everything(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
    await app[REGISTRY].close()


def build_app(settings: Settings, storage: Storage) -> web.Application:
    sfu.frames.install_passthrough()
    if settings.ice_host_addresses:
        sfu.ice.set_host_addresses(settings.ice_host_addresses)
    app = web.Application(middlewares=[security_headers])
    app[SETTINGS] = settings
    app[STORAGE] = storage
    app[REGISTRY] = RoomRegistry(sfu.ice.rtc_configuration(settings.ice_servers))
    app[SOCKETS] = set()
    app.on_shutdown.append(close_everything)
    app.add_routes(
        [
            web.get("/", index_page),
            web.get("/r/{room_id}", room_page),
            web.get("/api/rooms/{room_id}", room_info),
            web.get("/api/admin/stats", admin_stats),
            web.get("/ws", websocket),
            web.get("/healthz", healthz),
            web.static("/static", STATIC_DIR),
        ]
    )
    return app


async def run_server(
    settings: Settings,
    storage: Storage,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then close every connection."""
    app = build_app(settings, storage)
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    logger.info("server running on http://%s:%d", settings.host, settings.port)
    if on_started is not None:
        on_started()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        logger.info("server stopping")
        await runner.cleanup()
        logger.info("server stopped")
