"""JSON API for a room's slots and bookings, and the .ics download.

Every request carries an invite token in the Authorization header, checked like
the room request. Creating, editing and cancelling slots and making slot-bound
invites need a host invite. Listing slots, booking and cancelling an own booking
need any invite of the room.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from . import ics
from .config import Settings
from .invites import InviteError, admit, make_link
from .limits import FailureLimiter
from .schedule import (
    ScheduleError,
    Slot,
    SlotWindowError,
    format_utc,
    parse_utc,
)
from .storage import ROLE_GUEST, ROLE_HOST, Invite, Room, Storage
from .workers import read_limited

logger = logging.getLogger(__name__)

MAX_BODY_SIZE = 16 * 1024
# Hosts also see slots that ended this long ago, with who came and who did not.
HOST_HISTORY_SECONDS = 7 * 86400
SLOT_FIELDS = ("starts_at", "length", "plan", "capacity", "title")

# HTTP status for each ScheduleError code; other codes get 409.
_STATUS = {"not_found": 404, "booking_not_found": 404}


@dataclass
class ScheduleContext:
    """Dependencies of the handlers, set by the application that hosts rooms."""

    storage: Storage
    settings: Settings
    limiter: FailureLimiter


SCHEDULE = web.AppKey("schedule", ScheduleContext)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def response(self) -> web.Response:
        body = {"error": {"code": self.code, "message": self.message}, **self.extra}
        headers = {"Retry-After": "60"} if self.status == 429 else None
        return web.json_response(body, status=self.status, headers=headers)


def window_error_body(error: SlotWindowError, room: Room | None) -> dict[str, Any]:
    """Describe a refused slot-bound invite, so the page can count down."""
    return {
        "slot": error.slot.as_dict(),
        "opens_at": format_utc(error.opens_at),
        "server_time": format_utc(time.time()),
        "room": None if room is None else {"id": room.id, "name": room.name},
    }


async def authorize(request: web.Request) -> tuple[Room, Invite]:
    """Return the room and invite of the request's token, or raise ApiError."""
    context = request.app[SCHEDULE]
    remote = request.remote or "?"
    room_id = request.match_info["room_id"]
    if context.limiter.blocked(remote):
        raise ApiError(
            429,
            "too_many_attempts",
            "Too many invalid invite links were tried from your address. Wait a"
            " minute, then try again.",
        )
    try:
        return await admit(
            context.storage,
            room_id,
            bearer_token(request),
            early_seconds=context.settings.slot_early_seconds,
        )
    except InviteError as error:
        context.limiter.record_failure(remote)
        raise ApiError(403, error.code, str(error)) from error
    except SlotWindowError as error:
        room = await context.storage.get_room(room_id)
        raise ApiError(
            403, error.code, error.message, **window_error_body(error, room)
        ) from error


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def require_host(invite: Invite, room: Room, action: str) -> None:
    if invite.role != ROLE_HOST:
        logger.warning(
            "x guest invite %s of room %s tried to %s; rejected",
            invite.id,
            room.id,
            action,
        )
        raise ApiError(
            403, "forbidden", f"Only the host can {action}. Use the host link."
        )


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_SIZE:
        raise ApiError(
            413, "too_large", f"The request body exceeds {MAX_BODY_SIZE} bytes."
        )
    raw = await read_limited(request.content, MAX_BODY_SIZE)
    if len(raw) > MAX_BODY_SIZE:
        raise ApiError(
            413, "too_large", f"The request body exceeds {MAX_BODY_SIZE} bytes."
        )
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise ApiError(
            400, "bad_request", "The request body is not valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "The request body must be a JSON object.")
    return body


async def room_slot(request: web.Request, room: Room) -> Slot:
    slot_id = request.match_info["slot_id"]
    slot = await request.app[SCHEDULE].storage.get_slot(slot_id[:64])
    if slot is None or slot.room_id != room.id:
        raise ApiError(404, "not_found", f"Slot not found: {slot_id[:64]!r}")
    return slot


def slot_changes(body: dict[str, Any], partial: bool) -> dict[str, Any]:
    """Return storage arguments from a request body, with starts_at as Unix time."""
    unknown = sorted(set(body) - set(SLOT_FIELDS))
    if unknown:
        raise ValueError(f"Unknown slot fields: {', '.join(unknown)[:200]}")
    if not partial:
        missing = [name for name in ("starts_at", "length", "plan") if name not in body]
        if missing:
            raise ValueError(f"Missing slot fields: {', '.join(missing)}")
    changes = dict(body)
    if "starts_at" in changes:
        changes["starts_at"] = parse_utc(changes["starts_at"])
    return changes


async def describe_slots(
    storage: Storage, slots: list[Slot], with_bookings: bool
) -> list[dict[str, Any]]:
    now = time.time()
    described = []
    for slot in slots:
        item = slot.as_dict()
        if with_bookings:
            bookings = await storage.list_bookings(slot.id)
            item["bookings"] = [b.as_dict(slot, now) for b in bookings]
        described.append(item)
    return described


def handles_errors(handler: Any) -> Any:
    """Turn ApiError, ScheduleError and ValueError into JSON error responses."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()
        except ScheduleError as error:
            status = _STATUS.get(error.code, 409)
            return ApiError(status, error.code, error.message).response()
        except ValueError as error:
            logger.debug("x %s %s: %s", request.method, request.path, error)
            return ApiError(400, "bad_request", str(error)).response()

    return wrapped


@handles_errors
async def list_slots(request: web.Request) -> web.Response:
    room, invite = await authorize(request)
    storage = request.app[SCHEDULE].storage
    is_host = invite.role == ROLE_HOST
    # Cancelled slots stay in the list so that their bookers learn of it.
    history = HOST_HISTORY_SECONDS if is_host else 0
    slots = await storage.list_slots(
        room.id, ending_after=time.time() - history, include_cancelled=True
    )
    return web.json_response(
        {
            "slots": await describe_slots(storage, slots, with_bookings=is_host),
            "server_time": format_utc(time.time()),
            "early_minutes": request.app[SCHEDULE].settings.slot_early_minutes,
        }
    )


@handles_errors
async def create_slot(request: web.Request) -> web.Response:
    room, invite = await authorize(request)
    require_host(invite, room, "create slots")
    changes = slot_changes(await read_json(request), partial=False)
    slot = await request.app[SCHEDULE].storage.create_slot(room.id, **changes)
    return web.json_response({"slot": slot.as_dict()}, status=201)


@handles_errors
async def edit_slot(request: web.Request) -> web.Response:
    room, invite = await authorize(request)
    require_host(invite, room, "edit slots")
    slot = await room_slot(request, room)
    changes = slot_changes(await read_json(request), partial=True)
    updated = await request.app[SCHEDULE].storage.update_slot(slot.id, changes)
    return web.json_response({"slot": updated.as_dict()})


@handles_errors
async def cancel_slot(request: web.Request) -> web.Response:
    room, invite = await authorize(request)
    require_host(invite, room, "cancel slots")
    slot = await room_slot(request, room)
    cancelled = await request.app[SCHEDULE].storage.cancel_slot(slot.id)
    assert cancelled is not None
    return web.json_response({"slot": cancelled.as_dict()})


@handles_errors
async def create_booking(request: web.Request) -> web.Response:
    room, _ = await authorize(request)
    slot = await room_slot(request, room)
    body = await read_json(request)
    booking, secret = await request.app[SCHEDULE].storage.create_booking(
        slot.id, body.get("name")
    )
    updated = await request.app[SCHEDULE].storage.get_slot(slot.id)
    return web.json_response(
        {
            "booking": booking.as_dict(),
            "secret": secret,
            "slot": (updated or slot).as_dict(),
        },
        status=201,
    )


@handles_errors
async def cancel_booking(request: web.Request) -> web.Response:
    await authorize(request)
    body = await read_json(request)
    secret = body.get("secret")
    if not isinstance(secret, str) or not 1 <= len(secret) <= 128:
        raise ValueError('Field "secret" must be the cancel code of the booking.')
    booking_id = request.match_info["booking_id"][:64]
    booking = await request.app[SCHEDULE].storage.cancel_booking(booking_id, secret)
    return web.json_response({"booking": booking.as_dict()})


@handles_errors
async def remove_booking(request: web.Request) -> web.Response:
    room, invite = await authorize(request)
    require_host(invite, room, "remove bookings")
    booking_id = request.match_info["booking_id"][:64]
    booking = await request.app[SCHEDULE].storage.remove_booking(booking_id, room.id)
    return web.json_response({"booking": booking.as_dict()})


@handles_errors
async def slot_calendar(request: web.Request) -> web.Response:
    room, invite = await authorize(request)
    slot = await room_slot(request, room)
    settings = request.app[SCHEDULE].settings
    # Only a guest's own link goes into the file: a host link is a secret that
    # must not travel into shared calendars.
    url = None
    token = bearer_token(request)
    if invite.role == ROLE_GUEST and token:
        url = make_link(settings.url, room.id, token)
    domain = urlsplit(settings.url).hostname or "coworking"
    text = ics.slot_event(slot, room.name, domain, time.time(), url)
    return web.Response(
        body=text.encode(),
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{slot.id}.ics"'},
    )


@handles_errors
async def create_slot_invite(request: web.Request) -> web.Response:
    room, invite = await authorize(request)
    require_host(invite, room, "create invite links")
    slot = await room_slot(request, room)
    if slot.cancelled_at is not None or slot.ends_at <= time.time():
        raise ApiError(
            409, "slot_ended", "This slot is cancelled or over; pick an upcoming one."
        )
    storage = request.app[SCHEDULE].storage
    created = await storage.create_invite(room.id, ROLE_GUEST, slot_id=slot.id)
    url = make_link(request.app[SCHEDULE].settings.url, room.id, created.token)
    logger.info("Created invite %s bound to slot %s", created.id, slot.id)
    return web.json_response(
        {"invite": {"id": created.id, "slot_id": slot.id, "url": url}}, status=201
    )


def booking_routes() -> list[web.AbstractRouteDef]:
    base = "/api/rooms/{room_id}"
    return [
        web.get(base + "/slots", list_slots),
        web.post(base + "/slots", create_slot),
        web.patch(base + "/slots/{slot_id}", edit_slot),
        web.delete(base + "/slots/{slot_id}", cancel_slot),
        web.post(base + "/slots/{slot_id}/bookings", create_booking),
        web.get(base + "/slots/{slot_id}/calendar.ics", slot_calendar),
        web.post(base + "/slots/{slot_id}/invites", create_slot_invite),
        web.post(base + "/bookings/{booking_id}/cancel", cancel_booking),
        web.delete(base + "/bookings/{booking_id}", remove_booking),
    ]
