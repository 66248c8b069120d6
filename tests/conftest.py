"""Fixtures shared by the integration and browser tests."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.network import require_loopback_only  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.turn import TurnServer  # noqa: E402


@pytest.fixture(scope="session")
def loopback_only() -> None:
    require_loopback_only()


@pytest.fixture(scope="session")
async def server(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    """One real server process for the whole session, on a fresh database."""
    process = ServerProcess(tmp_path_factory.mktemp("server") / "coworking.sqlite3")
    await process.start()
    yield process
    await process.stop()
    # Shown by pytest only when a test failed.
    print("server output:\n" + process.log_text())


@pytest.fixture(scope="session")
async def turn_relay(
    tmp_path_factory: pytest.TempPathFactory, loopback_only: None
) -> AsyncIterator[TurnServer]:
    """Debian's coturn on loopback with the compose file's configuration."""
    if not TurnServer.available():
        message = "coturn's turnserver is not installed (Debian package coturn)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    relay = TurnServer(tmp_path_factory.mktemp("turn"))
    await relay.start()
    yield relay
    await relay.stop()
    print("turnserver output:\n" + relay.log_text())


@pytest.fixture(scope="session", autouse=True)
def debug_logging() -> None:
    if os.environ.get("COWORKING_TEST_DEBUG"):
        import logging

        logging.basicConfig(level=logging.DEBUG)
