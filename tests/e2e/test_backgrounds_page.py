"""Virtual backgrounds in real Chromium: what the others receive, and the state.

The fake cameras show no person, so the segmentation model finds none and
the whole frame is background: a chosen picture replaces all of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, Playwright

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import (
    invite_link,
    join,
    poll,
    wait_frames,
    wait_phase,
    wait_tile_ids,
)
from tests.support.browser import BROWSER_ARGS, CHROMIUM, write_striped_y4m
from tests.support.server import ServerProcess

PICTURE = "studio-grey"
# Largest difference of a colour channel between a grid cell of the received
# frame and the same cell of the picture: VP8 and scaling shift colours.
CELL_TOLERANCE = 40
EFFECT_TIMEOUT = 30.0

# Averages a video element, or the picture drawn like the effect draws it
# (cropped to cover), over a 4 x 3 grid of cells. Returns 12 [r, g, b].
GRID_COLOURS = """async ([selector, pictureUrl]) => {
    const width = 64, height = 48, columns = 4, rows = 3;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d', {willReadFrequently: true});
    if (pictureUrl) {
        const blob = await (await fetch(pictureUrl)).blob();
        const image = await createImageBitmap(blob);
        const scale = Math.max(width / image.width, height / image.height);
        const sw = width / scale, sh = height / scale;
        context.drawImage(image, (image.width - sw) / 2, (image.height - sh) / 2,
            sw, sh, 0, 0, width, height);
    } else {
        const video = document.querySelector(selector);
        if (!video || video.videoWidth === 0) {
            return null;
        }
        context.drawImage(video, 0, 0, width, height);
    }
    const pixels = context.getImageData(0, 0, width, height).data;
    const cells = [];
    for (let row = 0; row < rows; row++) {
        for (let column = 0; column < columns; column++) {
            const sums = [0, 0, 0];
            let count = 0;
            for (let y = row * height / rows; y < (row + 1) * height / rows; y++) {
                for (let x = column * width / columns;
                        x < (column + 1) * width / columns; x++) {
                    const i = (y * width + x) * 4;
                    sums[0] += pixels[i];
                    sums[1] += pixels[i + 1];
                    sums[2] += pixels[i + 2];
                    count++;
                }
            }
            cells.push(sums.map((sum) => Math.round(sum / count)));
        }
    }
    return cells;
}"""

# Mean absolute difference between horizontally adjacent pixels of a video,
# in the middle rows: high for sharp stripes, low once they are blurred.
SHARPNESS = """(selector) => {
    const video = document.querySelector(selector);
    if (!video || video.videoWidth === 0) {
        return null;
    }
    const width = video.videoWidth, height = video.videoHeight;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d', {willReadFrequently: true});
    context.drawImage(video, 0, 0);
    const top = Math.floor(height / 3), rows = Math.floor(height / 3);
    const pixels = context.getImageData(0, top, width, rows).data;
    let total = 0, count = 0;
    for (let y = 0; y < rows; y++) {
        for (let x = 1; x < width; x++) {
            const i = (y * width + x) * 4;
            total += Math.abs(pixels[i] - pixels[i - 4])
                + Math.abs(pixels[i + 2] - pixels[i - 2]);
            count++;
        }
    }
    return total / count;
}"""


def tile_video(participant_id: str) -> str:
    return f'#tiles .tile[data-participant="{participant_id}"] video'


async def grid_colours(page: Page, selector: str) -> list[list[int]] | None:
    return await page.evaluate(GRID_COLOURS, [selector, None])


async def picture_colours(page: Page, picture: str) -> list[list[int]]:
    return await page.evaluate(GRID_COLOURS, ["", f"/backgrounds/{picture}"])


def largest_difference(a: list[list[int]] | None, b: list[list[int]]) -> int:
    if a is None:
        return 999
    return max(
        abs(x - y)
        for cell_a, cell_b in zip(a, b, strict=True)
        for x, y in zip(cell_a, cell_b, strict=True)
    )


def all_red(cells: list[list[int]] | None) -> bool:
    return cells is not None and all(r > 180 and g < 80 and b < 80 for r, g, b in cells)


async def keep_effect_on(page: Page) -> None:
    """Stop the page from turning the effect down on a busy test machine."""
    await wait_phase(page, "prejoin")
    await page.evaluate(
        "() => window.e2eTuneBackground({slowShare: 1e6, slowWindowMs: 1e9})"
    )


async def choose(page: Page, value: str) -> None:
    await page.select_option("#background-select", value)


async def effect_stats(page: Page) -> dict[str, Any] | None:
    return await page.evaluate("() => window.e2eBackground()")


async def wait_segmented(page: Page, minimum: int = 3) -> dict[str, Any]:
    """Wait until the model produced masks, so the effect is fully on."""
    return await poll(
        lambda: effect_stats(page),
        lambda s: s is not None and s["modelReady"] and s["segmented"] >= minimum,
        EFFECT_TIMEOUT,
        "segmentation masks",
    )


async def tile_background(page: Page, participant_id: str) -> dict[str, Any] | None:
    return await page.evaluate(
        """(id) => {
            const tile = document.querySelector(
                `#tiles .tile[data-participant="${id}"]`);
            if (!tile) { return null; }
            const badge = tile.querySelector('.tile-background');
            return {value: tile.dataset.background ?? null,
                    label: badge && !badge.hidden ? badge.textContent : ''};
        }""",
        participant_id,
    )


async def wait_tile_background(
    page: Page, participant_id: str, value: str, label: str
) -> None:
    await poll(
        lambda: tile_background(page, participant_id),
        lambda t: t == {"value": value, "label": label},
        10.0,
        f"tile background {value}",
    )


async def test_picture_replaces_camera_for_others(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    alice = await open_page("red", invite_link(server, room, "Alice"))
    bob = await open_page("blue", invite_link(server, room, "Bob"))
    await keep_effect_on(alice)
    expected = await picture_colours(alice, PICTURE)

    # The pre-join preview shows the effect before joining.
    await choose(alice, f"builtin:{PICTURE}")
    stats = await wait_segmented(alice)
    # Headless Chromium offers WebGL through SwiftShader.
    assert stats["compositor"] == "webgl"
    await poll(
        lambda: grid_colours(alice, "#preview"),
        lambda cells: largest_difference(cells, expected) <= CELL_TOLERANCE,
        EFFECT_TIMEOUT,
        "the picture in the preview",
    )

    alice_id = await join(alice)
    bob_id = await join(bob)
    await wait_tile_ids(bob, {alice_id, bob_id})
    await wait_frames(bob, {alice_id}, timeout=20.0)
    received = await poll(
        lambda: grid_colours(bob, tile_video(alice_id)),
        lambda cells: largest_difference(cells, expected) <= CELL_TOLERANCE,
        EFFECT_TIMEOUT,
        "the picture in the video Bob receives",
    )
    assert not all_red(received)
    await wait_tile_background(
        bob, alice_id, f"builtin:{PICTURE}", "Virtual background"
    )

    # Turning the effect off sends the camera again.
    await choose(alice, "none")
    await poll(
        lambda: grid_colours(bob, tile_video(alice_id)),
        all_red,
        EFFECT_TIMEOUT,
        "the red camera after the effect is off",
    )
    await wait_tile_background(bob, alice_id, "none", "")


async def test_canvas2d_fallback_sends_picture(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    alice = await open_page("red", invite_link(server, room, "Alice"))
    bob = await open_page("blue", invite_link(server, room, "Bob"))
    await keep_effect_on(alice)
    expected = await picture_colours(alice, PICTURE)
    alice_id = await join(alice)
    await join(bob)
    await wait_frames(bob, {alice_id}, timeout=20.0)

    await choose(alice, f"builtin:{PICTURE}")
    await wait_segmented(alice)
    # The page switches the running effect to a new 2D canvas and its track,
    # as it does when the WebGL context is lost.
    await alice.evaluate("() => window.e2eBackgroundCanvas2d()")
    stats = await effect_stats(alice)
    assert stats is not None
    assert stats["compositor"] == "2d"
    received = await poll(
        lambda: grid_colours(bob, tile_video(alice_id)),
        lambda cells: largest_difference(cells, expected) <= CELL_TOLERANCE,
        EFFECT_TIMEOUT,
        "the picture from the 2D canvas in the video Bob receives",
    )
    assert not all_red(received)

    # A frozen last frame would also show the picture: the camera in between
    # proves that the picture after it comes from the 2D canvas.
    await choose(alice, "none")
    await poll(
        lambda: grid_colours(bob, tile_video(alice_id)),
        all_red,
        EFFECT_TIMEOUT,
        "the red camera after the effect is off",
    )
    await choose(alice, f"builtin:{PICTURE}")
    stats = await wait_segmented(alice)
    assert stats["compositor"] == "2d"
    await poll(
        lambda: grid_colours(bob, tile_video(alice_id)),
        lambda cells: largest_difference(cells, expected) <= CELL_TOLERANCE,
        EFFECT_TIMEOUT,
        "the picture again from the 2D canvas",
    )


async def test_background_state_reaches_late_joiner(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    alice = await open_page("red", invite_link(server, room, "Alice"))
    bob = await open_page("blue", invite_link(server, room, "Bob"))
    await keep_effect_on(alice)
    alice_id = await join(alice)
    bob_id = await join(bob)
    await choose(alice, "blur-light")
    await wait_segmented(alice)
    await wait_tile_background(bob, alice_id, "blur-light", "Background blurred")
    await wait_tile_background(alice, alice_id, "blur-light", "Background blurred")

    carol = await open_page("green", invite_link(server, room, "Carol"))
    carol_id = await join(carol)
    await wait_tile_ids(carol, {alice_id, bob_id, carol_id})
    await wait_tile_background(carol, alice_id, "blur-light", "Background blurred")
    await wait_tile_background(carol, bob_id, "none", "")

    # The browser remembers the choice for the next visit.
    await alice.reload()
    await keep_effect_on(alice)
    await poll(
        lambda: alice.evaluate(
            "() => document.getElementById('background-select').value"
        ),
        lambda value: value == "blur-light",
        10.0,
        "the remembered background",
    )
    stats = await wait_segmented(alice)
    assert stats["choice"] == "blur-light"


@pytest.fixture
async def striped_browser(
    playwright: Playwright, tmp_path: Path
) -> AsyncIterator[Browser]:
    """A Chromium whose camera shows sharp vertical stripes, for the blur test."""
    camera = write_striped_y4m(tmp_path / "stripes.y4m")
    browser = await playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"],
    )
    yield browser
    await browser.close()


async def sharpness_after(viewer: Page, selector: str, what: str, check: Any) -> float:
    return await poll(
        lambda: viewer.evaluate(SHARPNESS, selector), check, EFFECT_TIMEOUT, what
    )


async def test_blur_softens_received_frames(
    server: ServerProcess, open_page: OpenPage, striped_browser: Browser
) -> None:
    room = await server.create_room()
    context = await striped_browser.new_context()
    try:
        alice = await context.new_page()
        await alice.goto(invite_link(server, room, "Alice"))
        bob = await open_page("blue", invite_link(server, room, "Bob"))
        await keep_effect_on(alice)
        alice_id = await join(alice)
        await join(bob)
        await wait_frames(bob, {alice_id}, timeout=20.0)
        selector = tile_video(alice_id)
        sharp = await sharpness_after(
            bob,
            selector,
            "sharp stripes",
            lambda value: value is not None and value > 5,
        )

        await choose(alice, "blur-light")
        await wait_segmented(alice)
        light = await sharpness_after(
            bob,
            selector,
            "lightly blurred stripes",
            lambda value: value is not None and value < sharp * 0.7,
        )

        await choose(alice, "blur-strong")
        await wait_segmented(alice)
        strong = await sharpness_after(
            bob,
            selector,
            "strongly blurred stripes",
            lambda value: value is not None and value < light * 0.8,
        )
        assert strong < light < sharp

        await choose(alice, "none")
        await sharpness_after(
            bob,
            selector,
            "sharp stripes again",
            lambda value: value is not None and value > sharp * 0.8,
        )
    finally:
        await context.close()


async def test_slow_frames_turn_effect_down_then_off(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    alice = await open_page("red", invite_link(server, room, "Alice"))
    bob = await open_page("blue", invite_link(server, room, "Bob"))
    await wait_phase(alice, "prejoin")
    alice_id = await join(alice)
    await join(bob)
    # Every frame counts as too slow, and half a second of it is enough.
    await alice.evaluate(
        "() => window.e2eTuneBackground({slowShare: 0, slowWindowMs: 500})"
    )
    await choose(alice, "blur-strong")
    await wait_tile_background(bob, alice_id, "blur-strong", "Background blurred")

    lowered = await poll(
        lambda: effect_stats(alice),
        lambda s: s is not None and s["frameRate"] < 15,
        EFFECT_TIMEOUT,
        "a lower frame rate",
    )
    assert lowered["choice"] == "blur-strong"
    await wait_tile_background(bob, alice_id, "blur-light", "Background blurred")
    await wait_tile_background(bob, alice_id, "none", "")

    notice = await alice.evaluate(
        "() => document.getElementById('background-notice').textContent"
    )
    assert "background effect is off" in notice
    assert "ms per frame" in notice
    menu = await alice.evaluate(
        "() => document.getElementById('background-select').value"
    )
    assert menu == "none"
    await poll(
        lambda: grid_colours(bob, tile_video(alice_id)),
        all_red,
        EFFECT_TIMEOUT,
        "the red camera after the effect turned itself off",
    )


def solid_png(path: Path, rgb: tuple[int, int, int]) -> Path:
    Image.new("RGB", (640, 360), rgb).save(path, "PNG")
    return path


async def test_uploaded_picture_sent_and_errors_shown(
    server: ServerProcess, open_page: OpenPage, tmp_path: Path
) -> None:
    room = await server.create_room()
    alice = await open_page("red", invite_link(server, room, "Alice"))
    bob = await open_page("blue", invite_link(server, room, "Bob"))
    await keep_effect_on(alice)
    alice_id = await join(alice)
    await join(bob)
    await wait_frames(bob, {alice_id}, timeout=20.0)

    notes = tmp_path / "holiday.png"
    notes.write_text("not a picture at all\n")
    await alice.set_input_files("#background-upload", str(notes))
    notice = await poll(
        lambda: alice.evaluate(
            "() => document.getElementById('background-notice').textContent"
        ),
        lambda text: "not an image" in text,
        10.0,
        "the upload error in the notice",
    )
    assert "PNG, JPEG or WebP" in notice

    picture = solid_png(tmp_path / "green.png", (30, 200, 60))
    await alice.set_input_files("#background-upload", str(picture))
    choice = await poll(
        lambda: alice.evaluate(
            "() => document.getElementById('background-select').value"
        ),
        lambda value: value.startswith("upload:"),
        10.0,
        "the uploaded picture chosen",
    )
    await wait_tile_background(bob, alice_id, choice, "Virtual background")
    await wait_segmented(alice)
    await poll(
        lambda: grid_colours(bob, tile_video(alice_id)),
        lambda cells: (
            cells is not None
            and all(g > 150 and r < 100 and b < 110 for r, g, b in cells)
        ),
        EFFECT_TIMEOUT,
        "the uploaded green picture in the video Bob receives",
    )
