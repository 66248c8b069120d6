"""Headless Chromium participants with fake cameras, driven by Playwright."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"

# Y, U, V values of solid colours that survive a VP8 round trip recognisably.
COLOURS = {
    "red": (81, 90, 240),
    "blue": (41, 240, 110),
    "green": (145, 54, 34),
    "yellow": (210, 16, 146),
}

BROWSER_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # WebRTC ignores loopback addresses unless told otherwise, and loopback is
    # the only interface in the test namespace.
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]


def write_y4m(path: Path, colour: str, width: int = 320, height: int = 240) -> Path:
    """Write a one-second solid-colour clip that Chromium loops as its camera."""
    y, u, v = COLOURS[colour]
    frame = (
        b"FRAME\n"
        + bytes([y]) * (width * height)
        + bytes([u]) * (width * height // 4)
        + bytes([v]) * (width * height // 4)
    )
    header = f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * 15)
    return path


def is_colour(rgb: list[int] | None, colour: str) -> bool:
    """Tell whether an RGB triple read back from a video is the named colour."""
    if rgb is None:
        return False
    r, g, b = rgb
    if colour == "red":
        return r > 180 and g < 80 and b < 80
    if colour == "blue":
        return b > 180 and r < 80 and g < 80
    if colour == "green":
        return g > 150 and r < 100 and b < 100
    if colour == "yellow":
        return r > 180 and g > 180 and b < 80
    raise ValueError(f"unknown colour {colour!r}")


def write_striped_y4m(path: Path, width: int = 320, height: int = 240) -> Path:
    """Write a clip of vertical stripes, 8 pixels wide, alternating red and blue.

    A blur softens the edges between stripes, which a solid colour would hide.
    """
    colours = [COLOURS["red"], COLOURS["blue"]]
    luma = bytes(colours[(x // 8) % 2][0] for x in range(width)) * height
    chroma_u = bytes(colours[(x // 4) % 2][1] for x in range(width // 2))
    chroma_v = bytes(colours[(x // 4) % 2][2] for x in range(width // 2))
    frame = b"FRAME\n" + luma + chroma_u * (height // 2) + chroma_v * (height // 2)
    header = f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * 15)
    return path
