"""Health, metrics, logs and shutdown of the real server process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import sfu.frames
import sfu.ice
from tests.integration.wire import join_raw, read_until_closed
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets, vp8_clip
from tests.support.server import ROOT, ServerProcess

CLIP = vp8_clip(frames=60)
TONE = opus_packets(seconds=1.0)
METRIC_LINE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")
SHUTDOWN_LIMIT = 10.0


@pytest.fixture(scope="module", autouse=True)
def passthrough_peers() -> None:
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])


@pytest.fixture
async def own_server(
    tmp_path: Path, loopback_only: None
) -> AsyncIterator[ServerProcess]:
    """A server for one test, which may stop it or break its database."""
    metrics_token = secrets.token_urlsafe(24)
    process = ServerProcess(
        tmp_path / "coworking.sqlite3",
        environment={
            "COWORKING_METRICS_TOKEN": metrics_token,
            "COWORKING_TURN_URLS": "turn:127.0.0.1:3478",
            "COWORKING_TURN_SECRET": secrets.token_urlsafe(24),
            "COWORKING_LOG_FORMAT": "json",
            "COWORKING_LOG_LEVEL": "DEBUG",
        },
    )
    process.metrics_token = metrics_token  # type: ignore[attr-defined]
    await process.start()
    yield process
    await process.stop()
    print("server output:\n" + process.log_text())


async def get(
    url: str, token: str | None = None
) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as response:
            return response.status, await response.text(), response.headers


def parse_metrics(text: str) -> dict[str, float]:
    """Return each sample's value keyed by metric name and labels."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        samples[name + (labels or "")] = float(value)
    return samples


async def test_healthz_ready(server: ServerProcess) -> None:
    status, body, _ = await get(server.url + "/healthz")

    assert status == 200
    assert json.loads(body) == {"status": "ok"}


async def test_healthz_unready_without_database(own_server: ServerProcess) -> None:
    own_server.db_path.unlink()

    status, body, _ = await get(own_server.url + "/healthz")

    assert status == 503
    reply = json.loads(body)
    assert reply["status"] == "unavailable"
    assert any("database" in problem for problem in reply["problems"])


async def test_metrics_token_required(own_server: ServerProcess) -> None:
    url = own_server.url + "/metrics"
    metrics_token = own_server.metrics_token  # type: ignore[attr-defined]

    assert (await get(url))[0] == 403
    assert (await get(url, "x" * 32))[0] == 403
    assert (await get(url, own_server.admin_token))[0] == 200
    status, body, headers = await get(url, metrics_token)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE coworking_rooms gauge" in body


async def test_metrics_count_room_and_media(server: ServerProcess) -> None:
    room = await server.create_room()
    room_id, token = room["room"].id, room["guest"].token
    alice = Bot(
        server.url,
        room_id,
        token,
        "Alice",
        audio=LoopTrack("audio", TONE, 0.02),
        video=LoopTrack("video", CLIP, 1 / 30),
    )
    bob = Bot(server.url, room_id, token, "Bob")
    try:
        await alice.join()
        await bob.join()
        deadline = time.monotonic() + 10
        while True:
            _, text, _ = await get(server.url + "/metrics", server.admin_token)
            samples = parse_metrics(text)
            if samples["coworking_rtp_packets_forwarded_total"] > 100:
                break
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.2)
    finally:
        await alice.close()
        await bob.close()

    assert samples["coworking_rooms"] >= 1
    assert samples["coworking_participants"] >= 2
    assert samples["coworking_published_tracks"] >= 2
    assert samples["coworking_forwarded_tracks"] >= 2
    assert samples["coworking_peer_connections"] >= 2
    assert samples["coworking_websocket_connections"] >= 2
    packets = samples["coworking_rtp_packets_forwarded_total"]
    assert samples["coworking_rtp_bytes_forwarded_total"] > packets * 12
    assert samples["coworking_keyframe_requests_total"] >= 0
    for process in ("front", "worker-0", "worker-1"):
        lag = samples[f'coworking_event_loop_lag_seconds{{process="{process}"}}']
        assert 0 <= lag < 5


async def test_shutdown_tells_clients(own_server: ServerProcess) -> None:
    room = await own_server.create_room("Kept room")
    room_id, token = room["room"].id, room["guest"].token
    publisher = Bot(
        own_server.url,
        room_id,
        token,
        "Alice",
        audio=LoopTrack("audio", TONE, 0.02),
        video=LoopTrack("video", CLIP, 1 / 30),
    )
    async with aiohttp.ClientSession() as http:
        ws, _ = await join_raw(http, own_server, room_id, token, "Bo")
        try:
            await publisher.join()
            assert own_server.process is not None
            started = time.monotonic()
            own_server.process.send_signal(signal.SIGTERM)
            texts, code = await read_until_closed(ws, timeout=SHUTDOWN_LIMIT)
            returncode = await asyncio.wait_for(
                own_server.process.wait(), SHUTDOWN_LIMIT
            )
            elapsed = time.monotonic() - started
        finally:
            await publisher.close()

    messages = [json.loads(text) for text in texts]
    closing = [m for m in messages if m["type"] == "closing"]
    assert len(closing) == 1, messages
    assert "restarting" in closing[0]["message"]
    assert code == 1001
    assert returncode == 0
    assert elapsed < SHUTDOWN_LIMIT
    with sqlite3.connect(own_server.db_path) as database:
        assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = [row[0] for row in database.execute("SELECT name FROM rooms")]
    assert "Kept room" in names


async def test_logs_json_without_secrets(own_server: ServerProcess) -> None:
    room = await own_server.create_room()
    async with aiohttp.ClientSession() as http:
        ws, welcome = await join_raw(
            http, own_server, room["room"].id, room["guest"].token
        )
        await ws.close()
    metrics_token = own_server.metrics_token  # type: ignore[attr-defined]
    await get(own_server.url + "/metrics", metrics_token)
    await own_server.stop()

    log = own_server.log_text()
    secrets_used = [
        own_server.admin_token,
        metrics_token,
        own_server.environment["COWORKING_TURN_SECRET"],
        welcome["ice_servers"][0]["credential"],
    ]
    for secret in secrets_used:
        assert secret not in log
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(r["message"].startswith("server running") for r in records)
    assert {r["process"] for r in records} >= {"main", "worker-0", "worker-1"}
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


async def test_health_command_reports_ready(server: ServerProcess) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COWORKING_")}
    environ["COWORKING_PORT"] = str(server.port)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "health",
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()

    assert process.returncode == 0
    assert json.loads(output) == {"status": "ok"}
