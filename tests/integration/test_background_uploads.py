"""Background uploads against the real server process with two workers, so
every request also passes the front process's relay."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.support.server import ServerProcess

MAX_BYTES = 300_000
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
async def upload_server(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("uploads") / "coworking.sqlite3",
        environment={
            "COWORKING_BACKGROUND_MAX_BYTES": str(MAX_BYTES),
            "COWORKING_BACKGROUND_MAX_PIXELS": str(MAX_PIXELS),
            "COWORKING_BACKGROUND_MAX_UPLOADS": "8",
        },
    )
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


def encoded(image_format: str, size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size, (200, 40, 30))
    for x in range(size[0] // 2):
        image.putpixel((x, 0), (10, 20, 240))
    output = io.BytesIO()
    image.save(output, image_format)
    return output.getvalue()


async def post(
    server: ServerProcess, room: dict[str, Any], body: bytes, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    url = f"{server.url}/api/rooms/{room['room'].id}/backgrounds"
    headers = {"Authorization": f"Bearer {token or room['guest'].token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status, await response.json()


async def get(
    server: ServerProcess, path: str, token: str
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + path, headers=headers) as response:
            return response.status, await response.read(), response.headers


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
async def test_upload_valid_image_stored_reencoded(
    upload_server: ServerProcess, image_format: str
) -> None:
    room = await upload_server.create_room()
    original = encoded(image_format)
    status, body = await post(upload_server, room, original)
    assert status == 201, body
    url = body["upload"]["url"]
    token = room["guest"].token

    status, stored, headers = await get(upload_server, url, token)
    assert status == 200
    assert headers["Content-Type"] == "image/webp"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert stored != original
    image = Image.open(io.BytesIO(stored))
    assert image.format == "WEBP"
    assert image.size == (64, 48)
    r, g, b = image.convert("RGB").getpixel((40, 30))
    assert r > 150
    assert g < 90
    assert b < 90

    status, listing, _ = await get(
        upload_server, f"/api/rooms/{room['room'].id}/backgrounds", token
    )
    assert status == 200
    assert [entry["url"] for entry in json.loads(listing)["uploads"]] == [url]


def truncated_png() -> bytes:
    data = encoded("PNG", (300, 200))
    return data[: len(data) // 2]


def oversized_pixels() -> bytes:
    # 1200 x 1000 is over MAX_PIXELS but compresses to a few kB.
    return encoded("PNG", (1200, 1000))


REJECTED = {
    "renamed text": (b"just some notes, saved as photo.png\n", 415, "text"),
    "truncated png": (truncated_png(), 422, "damaged or incomplete"),
    "too many pixels": (oversized_pixels(), 413, "1200x1000"),
    "over byte limit": (b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES), 413, "limit"),
    "svg": (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
        b"<script>alert(1)</script></svg>",
        415,
        "SVG",
    ),
    "html": (b"<!DOCTYPE html><html><body>hi</body></html>", 415, "HTML"),
    "empty": (b"", 400, "empty"),
}


@pytest.mark.parametrize("case", list(REJECTED))
async def test_upload_rejected_with_reason(
    upload_server: ServerProcess, case: str
) -> None:
    room = await upload_server.create_room()
    body, expected_status, reason = REJECTED[case]
    status, reply = await post(upload_server, room, body)
    assert status == expected_status, reply
    message = reply["error"]["message"]
    assert reason in message
    assert "PNG, JPEG or WebP" in message
    status, listing, _ = await get(
        upload_server,
        f"/api/rooms/{room['room'].id}/backgrounds",
        room["guest"].token,
    )
    assert b'"uploads": []' in listing


async def test_upload_needs_room_invite(upload_server: ServerProcess) -> None:
    room = await upload_server.create_room()
    other = await upload_server.create_room()
    status, reply = await post(
        upload_server, room, encoded("PNG"), token=other["guest"].token
    )
    assert status == 403
    assert reply["error"]["code"] == "invalid_invite"
    status, _, _ = await get(
        upload_server, f"/api/rooms/{room['room'].id}/backgrounds", "x" * 30
    )
    assert status == 403


async def test_upload_of_other_room_not_served(upload_server: ServerProcess) -> None:
    room = await upload_server.create_room()
    other = await upload_server.create_room()
    status, body = await post(upload_server, room, encoded("PNG"))
    assert status == 201
    upload_id = body["upload"]["id"]
    path = f"/api/rooms/{other['room'].id}/backgrounds/{upload_id}"
    status, _, _ = await get(upload_server, path, other["guest"].token)
    assert status == 404


async def test_upload_count_limited_per_room(upload_server: ServerProcess) -> None:
    room = await upload_server.create_room()
    for _ in range(8):
        status, body = await post(upload_server, room, encoded("PNG"))
        assert status == 201, body
    status, body = await post(upload_server, room, encoded("PNG"))
    assert status == 409
    assert "8 uploaded backgrounds" in body["error"]["message"]


async def test_builtin_image_served_with_type(upload_server: ServerProcess) -> None:
    room = await upload_server.create_room()
    status, listing, _ = await get(
        upload_server,
        f"/api/rooms/{room['room'].id}/backgrounds",
        room["guest"].token,
    )
    catalogue = json.loads(listing)
    assert len(catalogue["builtin"]) >= 6
    assert catalogue["uploads_enabled"] is True
    assert catalogue["max_bytes"] == MAX_BYTES
    entry = catalogue["builtin"][0]
    status, data, headers = await get(upload_server, entry["url"], "")
    assert status == 200
    assert headers["Content-Type"] == "image/webp"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(data)).size == (1280, 720)
    status, _, _ = await get(upload_server, "/backgrounds/no-such-image", "")
    assert status == 404


async def test_operator_folder_and_uploads_off(
    tmp_path: Path, loopback_only: None
) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.new("RGB", (32, 24), (0, 200, 0)).save(folder / "green-wall.png")
    (folder / "Bad Name.png").write_bytes(encoded("PNG"))
    (folder / "notes.txt").write_text("not an image")
    server = ServerProcess(
        tmp_path / "coworking.sqlite3",
        environment={
            "COWORKING_BACKGROUNDS_DIR": str(folder),
            "COWORKING_BACKGROUND_UPLOADS": "off",
        },
    )
    await server.start()
    try:
        room = await server.create_room()
        token = room["guest"].token
        status, listing, _ = await get(
            server, f"/api/rooms/{room['room'].id}/backgrounds", token
        )
        catalogue = json.loads(listing)
        assert catalogue["builtin"] == [
            {
                "id": "green-wall",
                "label": "Green wall",
                "url": "/backgrounds/green-wall",
            }
        ]
        assert catalogue["uploads_enabled"] is False
        status, _, headers = await get(server, "/backgrounds/green-wall", "")
        assert status == 200
        assert headers["Content-Type"] == "image/png"
        status, _, _ = await get(server, "/backgrounds/dawn", "")
        assert status == 404
        status, reply = await post(server, room, encoded("PNG"))
        assert status == 403
        assert reply["error"]["code"] == "uploads_disabled"
    finally:
        await server.stop()


def noisy_png(size: tuple[int, int]) -> bytes:
    """Return a PNG of random pixels, which barely compresses."""
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    output = io.BytesIO()
    image.save(output, "PNG")
    return output.getvalue()


async def post_in_pieces(
    server: ServerProcess, room: dict[str, Any], body: bytes
) -> tuple[int, dict[str, Any]]:
    """POST a body as chunked pieces that arrive apart, as on a slow link."""

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]
            await asyncio.sleep(0.01)

    url = f"{server.url}/api/rooms/{room['room'].id}/backgrounds"
    headers = {"Authorization": f"Bearer {room['guest'].token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=pieces(), headers=headers) as response:
            return response.status, await response.json()


async def test_large_upload_arriving_in_pieces(upload_server: ServerProcess) -> None:
    room = await upload_server.create_room()
    body = noisy_png((340, 250))
    assert 200_000 < len(body) < MAX_BYTES
    status, reply = await post_in_pieces(upload_server, room, body)
    assert status == 201, reply

    status, reply = await post_in_pieces(upload_server, room, body + bytes(MAX_BYTES))
    assert status == 413, reply
    assert reply["error"]["code"] == "too_large"
