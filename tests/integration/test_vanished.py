"""Participants that vanish without a goodbye: killed, frozen, cut off, or gone
between their offer and the server's answer.

The server learns of a silent loss from the WebSocket liveness timeout (15 s
without a message) or from the media connection failing, whichever comes
first, and of a killed process from the kernel closing its TCP connection.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import sfu.frames
import sfu.ice
from tests.integration.wire import join_message, open_socket, receive_json, send_json
from tests.support.bot import Bot
from tests.support.server import ROOT, ServerProcess

LIVENESS_TIMEOUT = 15.0
# A killed process's TCP connection is closed by its kernel, so the server
# sees the close at once; this leaves room for a busy machine.
CLEAN_CLOSE_LIMIT = 5.0
# The liveness timeout plus the time to notice and tell the others.
SILENT_LOSS_LIMIT = LIVENESS_TIMEOUT + 5.0
# The largest gap allowed between two video frames that a staying subscriber
# receives while another subscriber of the same publisher is gone.
MAX_FRAME_GAP = 1.0


@pytest.fixture(scope="module", autouse=True)
def passthrough_peers() -> None:
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])


class BotProcess:
    """tests/support/bot_process.py running as a child process."""

    def __init__(self, server: ServerProcess, room: dict[str, Any], name: str) -> None:
        self.args = [
            sys.executable,
            "-m",
            "tests.support.bot_process",
            server.url,
            room["room"].id,
            room["guest"].token,
            name,
        ]
        self.process: asyncio.subprocess.Process | None = None
        self.id = ""

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=30)
        words = line.decode().split()
        assert words[:1] == ["joined"], f"bot process did not join: {line!r}"
        self.id = words[1]

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.kill()
        await self.process.wait()


def drop_traffic_of(pid: int) -> list[list[str]]:
    """Drop every packet to and from the sockets of process ``pid``.

    Returns the iptables rules added, so they can be deleted. Loopback packets
    pass OUTPUT once, so matching there on both ports cuts both directions.
    """
    if shutil.which("iptables") is None or shutil.which("ss") is None:
        message = "iptables and ss are needed (Debian packages iptables, iproute2)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    listing = subprocess.run(
        ["ss", "-Htunap"], check=True, capture_output=True, text=True
    ).stdout
    rules = []
    for line in listing.splitlines():
        if f"pid={pid}," not in line:
            continue
        fields = line.split()
        protocol, local = fields[0], fields[4]
        port = local.rsplit(":", 1)[1]
        for direction in ("--sport", "--dport"):
            rules.append(["OUTPUT", "-p", protocol, direction, port, "-j", "DROP"])
    assert rules, f"no sockets of process {pid} found:\n{listing}"
    for rule in rules:
        subprocess.run(["iptables", "-I", *rule], check=True)
    return rules


def delete_rules(rules: list[list[str]]) -> None:
    for rule in rules:
        subprocess.run(["iptables", "-D", *rule], check=False)


@pytest.fixture
async def watchers(
    server: ServerProcess, room: dict[str, Any]
) -> AsyncIterator[tuple[Bot, Bot]]:
    """Alice publishes and watches, Carol watches: both stay in the room."""
    from tests.integration.test_forwarding import publisher_tracks

    room_id, token = room["room"].id, room["guest"].token
    alice = Bot(server.url, room_id, token, "Alice", **publisher_tracks())
    carol = Bot(server.url, room_id, token, "Carol")
    try:
        await alice.join()
        alice.keepalive()
        await carol.join()
        carol.keepalive()
        yield alice, carol
    finally:
        await carol.close()
        await alice.close()


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


def largest_gap(times: list[float], since: float) -> float:
    recent = [t for t in times if t >= since]
    if len(recent) < 2:
        return float("inf")
    return max(b - a for a, b in zip(recent, recent[1:]))


@pytest.mark.parametrize("how", ["killed", "frozen", "traffic dropped"])
async def test_vanished_peer_released(
    server: ServerProcess, room: dict[str, Any], watchers: tuple[Bot, Bot], how: str
) -> None:
    alice, carol = watchers
    room_id = room["room"].id
    await wait_other_rooms_closed(server, room_id)
    baseline = await server_counts(server, room_id)
    bob = BotProcess(server, room, "Bob")
    rules: list[list[str]] = []
    try:
        await bob.start()
        await wait_until(
            lambda: len(alice.frames_from(bob.id)) >= 10, 15, "Bob's video at Alice"
        )
        await wait_until(
            lambda: len(carol.frames_from(alice.id)) >= 10, 15, "Alice's video at Carol"
        )
        during = await server_counts(server, room_id)
        gone_at = time.monotonic()
        assert bob.process is not None
        if how == "killed":
            bob.signal(signal.SIGKILL)
        elif how == "frozen":
            bob.signal(signal.SIGSTOP)
        else:
            rules = drop_traffic_of(bob.process.pid)
        limit = CLEAN_CLOSE_LIMIT if how == "killed" else SILENT_LOSS_LIMIT
        left = await alice.wait_data(
            "left", lambda m: m["id"] == bob.id, timeout=limit + 5
        )
        notified_after = time.monotonic() - gone_at
        after = await wait_counts(server, room_id, baseline)
        await asyncio.sleep(max(0.0, gone_at + 3 - time.monotonic()))
        gap = largest_gap(carol.arrival_times(alice.id), gone_at)
    finally:
        delete_rules(rules)
        await bob.stop()

    print(f"{how}: Alice notified after {notified_after:.1f} s, {left['reason']}")
    assert notified_after <= limit
    assert left["reason"] in ("closed", "timeout")
    assert during["peer_connections"] == baseline["peer_connections"] + 1
    assert after["peer_connections"] == baseline["peer_connections"]
    assert after["participants"] == baseline["participants"]
    assert after["forwarders"] == baseline["forwarders"]
    assert after["forwarded_tracks"] == baseline["forwarded_tracks"]
    assert after["subscriptions"] == baseline["subscriptions"]
    # Carol's copy of Alice's video went on while Bob's was undeliverable.
    assert gap <= MAX_FRAME_GAP


async def test_socket_closed_before_answer(
    server: ServerProcess, room: dict[str, Any], http
) -> None:
    from tests.integration.test_liveness import offer_without_candidates

    room_id = room["room"].id
    alice = Bot(server.url, room_id, room["guest"].token, "Alice")
    try:
        await alice.join()
        alice.keepalive()
        await alice.wait_data("roster")
        await wait_other_rooms_closed(server, room_id)
        baseline = await server_counts(server, room_id)
        ws = await open_socket(http, server)
        await send_json(ws, join_message(room_id, room["guest"].token, "Bob"))
        welcome = await receive_json(ws)
        await send_json(ws, {"type": "offer", "sdp": await offer_without_candidates()})
        await ws.close()
        bob_id = welcome["participant"]["id"]
        left = await alice.wait_data(
            "left", lambda m: m["id"] == bob_id, timeout=CLEAN_CLOSE_LIMIT
        )
        after = await wait_counts(server, room_id, baseline)
    finally:
        await alice.close()

    assert left["reason"] in ("closed", "leave")
    assert after == baseline


async def server_counts(server: ServerProcess, room_id: str) -> dict[str, int]:
    report = await server.stats()
    room = report["rooms"].get(room_id, {})
    workers = report["workers"]
    return {
        "peer_connections": report["sfu"]["peer_connections"],
        "forwarders": report["sfu"]["forwarders"],
        "participants": room.get("participants", 0),
        "forwarded_tracks": sum(w["gauges"]["forwarded_tracks"] for w in workers),
        "subscriptions": sum(w["gauges"]["subscriptions"] for w in workers),
    }


async def wait_counts(
    server: ServerProcess, room_id: str, expected: dict[str, int], timeout: float = 10
) -> dict[str, int]:
    """Wait until the counters equal ``expected`` and return the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await server_counts(server, room_id)
        if counts == expected or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)



async def wait_other_rooms_closed(server: ServerProcess, room_id: str) -> None:
    """Wait until earlier tests' participants are gone, so that the counters
    change only with this test's participants."""
    deadline = time.monotonic() + 15
    while set((await server.stats())["rooms"]) - {room_id}:
        if time.monotonic() > deadline:
            raise AssertionError("rooms of earlier tests are still open")
        await asyncio.sleep(0.1)
