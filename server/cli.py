"""The `coworking` command: run the server and manage rooms and invites."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .config import ConfigError, Settings, check_serve_settings, load_settings
from .invites import make_link, newest_room_invite
from .logformat import JsonFormatter
from .storage import (
    MAX_ROOM_LIMIT,
    MIN_ROOM_LIMIT,
    ROLE_GUEST,
    ROLE_HOST,
    ROLES,
    Invite,
    Room,
    SqliteStorage,
    Storage,
    StorageError,
)

logger = logging.getLogger(__name__)

DEFAULT_ROOM_NAME = "Coworking room"
MAX_ROOMS_AT_STARTUP = 10  # rooms whose links `serve` prints, the rest are counted
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HOST_LABEL = "Host link (keep it private)"
HEALTH_TIMEOUT = 5.0  # seconds for the `health` command's request

_DURATION = re.compile(r"([0-9]+)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_DURATION_SECONDS = 3650 * 86400


class CommandError(Exception):
    """Failure of a command, reported as one line on stderr with exit status 1."""


def main(argv: list[str] | None = None) -> int:
    """Run the `coworking` command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except (CommandError, ConfigError, StorageError) as error:
        return _fail(str(error))
    except sqlite3.Error as error:
        return _fail(f"Database error: {error}")
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    print(f"coworking: error: {message}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coworking", description="Self-hosted video coworking server."
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--db", metavar="PATH", help="SQLite database file (env COWORKING_DB)"
    )
    links = argparse.ArgumentParser(add_help=False)
    links.add_argument(
        "--public-url",
        metavar="URL",
        help="base URL of invite links, such as https://cowork.example.org"
        " (env COWORKING_PUBLIC_URL, default http://HOST:PORT)",
    )

    serve = commands.add_parser(
        "serve",
        parents=[database, links],
        help="run the server",
        description="Run the server. If the database has no room yet, create one"
        " with a guest and a host invite. Print the invite links once the server"
        " listens.",
    )
    serve.add_argument("--host", help="address to listen on (env COWORKING_HOST)")
    serve.add_argument(
        "--port", help="TCP port to listen on, 1 to 65535 (env COWORKING_PORT)"
    )
    serve.add_argument(
        "--ice-host-address",
        metavar="ADDRESS",
        action="append",
        help="IP address that the server offers as an ICE host candidate, repeatable"
        " (env COWORKING_ICE_HOST_ADDRESSES, default every interface address)",
    )
    serve.add_argument(
        "--ice-server",
        metavar="URL",
        action="append",
        help="STUN or TURN URL (stun:, stuns:, turn:, turns:) for browsers and the"
        " server, repeatable (env COWORKING_ICE_SERVERS, default none)",
    )
    serve.add_argument(
        "--log-level",
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (env COWORKING_LOG_LEVEL)",
    )
    serve.add_argument(
        "--workers",
        metavar="N",
        help="worker processes that host rooms, 0 for one per CPU core"
        " (env COWORKING_WORKERS, default 0)",
    )
    serve.set_defaults(command=_run_serve)

    health = commands.add_parser(
        "health",
        help="check the running server's /healthz, for container health checks",
        description="Request /healthz from the server on this machine, at"
        " COWORKING_HOST and COWORKING_PORT. Exit with status 0 when it is ready"
        " and 1 otherwise.",
    )
    health.set_defaults(command=_run_health)

    worker = commands.add_parser("worker", parents=[database, links])
    worker.add_argument("--socket", required=True, help=argparse.SUPPRESS)
    worker.set_defaults(command=_run_worker)

    room = commands.add_parser("room", help="create and list rooms")
    room_commands = room.add_subparsers(metavar="COMMAND", required=True)
    room_create = room_commands.add_parser(
        "create",
        parents=[database, links],
        help="create a room with a guest and a host invite",
    )
    room_create.add_argument(
        "name", metavar="NAME", help="room name, 1 to 80 characters"
    )
    room_create.add_argument(
        "--limit",
        type=int,
        help=f"maximum number of participants, {MIN_ROOM_LIMIT} to {MAX_ROOM_LIMIT}"
        " (default COWORKING_ROOM_LIMIT or 25)",
    )
    room_create.set_defaults(command=_run_room_create)
    room_list = room_commands.add_parser(
        "list",
        parents=[database, links],
        help="list rooms with their usable invite links",
    )
    room_list.set_defaults(command=_run_room_list)

    invite = commands.add_parser("invite", help="create and revoke invites")
    invite_commands = invite.add_subparsers(metavar="COMMAND", required=True)
    invite_create = invite_commands.add_parser(
        "create", parents=[database, links], help="create an invite link for a room"
    )
    invite_create.add_argument("room_id", metavar="ROOM_ID")
    invite_create.add_argument(
        "--role",
        choices=ROLES,
        default=ROLE_GUEST,
        help="role of the participants who join with the link (default guest)",
    )
    invite_create.add_argument(
        "--expires-in",
        metavar="DURATION",
        type=parse_duration,
        help="time until the link expires, such as 30m, 12h or 7d (default: never)",
    )
    invite_create.add_argument(
        "--slot",
        metavar="SLOT_ID",
        help="bind the link to one slot: it admits from COWORKING_SLOT_EARLY_MINUTES"
        " (default 10) before the slot's start until its end",
    )
    invite_create.set_defaults(command=_run_invite_create)
    invite_revoke = invite_commands.add_parser(
        "revoke", parents=[database], help="revoke an invite so its link stops working"
    )
    invite_revoke.add_argument(
        "invite_id", metavar="INVITE_ID", help="invite id as shown by `room list`"
    )
    invite_revoke.set_defaults(command=_run_invite_revoke)

    from .slot_commands import add_slot_commands

    add_slot_commands(commands, database, links)
    return parser


def parse_duration(text: str) -> float:
    """Return the seconds in a duration such as 90s, 30m, 12h or 7d."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a whole number followed by s, m, h or d,"
            " such as 30m, 12h or 7d"
        )
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not 0 < seconds <= _MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: it must be more than 0 and at most 3650d"
        )
    return float(seconds)


def _load_settings(args: argparse.Namespace) -> Settings:
    flags = {
        "host": "host",
        "port": "port",
        "db_path": "db",
        "public_url": "public_url",
        "ice_host_addresses": "ice_host_address",
        "ice_servers": "ice_server",
        "log_level": "log_level",
        "workers": "workers",
    }
    overrides = {name: getattr(args, flag, None) for name, flag in flags.items()}
    return load_settings(overrides)


def configure_logging(
    level: str, process_name: str = "", log_format: str = "text"
) -> None:
    """Send log records of `level` and above to stdout, as text or as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(process_name.strip("[]")))
    else:
        text_format = LOG_FORMAT
        if process_name:
            text_format = LOG_FORMAT.replace("%(name)s", f"{process_name} %(name)s", 1)
        handler.setFormatter(logging.Formatter(text_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # aioice logs every connectivity check and aiohttp every request at
        # info level; both are per-message detail here.
        logging.getLogger("aioice").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _format_time(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _format_expiry(invite: Invite) -> str:
    if invite.expires_at is None:
        return "no expiry"
    return f"expires {_format_time(invite.expires_at)}"


# health


def _run_health(args: argparse.Namespace) -> int:
    settings = load_settings()
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT) as response:
            print(response.read().decode("utf-8", "replace"))
            return 0
    except urllib.error.HTTPError as error:
        print(f"{url}: HTTP {error.code} {error.read().decode('utf-8', 'replace')}")
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}")
    return 1


# serve


def _run_serve(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    check_serve_settings(settings)
    configure_logging(settings.log_level, log_format=settings.log_format)
    return asyncio.run(_serve(settings))


def _run_worker(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    socket_path = Path(args.socket)
    configure_logging(settings.log_level, f"[{socket_path.stem}]", settings.log_format)
    return asyncio.run(_work(settings, socket_path))


async def _work(settings: Settings, socket_path: Path) -> int:
    from .app import run_worker

    storage = await SqliteStorage.open(settings.db_path)
    try:
        await run_worker(settings, storage, socket_path)
    finally:
        await storage.close()
    return 0


async def _serve(settings: Settings) -> int:
    # Imported here because the app pulls in aiortc, which the other commands do
    # not need and which takes a while to import.
    from .app import run_server

    storage = await SqliteStorage.open(settings.db_path)
    try:
        await _create_default_room(storage, settings)
        startup_text = await _format_startup_links(storage, settings.url)

        def print_links() -> None:
            # print, not logging, because the host links are secrets that must not
            # end up in log files.
            print(startup_text, flush=True)

        try:
            await run_server(settings, storage, on_started=print_links)
        except OSError as error:
            logger.error(
                "Server on %s port %s failed: %s", settings.host, settings.port, error
            )
            return 1
    finally:
        await storage.close()
    return 0


async def _create_default_room(storage: Storage, settings: Settings) -> None:
    if await storage.list_rooms():
        return
    room = await storage.create_room(DEFAULT_ROOM_NAME, settings.room_limit)
    await storage.create_invite(room.id, ROLE_GUEST)
    await storage.create_invite(room.id, ROLE_HOST)
    logger.info(
        "Created room %s (%r, limit %d) with a guest and a host invite because the"
        " database had no room",
        room.id,
        room.name,
        room.limit,
    )


async def _format_startup_links(storage: Storage, base_url: str) -> str:
    rooms = await storage.list_rooms()
    now = time.time()
    blocks = []
    for room in rooms[:MAX_ROOMS_AT_STARTUP]:
        invites = await storage.list_invites(room.id)
        lines = [room.name]
        for role, label in ((ROLE_GUEST, "Invite link"), (ROLE_HOST, _HOST_LABEL)):
            invite = newest_room_invite(invites, role, now)
            if invite is None:
                create = f"coworking invite create {room.id} --role {role}"
                lines.append(f"  {label}: none usable, create one with `{create}`")
            else:
                link = make_link(base_url, room.id, invite.token)
                lines.append(f"  {label}: {link}")
        blocks.append("\n".join(lines))
    hidden = len(rooms) - MAX_ROOMS_AT_STARTUP
    if hidden > 0:
        blocks.append(f"... and {hidden} more, see `coworking room list`")
    return "\n\n".join(blocks)


# room create, room list


def _run_room_create(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    limit = settings.room_limit if args.limit is None else args.limit
    return asyncio.run(_room_create(settings, args.name, limit))


async def _room_create(settings: Settings, name: str, limit: int) -> int:
    storage = await SqliteStorage.open(settings.db_path)
    try:
        try:
            room = await storage.create_room(name, limit)
        except ValueError as error:
            raise CommandError(str(error)) from error
        guest = await storage.create_invite(room.id, ROLE_GUEST)
        host = await storage.create_invite(room.id, ROLE_HOST)
    finally:
        await storage.close()

    print(f'Created room "{room.name}" (id {room.id}, limit {room.limit}).')
    print(f"Invite link: {make_link(settings.url, room.id, guest.token)}")
    print(f"{_HOST_LABEL}: {make_link(settings.url, room.id, host.token)}")
    return 0


def _run_room_list(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    return asyncio.run(_room_list(settings))


async def _room_list(settings: Settings) -> int:
    storage = await SqliteStorage.open(settings.db_path)
    try:
        rooms = await storage.list_rooms()
        invites_by_room = {
            room.id: await storage.list_invites(room.id) for room in rooms
        }
    finally:
        await storage.close()

    if not rooms:
        print("No rooms yet. Create one with `coworking room create NAME`.")
        return 0
    now = time.time()
    blocks = [
        _format_room(room, invites_by_room[room.id], settings.url, now)
        for room in rooms
    ]
    print("\n\n".join(blocks))
    return 0


def _format_room(room: Room, invites: list[Invite], base_url: str, now: float) -> str:
    lines = [
        room.name,
        f"  Room id: {room.id}",
        f"  Limit: {room.limit} participants",
    ]
    usable = [invite for invite in invites if invite.is_usable(now)]
    if not usable:
        lines.append(
            f"  No usable invites. Create one with `coworking invite create {room.id}`."
        )
    for invite in usable:
        link = make_link(base_url, room.id, invite.token)
        lines.append(
            f"  {invite.role} invite {invite.id}, {_format_expiry(invite)}: {link}"
        )
    return "\n".join(lines)


# invite create, invite revoke


def _run_invite_create(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    return asyncio.run(
        _invite_create(settings, args.room_id, args.role, args.expires_in, args.slot)
    )


async def _invite_create(
    settings: Settings,
    room_id: str,
    role: str,
    expires_in: float | None,
    slot_id: str | None = None,
) -> int:
    expires_at = None if expires_in is None else time.time() + expires_in
    storage = await SqliteStorage.open(settings.db_path)
    try:
        room = await storage.get_room(room_id)
        if room is None:
            raise CommandError(
                f"Room not found: {room_id!r}. List rooms with `coworking room list`."
            )
        if slot_id is not None:
            slot = await storage.get_slot(slot_id)
            if slot is None or slot.room_id != room.id:
                raise CommandError(
                    f"Slot not found in room {room.id}: {slot_id!r}. List slots with"
                    f" `coworking slot list {room.id}`."
                )
            if slot.cancelled_at is not None or slot.ends_at <= time.time():
                raise CommandError(f"Slot {slot_id} is cancelled or over.")
        invite = await storage.create_invite(room.id, role, expires_at, slot_id)
    finally:
        await storage.close()

    bound = "" if slot_id is None else f", for slot {slot_id} only"
    print(
        f'Created {invite.role} invite {invite.id} for room "{room.name}",'
        f" {_format_expiry(invite)}{bound}."
    )
    label = _HOST_LABEL if invite.role == ROLE_HOST else "Invite link"
    print(f"{label}: {make_link(settings.url, room.id, invite.token)}")
    return 0


def _run_invite_revoke(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    return asyncio.run(_invite_revoke(settings, args.invite_id))


async def _invite_revoke(settings: Settings, invite_id: str) -> int:
    storage = await SqliteStorage.open(settings.db_path)
    started = time.time()
    try:
        invite = await storage.revoke_invite(invite_id)
        if invite is None:
            raise CommandError(
                f"Invite not found: {invite_id!r}. List invites with"
                " `coworking room list`."
            )
        room = await storage.get_room(invite.room_id)
    finally:
        await storage.close()

    room_name = invite.room_id if room is None else room.name
    if invite.revoked_at is not None and invite.revoked_at < started:
        print(
            f"Invite {invite.id} ({invite.role}) of room {room_name} was already"
            f" revoked on {_format_time(invite.revoked_at)}."
        )
        return 0
    print(f"Revoked invite {invite.id} ({invite.role}) of room {room_name}.")
    return 0
