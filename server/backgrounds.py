"""Virtual background images: the built-in set and the checks on uploads.

An upload is accepted only when Pillow decodes it as PNG, JPEG or WebP within
the configured byte and pixel limits. It is then re-encoded as WebP, so the
server never serves back the bytes a participant sent.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "static" / "backgrounds"
# File types of a backgrounds folder and the content type each is served with.
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
BUILTIN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
MAX_BUILTIN_IMAGES = 100
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")
UPLOAD_CONTENT_TYPE = "image/webp"
# Stored uploads are scaled down to fit this square: the camera picture they
# replace is at most 640x480, so more pixels would only cost bandwidth.
MAX_STORED_SIDE = 1920
WEBP_QUALITY = 85
ACCEPTED = "Upload a PNG, JPEG or WebP image"


class UploadError(Exception):
    """An upload that is not an acceptable image. The message gives the reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BuiltinImage:
    """One image of the built-in set, served from /backgrounds/ID."""

    id: str
    label: str
    path: Path

    @property
    def content_type(self) -> str:
        return IMAGE_TYPES[self.path.suffix.lower()]

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "label": self.label, "url": f"/backgrounds/{self.id}"}


def load_builtin(folder: Path) -> dict[str, BuiltinImage]:
    """List the images of a backgrounds folder by id, sorted by file name.

    The id is the file name without its suffix; files whose name is not
    lowercase letters, digits and dashes are skipped with a warning.
    """
    images: dict[str, BuiltinImage] = {}
    try:
        paths = sorted(folder.iterdir())
    except OSError as error:
        logger.error("x backgrounds folder %s unreadable: %s", folder, error)
        return images
    for path in paths:
        if path.suffix.lower() not in IMAGE_TYPES or not path.is_file():
            continue
        if not BUILTIN_ID.fullmatch(path.stem):
            logger.warning(
                "background %s skipped: a name must be lowercase letters,"
                " digits and dashes",
                path,
            )
            continue
        if len(images) == MAX_BUILTIN_IMAGES:
            logger.warning("backgrounds after the first %d skipped", len(images))
            break
        label = path.stem.replace("-", " ").capitalize()
        images.setdefault(path.stem, BuiltinImage(path.stem, label, path))
    logger.info("%d built-in backgrounds from %s", len(images), folder)
    return images


def reencode_upload(data: bytes, max_bytes: int, max_pixels: int) -> bytes:
    """Decode an uploaded image and return it re-encoded as WebP, or raise."""
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    if not data:
        raise UploadError(400, "empty", f"The file is empty. {ACCEPTED}.")
    image = open_image(data, max_pixels)
    image = ImageOps.exif_transpose(image).convert("RGB")
    image.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE))
    output = io.BytesIO()
    image.save(output, "WEBP", quality=WEBP_QUALITY)
    return output.getvalue()


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Return the fully decoded first frame of a PNG, JPEG or WebP, or raise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
    except UnidentifiedImageError:
        raise UploadError(415, "unsupported_type", describe_unknown(data)) from None
    except Image.DecompressionBombError:
        raise too_many_pixels(None, max_pixels) from None
    width, height = image.size
    if width * height > max_pixels:
        raise too_many_pixels((width, height), max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        logger.debug("upload failed to decode: %s", error)
        raise UploadError(
            422,
            "damaged_image",
            f"The {image.format} image is damaged or incomplete and could not be"
            f" decoded. {ACCEPTED} that opens in an image viewer.",
        ) from None
    return image


def too_large(max_bytes: int) -> UploadError:
    return UploadError(
        413,
        "too_large",
        f"The file is larger than the limit of {max_bytes} bytes."
        f" {ACCEPTED} of at most {max_bytes // 1000} kB.",
    )


def too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> UploadError:
    limit = f"the limit is {max_pixels} pixels (such as {example_size(max_pixels)})"
    if size is None:
        found = "The image has too many pixels"
    else:
        found = f"The image has {size[0]}x{size[1]} = {size[0] * size[1]} pixels"
    return UploadError(
        413, "too_many_pixels", f"{found}; {limit}. {ACCEPTED} with fewer pixels."
    )


def example_size(max_pixels: int) -> str:
    """Return a 16:9 size within the pixel limit, such as 1920x1080."""
    height = int((max_pixels * 9 / 16) ** 0.5)
    return f"{height * 16 // 9}x{height}"


def describe_unknown(data: bytes) -> str:
    """Say what an unreadable upload looks like, and what is accepted."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        found = "The file is an SVG drawing, which is not accepted"
    elif head.startswith((b"<!doctype html", b"<html")) or b"<script" in head:
        found = "The file is an HTML page, not an image"
    elif is_text(data[:512]):
        found = "The file is text, not an image"
    else:
        found = "The file is not a PNG, JPEG or WebP image"
    return f"{found}. {ACCEPTED}; the file name does not matter, only the content."


def is_text(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class UploadStore:
    """Re-encoded uploads on disk, one folder per room: ROOT/ROOM_ID/ID.webp."""

    def __init__(self, root: Path, max_per_room: int) -> None:
        self.root = root
        self.max_per_room = max_per_room

    def folder(self, room_id: str) -> Path:
        # Room ids reach here only after admission, which checks their form.
        return self.root / room_id

    def ids(self, room_id: str) -> list[str]:
        """Return the room's upload ids, oldest first."""
        folder = self.folder(room_id)
        if not folder.is_dir():
            return []
        files = [p for p in folder.glob("*.webp") if UPLOAD_ID.fullmatch(p.stem)]
        files.sort(key=lambda p: (p.stat().st_mtime, p.stem))
        return [p.stem for p in files]

    def save(self, room_id: str, data: bytes) -> str:
        """Store re-encoded image bytes and return the new upload id."""
        if len(self.ids(room_id)) >= self.max_per_room:
            raise UploadError(
                409,
                "too_many_uploads",
                f"This room already has {self.max_per_room} uploaded backgrounds,"
                " the limit. Use one of them or a built-in background.",
            )
        folder = self.folder(room_id)
        folder.mkdir(parents=True, exist_ok=True)
        upload_id = secrets.token_hex(16)
        partial = folder / f".{upload_id}.partial"
        partial.write_bytes(data)
        partial.replace(folder / f"{upload_id}.webp")
        return upload_id

    def path(self, room_id: str, upload_id: str) -> Path | None:
        if not UPLOAD_ID.fullmatch(upload_id):
            return None
        path = self.folder(room_id) / f"{upload_id}.webp"
        return path if path.is_file() else None
