"""Fixtures for tests that drive the real server over HTTP, WebSocket and WebRTC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import sfu.ice
from tests.support.server import ServerProcess


@pytest.fixture(scope="session", autouse=True)
def loopback_candidates() -> None:
    # aioice leaves loopback out of its host candidates, and loopback is the only
    # network in the test namespace, so the scripted peers offer 127.0.0.1.
    sfu.ice.set_host_addresses(["127.0.0.1"])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def room(server: ServerProcess) -> dict[str, Any]:
    """A fresh room with the default limit, with one guest and one host invite."""
    return await server.create_room()
