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

import sfu.estimator
import sfu.frames
import sfu.ice
from sfu.stats import counters

from .backgrounds import too_large
from .backgrounds_api import (
    background_routes,
    builtin_routes,
    setup_builtin,
    setup_uploads,
)
from .booking_api import (
    SCHEDULE,
    ApiError,
    ScheduleContext,
    booking_routes,
    window_error_body,
)
from .config import Settings
from .health import database_problem, media_problem
from .invites import InviteError, admit, make_link, newest_room_invite
from .limits import FailureLimiter
from .metrics import LoopLagProbe, render, room_gauges
from .rooms import RoomRegistry
from .schedule import SlotWindowError
from .signalling import (
    CLOSE_TIMEOUT,
    LIVENESS_TIMEOUT,
    MAX_FRAME_SIZE,
    TOO_MANY_ATTEMPTS,
    TOO_MANY_ATTEMPTS_MESSAGE,
    Session,
)
from .storage import ROLE_GUEST, ROLE_HOST, Storage
from .turn import ice_servers_for
from .workers import (
    FORWARDED_FOR,
    MAX_RELAYED_BODY,
    WorkerPool,
    WorkerUnavailable,
    relay_api,
    relay_websocket,
)

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Browser libraries installed by npm from vendor/package.json (scripts/setup.sh).
VENDOR_DIR = Path(__file__).resolve().parent.parent / "vendor" / "node_modules"

SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
REGISTRY = web.AppKey("registry", RoomRegistry)
SOCKETS = web.AppKey("sockets", set)
POOL = web.AppKey("pool", WorkerPool)
LIMITER = web.AppKey("limiter", FailureLimiter)
LAG_PROBE = web.AppKey("lag_probe", LoopLagProbe)

# Sent to every client before the server closes its WebSocket on shutdown.
SHUTDOWN_MESSAGE = {
    "type": "closing",
    "message": "The server is restarting. The page reconnects when it is back.",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        # 'wasm-unsafe-eval' lets the page compile the WebAssembly of the
        # person segmentation model; it does not allow eval() of scripts.
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
        "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=()",
}


def proxied_remote(trusted: tuple[str, ...]) -> Any:
    """Make request.remote the client's address when a trusted proxy relays it.

    The client is the rightmost address in X-Forwarded-For that is not one
    of the trusted proxies; a client can prepend anything to the header.
    """

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and request.remote in trusted:
            hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
            client = next((hop for hop in reversed(hops) if hop not in trusted), None)
            if client is not None:
                request = request.clone(remote=client[:64])
        return await handler(request)

    return middleware


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


def too_many_attempts_response() -> web.Response:
    return web.json_response(
        {"error": {"code": TOO_MANY_ATTEMPTS, "message": TOO_MANY_ATTEMPTS_MESSAGE}},
        status=429,
        headers={"Retry-After": "60"},
    )


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


async def room_page(request: web.Request) -> web.FileResponse:
    # The page is the same for every room id and contains no room data. Its
    # script reads the token from the link and requests the room from the API.
    return web.FileResponse(STATIC_DIR / "room.html")


async def index_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def room_info(request: web.Request) -> web.Response:
    storage = request.app[STORAGE]
    limiter = request.app[LIMITER]
    remote = request.remote or "?"
    if limiter.blocked(remote):
        return too_many_attempts_response()
    try:
        room, invite = await admit(
            storage,
            request.match_info["room_id"],
            bearer_token(request),
            early_seconds=request.app[SETTINGS].slot_early_seconds,
        )
    except InviteError:
        limiter.record_failure(remote)
        return invalid_invite_response()
    except SlotWindowError as error:
        room_or_none = await storage.get_room(request.match_info["room_id"])
        body = {"error": {"code": error.code, "message": error.message}}
        body.update(window_error_body(error, room_or_none))
        return web.json_response(body, status=403)
    invite_url = None
    if invite.role == ROLE_HOST:
        invites = await storage.list_invites(room.id)
        newest = newest_room_invite(invites, ROLE_GUEST, time.time())
        if newest is not None:
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


def check_origin(request: web.Request) -> None:
    if not same_origin(request):
        logger.warning(
            "x WebSocket from origin %r refused (%s)",
            request.headers.get("Origin", "")[:100],
            request.remote,
        )
        raise web.HTTPForbidden(
            text="WebSocket connections from other sites are refused."
        )


def new_websocket() -> web.WebSocketResponse:
    # aiohttp rejects a message of max_msg_size bytes or more. Compression is
    # off, so a small frame cannot inflate into a large message.
    return web.WebSocketResponse(max_msg_size=MAX_FRAME_SIZE + 1, compress=False)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    check_origin(request)
    ws = new_websocket()
    await ws.prepare(request)
    settings = request.app[SETTINGS]
    session = Session(
        ws,
        request.app[STORAGE],
        request.app[REGISTRY],
        lambda participant_id: ice_servers_for(settings, participant_id),
        request.remote or "?",
        abort=lambda: request.transport.abort() if request.transport else None,
        limiter=request.app[LIMITER],
        slot_early=settings.slot_early_seconds,
    )
    request.app[SOCKETS].add(ws)
    try:
        await session.run()
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


async def front_websocket(request: web.Request) -> web.WebSocketResponse:
    check_origin(request)
    ws = new_websocket()
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    try:
        await relay_websocket(ws, request, request.app[POOL], LIVENESS_TIMEOUT)
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


async def front_room_info(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    if request.method != "POST" or not request.path.endswith("/backgrounds"):
        return await relay_api(request, pool)
    # Background uploads are the largest bodies a room's API accepts.
    max_bytes = request.app[SETTINGS].background_max_bytes
    error = too_large(max_bytes)
    response = ApiError(error.status, error.code, error.message).response()
    return await relay_api(request, pool, max(MAX_RELAYED_BODY, max_bytes), response)


def health_response(problems: list[str]) -> web.Response:
    if problems:
        return web.json_response(
            {"status": "unavailable", "problems": problems}, status=503
        )
    return web.json_response({"status": "ok"})


async def healthz(request: web.Request) -> web.Response:
    """Return 200 when the database and the media path are usable, else 503."""
    problems = [
        problem
        for problem in (
            await database_problem(request.app[STORAGE]),
            media_problem(),
        )
        if problem is not None
    ]
    if problems:
        logger.warning("x health check failed: %s", "; ".join(problems))
    return health_response(problems)


async def front_healthz(request: web.Request) -> web.Response:
    """Return 200 when every worker reports itself healthy, else 503."""
    problems = await request.app[POOL].health_problems()
    if problems:
        logger.warning("x health check failed: %s", "; ".join(problems))
    return health_response(problems)


async def worker_ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "started"})


def process_stats() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return {
        "pid": os.getpid(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "rss_bytes": rss_pages * os.sysconf("SC_PAGE_SIZE"),
        "open_files": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
    }


def check_admin(request: web.Request) -> None:
    expected = request.app[SETTINGS].admin_token
    if expected is None:
        raise web.HTTPNotFound()
    given = (bearer_token(request) or "").encode()
    if not hmac.compare_digest(given, expected.reveal().encode()):
        raise web.HTTPForbidden(
            text='{"error": {"code": "forbidden"}}', content_type="application/json"
        )


def local_stats(app: web.Application) -> dict[str, Any]:
    registry = app[REGISTRY]
    rooms = {
        room_id: {
            "participants": len(room.participants),
            "peers": len(room.router.peers),
        }
        for room_id, room in registry.rooms.items()
    }
    gauges = room_gauges(registry.rooms.values())
    gauges["peer_connections"] = counters.peer_connections
    return {
        "process": process_stats(),
        "sfu": counters.as_dict(),
        "rooms": rooms,
        "gauges": gauges,
        "loop_lag": app[LAG_PROBE].take_max(),
        "websockets": len(app[SOCKETS]),
    }


def front_report(app: web.Application) -> dict[str, Any]:
    """Return the front process's own numbers, in the form of local_stats."""
    return {
        "process": process_stats(),
        "sfu": {},
        "gauges": {},
        "loop_lag": app[LAG_PROBE].take_max(),
    }


def check_metrics_access(request: web.Request) -> None:
    """Allow the metrics token or the admin token; 404 when neither is set."""
    settings = request.app[SETTINGS]
    accepted = [t for t in (settings.metrics_token, settings.admin_token) if t]
    if not accepted:
        raise web.HTTPNotFound()
    given = (bearer_token(request) or "").encode()
    # Compare with every token, so the time taken does not tell which matched.
    matches = [hmac.compare_digest(given, t.reveal().encode()) for t in accepted]
    if not any(matches):
        raise web.HTTPForbidden(
            text='{"error": {"code": "forbidden"}}', content_type="application/json"
        )


def metrics_response(text: str) -> web.Response:
    return web.Response(
        body=text.encode("utf-8"),
        headers={
            # Version 0.0.4 is the name of Prometheus' text exposition format.
            "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
            "Cache-Control": "no-store",
        },
    )


async def metrics(request: web.Request) -> web.Response:
    check_metrics_access(request)
    report = local_stats(request.app)
    return metrics_response(render({"main": report}, report["websockets"]))


async def front_metrics(request: web.Request) -> web.Response:
    """Return the metrics summed over the front and every worker."""
    check_metrics_access(request)
    try:
        workers = await request.app[POOL].stats()
    except WorkerUnavailable as error:
        logger.warning("x metrics incomplete: %s", error)
        raise web.HTTPServiceUnavailable(text="a worker is restarting\n") from error
    reports = {f"worker-{index}": w for index, w in enumerate(workers)}
    reports["front"] = front_report(request.app)
    return metrics_response(render(reports, len(request.app[SOCKETS])))


async def admin_stats(request: web.Request) -> web.Response:
    check_admin(request)
    return web.json_response(local_stats(request.app))


async def worker_stats(request: web.Request) -> web.Response:
    return web.json_response(local_stats(request.app))


async def front_admin_stats(request: web.Request) -> web.Response:
    """Return the sums over the front and all workers, and each worker's own."""
    check_admin(request)
    try:
        workers = await request.app[POOL].stats()
    except WorkerUnavailable as error:
        logger.warning("x admin stats incomplete: %s", error)
        raise web.HTTPServiceUnavailable(
            text='{"error": {"code": "unavailable"}}', content_type="application/json"
        ) from error
    front = process_stats()
    total = {
        "process": {
            key: front[key] + sum(w["process"][key] for w in workers)
            for key in front
            if key != "pid"
        },
        "sfu": {key: sum(w["sfu"][key] for w in workers) for key in counters.as_dict()},
        "rooms": {room: info for w in workers for room, info in w["rooms"].items()},
        "front": front,
        "workers": workers,
    }
    return web.json_response(total)


def page_routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", index_page),
        web.get("/r/{room_id}", room_page),
        web.static("/static", STATIC_DIR),
        *vendor_routes(),
        *builtin_routes(),
    ]


def vendor_routes() -> list[web.AbstractRouteDef]:
    if not VENDOR_DIR.is_dir():
        logger.warning(
            "%s is missing, so virtual backgrounds are off: run scripts/serve or"
            " npm ci --prefix vendor",
            VENDOR_DIR,
        )
        return []
    return [web.static("/vendor", VENDOR_DIR)]


def start_rooms(app: web.Application, settings: Settings, storage: Storage) -> None:
    """Make this process host rooms: patch aiortc and open a room registry."""
    # COWORKING_SFU_TRANSCODE=1 exists only to measure the transcoding baseline
    # (bench/sfuload): aiortc then decodes every publisher's media and encodes
    # it again for every subscriber. It is not a setting for real use.
    if os.environ.get("COWORKING_SFU_TRANSCODE") == "1":
        logger.warning("SFU passthrough off: media is decoded and re-encoded")
    else:
        sfu.frames.install_passthrough()
    sfu.estimator.install_window_rate_counter()
    if settings.ice_host_addresses:
        sfu.ice.set_host_addresses(settings.ice_host_addresses)
    app[STORAGE] = storage
    app[REGISTRY] = RoomRegistry(
        sfu.ice.rtc_configuration(settings.ice_servers), settings.session_plan
    )
    app[LIMITER] = FailureLimiter(settings.admission_failures)
    app[SCHEDULE] = ScheduleContext(storage, settings, app[LIMITER])
    setup_uploads(app, settings)
    app.on_shutdown.append(close_rooms)


async def close_sockets(app: web.Application) -> None:
    """Tell every client that the server shuts down, then close its WebSocket."""
    sockets = list(app[SOCKETS])
    if sockets:
        logger.info("shutting down: closing %d WebSockets", len(sockets))
    await asyncio.gather(*(close_for_shutdown(ws) for ws in sockets))


async def close_for_shutdown(ws: web.WebSocketResponse) -> None:
    try:
        await asyncio.wait_for(ws.send_json(SHUTDOWN_MESSAGE), CLOSE_TIMEOUT)
    except (ConnectionError, RuntimeError, asyncio.TimeoutError) as error:
        logger.info("shutdown message not sent: %s", error)
    try:
        await asyncio.wait_for(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"),
            CLOSE_TIMEOUT,
        )
    except asyncio.TimeoutError:
        logger.info("a client did not take the close frame in time")


async def start_lag_probe(app: web.Application) -> None:
    app[LAG_PROBE].start()


async def stop_lag_probe(app: web.Application) -> None:
    await app[LAG_PROBE].stop()


async def close_rooms(app: web.Application) -> None:
    await app[REGISTRY].close()


def new_app(settings: Settings, middlewares: list[Any]) -> web.Application:
    app = web.Application(middlewares=middlewares)
    app[SETTINGS] = settings
    app[SOCKETS] = set()
    app[LAG_PROBE] = LoopLagProbe()
    app.on_startup.append(start_lag_probe)
    app.on_shutdown.append(close_sockets)
    app.on_cleanup.append(stop_lag_probe)
    return app


def build_app(settings: Settings, storage: Storage) -> web.Application:
    """Build the application that serves pages and hosts rooms in one process."""
    app = new_app(
        settings, [proxied_remote(settings.trusted_proxies), security_headers]
    )
    start_rooms(app, settings, storage)
    app.add_routes(
        [
            *page_routes(),
            web.get("/healthz", healthz),
            web.get("/metrics", metrics),
            web.get("/api/rooms/{room_id}", room_info),
            *booking_routes(),
            *background_routes(),
            web.get("/api/admin/stats", admin_stats),
            web.get("/ws", websocket),
        ]
    )
    return app


def build_front_app(settings: Settings) -> web.Application:
    """Build the front application, which relays room requests to workers."""
    app = new_app(
        settings, [proxied_remote(settings.trusted_proxies), security_headers]
    )
    app[POOL] = WorkerPool(settings)
    setup_builtin(app, settings)

    async def start_workers(app: web.Application) -> None:
        await app[POOL].start()

    async def stop_workers(app: web.Application) -> None:
        await app[POOL].stop()

    app.on_startup.append(start_workers)
    app.on_cleanup.append(stop_workers)
    app.add_routes(
        [
            *page_routes(),
            web.get("/healthz", front_healthz),
            web.get("/metrics", front_metrics),
            web.get("/api/rooms/{room_id}", front_room_info),
            web.route("*", "/api/rooms/{room_id}/{rest:.+}", front_room_info),
            web.get("/api/admin/stats", front_admin_stats),
            web.get("/ws", front_websocket),
        ]
    )
    return app


@web.middleware
async def forwarded_remote(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    # Only the front process can reach a worker's socket, so its word on the
    # client's address is trusted.
    remote = request.headers.get(FORWARDED_FOR)
    if remote:
        request = request.clone(remote=remote)
    return await handler(request)


def build_worker_app(settings: Settings, storage: Storage) -> web.Application:
    """Build a worker's application, reached only through its Unix socket."""
    app = new_app(settings, [forwarded_remote])
    start_rooms(app, settings, storage)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/internal/ready", worker_ready),
            web.get("/api/rooms/{room_id}", room_info),
            *booking_routes(),
            *background_routes(),
            web.get("/internal/stats", worker_stats),
            web.get("/ws", websocket),
        ]
    )
    return app


async def serve_until_stopped(
    runner: web.AppRunner, stop: asyncio.Event | None = None
) -> None:
    """Serve until SIGINT, SIGTERM or ``stop`` is set, then clean up."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()


async def watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` when the front process that started this worker is gone."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(1)
        if os.getppid() != parent:
            logger.warning("front process %d is gone; worker stopping", parent)
            stop.set()


async def run_server(
    settings: Settings,
    storage: Storage,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then close every connection.

    With more than one worker, this process is the front and starts them.
    """
    if settings.worker_count > 1:
        app = build_front_app(settings)
    else:
        app = build_app(settings, storage)
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    logger.info(
        "server running on http://%s:%d with %d worker process%s",
        settings.host,
        settings.port,
        settings.worker_count,
        "" if settings.worker_count == 1 else "es",
    )
    if on_started is not None:
        on_started()
    await serve_until_stopped(runner)
    logger.info("server stopped")


async def run_worker(settings: Settings, storage: Storage, socket_path: Path) -> None:
    """Host rooms for the front process until SIGTERM or the front's exit."""
    runner = web.AppRunner(build_worker_app(settings, storage), shutdown_timeout=5)
    await runner.setup()
    site = web.UnixSite(runner, str(socket_path))
    await site.start()
    stop = asyncio.Event()
    watchdog = asyncio.create_task(watch_parent(stop))
    try:
        await serve_until_stopped(runner, stop)
    finally:
        watchdog.cancel()
