"""Upload checks and the built-in folder, without a server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from server.backgrounds import (
    UploadError,
    UploadStore,
    example_size,
    load_builtin,
    reencode_upload,
)


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    output = io.BytesIO()
    Image.new(mode, size).save(output, "PNG")
    return output.getvalue()


def test_reencode_scales_large_image_down() -> None:
    data = reencode_upload(png((3000, 1500)), 10_000_000, 10_000_000)
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    assert image.size == (1920, 960)


def test_reencode_drops_alpha() -> None:
    source = Image.new("RGBA", (40, 30), (10, 200, 10, 128))
    output = io.BytesIO()
    source.save(output, "PNG")
    image = Image.open(io.BytesIO(reencode_upload(output.getvalue(), 10**6, 10**6)))
    assert image.mode == "RGB"


def test_reencode_drops_exif() -> None:
    exif = Image.Exif()
    exif[0x010E] = "taken at home, 12 Example Street"
    output = io.BytesIO()
    Image.new("RGB", (40, 30)).save(output, "JPEG", exif=exif)
    assert b"Example Street" in output.getvalue()
    data = reencode_upload(output.getvalue(), 10**6, 10**6)
    assert b"Example Street" not in data
    assert "exif" not in Image.open(io.BytesIO(data)).info


def test_pixel_limit_checked_before_decoding() -> None:
    with pytest.raises(UploadError) as caught:
        reencode_upload(png((2001, 500)), 10**6, 1_000_000)
    assert caught.value.code == "too_many_pixels"
    assert "2001x500" in caught.value.message


def test_gif_rejected_as_unsupported() -> None:
    output = io.BytesIO()
    Image.new("RGB", (8, 8)).save(output, "GIF")
    with pytest.raises(UploadError) as caught:
        reencode_upload(output.getvalue(), 10**6, 10**6)
    assert caught.value.status == 415
    assert "not a PNG, JPEG or WebP image" in caught.value.message


def test_example_size_fits_limit() -> None:
    width, height = (int(part) for part in example_size(2_073_600).split("x"))
    assert width * height <= 2_073_600
    assert (width, height) == (1920, 1080)


def test_builtin_folder_skips_bad_names(tmp_path: Path) -> None:
    (tmp_path / "calm-sea.webp").write_bytes(b"")
    (tmp_path / "Upper.png").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    images = load_builtin(tmp_path)
    assert list(images) == ["calm-sea"]
    assert images["calm-sea"].label == "Calm sea"
    assert images["calm-sea"].content_type == "image/webp"


def test_store_rejects_bad_upload_id(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, 5)
    upload_id = store.save("room1", b"data")
    assert store.path("room1", upload_id) is not None
    assert store.path("room1", "../room1/" + upload_id) is None
    assert store.path("room2", upload_id) is None
    assert store.ids("room1") == [upload_id]
