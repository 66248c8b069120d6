"""HTTP routes of virtual backgrounds: the built-in set and per-room uploads.

Built-in images are public (GET /backgrounds/ID). A room's list, its uploads
and the upload endpoint need an invite of the room in the Authorization
header, checked like the room request.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from .backgrounds import (
    BUILTIN_DIR,
    UPLOAD_CONTENT_TYPE,
    BuiltinImage,
    UploadError,
    UploadStore,
    load_builtin,
    reencode_upload,
)
from .booking_api import SCHEDULE, ApiError, authorize
from .config import Settings
from .workers import read_limited

logger = logging.getLogger(__name__)

BUILTIN = web.AppKey("builtin_backgrounds", dict)
UPLOADS = web.AppKey("background_uploads", UploadStore)
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def uploads_folder(settings: Settings) -> Path:
    return settings.db_path.parent / "backgrounds"


def setup_builtin(app: web.Application, settings: Settings) -> None:
    """Load the built-in set for the process that serves pages."""
    app[BUILTIN] = load_builtin(settings.backgrounds_dir or BUILTIN_DIR)


def setup_uploads(app: web.Application, settings: Settings) -> None:
    """Open the upload folder and the built-in list for a process hosting rooms."""
    app[BUILTIN] = load_builtin(settings.backgrounds_dir or BUILTIN_DIR)
    app[UPLOADS] = UploadStore(
        uploads_folder(settings), settings.background_max_uploads
    )


async def builtin_image(request: web.Request) -> web.StreamResponse:
    image: BuiltinImage | None = request.app[BUILTIN].get(request.match_info["id"])
    if image is None:
        raise web.HTTPNotFound(text="No built-in background has this id.")
    return await image_response(image.path, image.content_type)


async def list_backgrounds(request: web.Request) -> web.Response:
    try:
        room, _ = await authorize(request)
    except ApiError as error:
        return error.response()
    settings = request.app[SCHEDULE].settings
    uploads = request.app[UPLOADS].ids(room.id) if settings.background_uploads else []
    return web.json_response(
        {
            "builtin": [image.as_dict() for image in request.app[BUILTIN].values()],
            "uploads": [upload_entry(room.id, upload) for upload in uploads],
            "uploads_enabled": settings.background_uploads,
            "max_bytes": settings.background_max_bytes,
            "max_pixels": settings.background_max_pixels,
        }
    )


def upload_entry(room_id: str, upload_id: str) -> dict[str, str]:
    return {"id": upload_id, "url": f"/api/rooms/{room_id}/backgrounds/{upload_id}"}


async def upload_background(request: web.Request) -> web.Response:
    try:
        room, invite = await authorize(request)
    except ApiError as error:
        return error.response()
    settings = request.app[SCHEDULE].settings
    if not settings.background_uploads:
        return ApiError(
            403,
            "uploads_disabled",
            "This server does not accept uploaded backgrounds. Choose blur or a"
            " built-in background.",
        ).response()
    limit = settings.background_max_bytes
    data = await read_limited(request.content, limit)
    try:
        encoded = await asyncio.to_thread(
            reencode_upload, data, limit, settings.background_max_pixels
        )
        upload_id = await asyncio.to_thread(request.app[UPLOADS].save, room.id, encoded)
    except UploadError as error:
        logger.warning(
            "x background upload of %d bytes by invite %s in room %s rejected: %s",
            len(data),
            invite.id,
            room.id,
            error.code,
        )
        return ApiError(error.status, error.code, error.message).response()
    logger.info(
        "background %s uploaded in room %s by invite %s (%d bytes stored)",
        upload_id,
        room.id,
        invite.id,
        len(encoded),
    )
    return web.json_response({"upload": upload_entry(room.id, upload_id)}, status=201)


async def uploaded_image(request: web.Request) -> web.StreamResponse:
    try:
        room, _ = await authorize(request)
    except ApiError as error:
        return error.response()
    path = request.app[UPLOADS].path(room.id, request.match_info["upload_id"])
    if path is None or not request.app[SCHEDULE].settings.background_uploads:
        return ApiError(
            404, "not_found", "This room has no uploaded background with this id."
        ).response()
    return await image_response(path, UPLOAD_CONTENT_TYPE)


async def image_response(path: Path, content_type: str) -> web.Response:
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except OSError as error:
        logger.error("x background %s unreadable: %s", path, error)
        raise web.HTTPNotFound(text="This background could not be read.") from None
    return web.Response(body=body, content_type=content_type, headers=NOSNIFF)


def builtin_routes() -> list[web.AbstractRouteDef]:
    return [web.get("/backgrounds/{id}", builtin_image)]


def background_routes() -> list[web.AbstractRouteDef]:
    base = "/api/rooms/{room_id}/backgrounds"
    return [
        web.get(base, list_backgrounds),
        web.post(base, upload_background),
        web.get(base + "/{upload_id}", uploaded_image),
    ]
