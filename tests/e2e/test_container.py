"""The container image, run with podman, serving two browsers that see each other.

Runs when COWORKING_IMAGE names an image built by scripts/build-image; .ci/run
sets it. Without it the tests are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import (
    colour_of,
    invite_link,
    join,
    stats,
    wait_frames,
    wait_tile_ids,
)
from tests.support.browser import is_colour
from tests.support.container import PODMAN, ContainerServer

IMAGE = os.environ.get("COWORKING_IMAGE", "")

pytestmark = pytest.mark.skipif(
    not IMAGE, reason="set COWORKING_IMAGE to an image from scripts/build-image"
)


@pytest.fixture(scope="module")
async def container(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[ContainerServer]:
    server = ContainerServer(IMAGE, tmp_path_factory.mktemp("container-data"))
    started = time.monotonic()
    await server.start()
    print(f"container started in {time.monotonic() - started:.1f} s")
    yield server
    code = await server.stop()
    print("container output:\n" + server.log_text())
    assert code == 0, f"the container exited with status {code} on SIGTERM"


async def test_container_healthy(container: ContainerServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(container.url + "/healthz") as response:
            status = response.status
            body = await response.json()
    # The command of the image's HEALTHCHECK, run inside the container.
    check = await asyncio.create_subprocess_exec(
        *PODMAN,
        "exec",
        container.name,
        "python",
        "-m",
        "server",
        "health",
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await check.communicate()

    assert status == 200
    assert body == {"status": "ok"}
    assert check.returncode == 0, output
    assert json.loads(output) == {"status": "ok"}


async def test_container_two_see_each_other(
    container: ContainerServer, open_page: OpenPage
) -> None:
    room = await container.create_room()
    red = await open_page("red", invite_link(container, room, "Red"))
    blue = await open_page("blue", invite_link(container, room, "Blue"))
    red_id = await join(red)
    blue_id = await join(blue)

    for page, other_id, other in ((red, blue_id, "blue"), (blue, red_id, "red")):
        await wait_tile_ids(page, {red_id, blue_id})
        await wait_frames(page, {other_id}, minimum=10)
        rgb = await colour_of(page, other_id)
        assert is_colour(rgb, other), f"sees {rgb} instead of {other}"
        assert (await stats(page))["pair"] is not None


async def test_container_runs_as_non_root(container: ContainerServer) -> None:
    owner = container.db_path.stat().st_uid

    assert owner == 10001
    logged = [json.dumps(line) for line in container.output]
    assert not any(container.admin_token in line for line in logged)
