"""Tests of the `coworking` command, run as `python -m server` in a subprocess."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.cli import _create_default_room, _format_startup_links
from server.config import Settings
from server.invites import InviteError, admit
from server.storage import ROLE_GUEST, ROLE_HOST, SqliteStorage
from tests.support.server import free_port

LINK = re.compile(
    r"(?P<base>https?://[^ ]+)/r/(?P<room>[A-Za-z0-9_-]{16})"
    r"#(?P<token>[A-Za-z0-9_-]{32})"
)
INVITE_ID = re.compile(r"\bi[0-9a-f]{8}\b")


def run_coworking(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COWORKING_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def find_link(output: str, label: str) -> re.Match[str]:
    """Return the link on the line that starts with `label`."""
    for line in output.splitlines():
        if line.startswith(label):
            match = LINK.search(line)
            assert match is not None, f"no link in line {line!r}"
            return match
    raise AssertionError(f"no line starting with {label!r} in {output!r}")


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("coworking: error: ")
    assert result.stderr.count("\n") == 1


async def admit_link(db: Path, link: re.Match[str]):
    storage = await SqliteStorage.open(db)
    try:
        return await admit(storage, link["room"], link["token"])
    finally:
        await storage.close()


def create_room(tmp_path: Path, name: str = "Writers' corner") -> str:
    result = run_coworking(tmp_path, "room", "create", name, "--db", "db.sqlite3")
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_room_create_links_admit(tmp_path: Path) -> None:
    result = run_coworking(
        tmp_path,
        "room",
        "create",
        "Writers' corner",
        "--limit",
        "6",
        "--db",
        "data/db.sqlite3",
        "--public-url",
        "https://cowork.example.org/",
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    guest_link = find_link(result.stdout, "Invite link: ")
    host_link = find_link(result.stdout, "Host link (keep it private): ")
    assert guest_link["base"] == "https://cowork.example.org"
    assert host_link["room"] == guest_link["room"]
    assert host_link["token"] != guest_link["token"]
    assert f"id {guest_link['room']}, limit 6" in result.stdout

    room, guest = await admit_link(tmp_path / "data/db.sqlite3", guest_link)
    assert room.name == "Writers' corner"
    assert room.limit == 6
    assert guest.role == ROLE_GUEST
    _, host = await admit_link(tmp_path / "data/db.sqlite3", host_link)
    assert host.role == ROLE_HOST


def test_room_create_default_limit_from_env(tmp_path: Path) -> None:
    result = run_coworking(
        tmp_path,
        "room",
        "create",
        "Big room",
        "--db",
        "db.sqlite3",
        env={"COWORKING_ROOM_LIMIT": "60"},
    )

    assert result.returncode == 0, result.stderr
    assert ", limit 60)" in result.stdout


def test_room_create_link_uses_host_port(tmp_path: Path) -> None:
    result = run_coworking(
        tmp_path,
        "room",
        "create",
        "Room",
        "--db",
        "db.sqlite3",
        env={"COWORKING_HOST": "0.0.0.0", "COWORKING_PORT": "9000"},
    )

    assert result.returncode == 0, result.stderr
    assert find_link(result.stdout, "Invite link: ")["base"] == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["  "], "Room name must be 1 to 80 characters"),
        (["Room", "--limit", "1"], "Room limit must be an integer from 2 to 100"),
        (["Room", "--limit", "101"], "Room limit must be an integer from 2 to 100"),
    ],
)
def test_room_create_invalid(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_coworking(tmp_path, "room", "create", *args, "--db", "db.sqlite3")

    assert_one_line_error(result)
    assert message in result.stderr


def test_room_list_shows_rooms(tmp_path: Path) -> None:
    first = create_room(tmp_path, "First room")
    second = create_room(tmp_path, "Second room")
    first_room = find_link(first, "Invite link: ")["room"]
    second_room = find_link(second, "Invite link: ")["room"]

    result = run_coworking(tmp_path, "room", "list", "--db", "db.sqlite3")

    assert result.returncode == 0, result.stderr
    blocks = result.stdout.strip().split("\n\n")
    assert len(blocks) == 2
    assert blocks[0].startswith("First room\n")
    assert f"Room id: {first_room}" in blocks[0]
    assert "Limit: 25 participants" in blocks[0]
    assert blocks[1].startswith("Second room\n")
    assert f"Room id: {second_room}" in blocks[1]

    links = [LINK.search(line) for line in blocks[0].splitlines()]
    links = [link for link in links if link is not None]
    assert len(links) == 2
    assert {link["token"] for link in links} == {
        find_link(first, "Invite link: ")["token"],
        find_link(first, "Host link (keep it private): ")["token"],
    }
    assert re.search(r"guest invite i[0-9a-f]{8}, no expiry: http", blocks[0])
    assert re.search(r"host invite i[0-9a-f]{8}, no expiry: http", blocks[0])


def test_room_list_empty(tmp_path: Path) -> None:
    result = run_coworking(tmp_path, "room", "list", "--db", "db.sqlite3")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("No rooms yet.")


async def test_invite_create_expiring_host(tmp_path: Path) -> None:
    room_id = find_link(create_room(tmp_path), "Invite link: ")["room"]
    before = time.time()

    result = run_coworking(
        tmp_path,
        "invite",
        "create",
        room_id,
        "--role",
        "host",
        "--expires-in",
        "12h",
        "--db",
        "db.sqlite3",
    )

    assert result.returncode == 0, result.stderr
    assert re.match(
        r"Created host invite i[0-9a-f]{8} for room \"Writers' corner\", expires"
        r" \d{4}-\d\d-\d\d \d\d:\d\d UTC\.\n",
        result.stdout,
    )
    link = find_link(result.stdout, "Host link (keep it private): ")
    assert link["room"] == room_id

    room, invite = await admit_link(tmp_path / "db.sqlite3", link)
    assert room.id == room_id
    assert invite.role == ROLE_HOST
    assert invite.id in result.stdout
    assert invite.expires_at is not None
    assert before + 12 * 3600 <= invite.expires_at <= time.time() + 12 * 3600


def test_invite_create_listed(tmp_path: Path) -> None:
    room_id = find_link(create_room(tmp_path), "Invite link: ")["room"]
    created = run_coworking(
        tmp_path,
        "invite",
        "create",
        room_id,
        "--expires-in",
        "7d",
        "--db",
        "db.sqlite3",
    )
    invite_id = INVITE_ID.search(created.stdout)
    assert invite_id is not None

    listed = run_coworking(tmp_path, "room", "list", "--db", "db.sqlite3")

    assert re.search(
        rf"guest invite {invite_id[0]}, expires \d{{4}}-\d\d-\d\d \d\d:\d\d UTC: http",
        listed.stdout,
    )


def test_invite_create_unknown_room(tmp_path: Path) -> None:
    create_room(tmp_path)

    result = run_coworking(
        tmp_path, "invite", "create", "AAAAAAAAAAAAAAAA", "--db", "db.sqlite3"
    )

    assert_one_line_error(result)
    assert "Room not found: 'AAAAAAAAAAAAAAAA'" in result.stderr


@pytest.mark.parametrize("duration", ["5y", "0m", "-1h", "h", "3651d"])
def test_invite_create_invalid_duration(tmp_path: Path, duration: str) -> None:
    result = run_coworking(
        tmp_path,
        "invite",
        "create",
        "AAAAAAAAAAAAAAAA",
        f"--expires-in={duration}",
        "--db",
        "db.sqlite3",
    )

    assert result.returncode == 2
    assert "invalid duration" in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()


async def test_invite_revoke_rejects_link(tmp_path: Path) -> None:
    created = create_room(tmp_path)
    guest_link = find_link(created, "Invite link: ")
    host_link = find_link(created, "Host link (keep it private): ")
    _, guest = await admit_link(tmp_path / "db.sqlite3", guest_link)

    result = run_coworking(tmp_path, "invite", "revoke", guest.id, "--db", "db.sqlite3")

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == f"Revoked invite {guest.id} (guest) of room Writers' corner.\n"
    )
    with pytest.raises(InviteError):
        await admit_link(tmp_path / "db.sqlite3", guest_link)
    _, host = await admit_link(tmp_path / "db.sqlite3", host_link)
    assert host.role == ROLE_HOST

    listed = run_coworking(tmp_path, "room", "list", "--db", "db.sqlite3")
    assert guest.id not in listed.stdout
    assert host.id in listed.stdout


async def test_invite_revoke_twice_says_already(tmp_path: Path) -> None:
    created = create_room(tmp_path)
    _, guest = await admit_link(
        tmp_path / "db.sqlite3", find_link(created, "Invite link: ")
    )
    run_coworking(tmp_path, "invite", "revoke", guest.id, "--db", "db.sqlite3")

    again = run_coworking(tmp_path, "invite", "revoke", guest.id, "--db", "db.sqlite3")

    assert again.returncode == 0, again.stderr
    assert "was already revoked on" in again.stdout
    assert again.stdout.startswith(f"Invite {guest.id} (guest) of room")


def test_invite_revoke_unknown(tmp_path: Path) -> None:
    create_room(tmp_path)

    result = run_coworking(
        tmp_path, "invite", "revoke", "i00000000", "--db", "db.sqlite3"
    )

    assert_one_line_error(result)
    assert "Invite not found: 'i00000000'" in result.stderr


def test_invalid_environment_one_line(tmp_path: Path) -> None:
    result = run_coworking(
        tmp_path, "room", "list", "--db", "db.sqlite3", env={"COWORKING_PORT": "abc"}
    )

    assert_one_line_error(result)
    assert (
        "COWORKING_PORT must be an integer from 1 to 65535, got 'abc'" in result.stderr
    )


def test_dotenv_in_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "COWORKING_DB=from-dotenv.sqlite3\n"
        "COWORKING_PUBLIC_URL=https://dotenv.example.org\n"
    )

    result = run_coworking(tmp_path, "room", "create", "Room")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-dotenv.sqlite3").exists()
    assert find_link(result.stdout, "Invite link: ")["base"] == (
        "https://dotenv.example.org"
    )


def test_unreadable_database_one_line(tmp_path: Path) -> None:
    (tmp_path / "db.sqlite3").write_text("this is not an SQLite database" * 40)

    result = run_coworking(tmp_path, "room", "list", "--db", "db.sqlite3")

    assert_one_line_error(result)
    assert "Cannot open database db.sqlite3" in result.stderr


def test_no_command_shows_usage(tmp_path: Path) -> None:
    result = run_coworking(tmp_path)

    assert result.returncode == 2
    assert "usage: coworking" in result.stderr


# The startup output of `coworking serve`, built without starting the server.


async def test_default_room_created_once(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    try:
        await _create_default_room(storage, Settings(room_limit=9))
        await _create_default_room(storage, Settings(room_limit=9))

        rooms = await storage.list_rooms()
        assert [(room.name, room.limit) for room in rooms] == [("Coworking room", 9)]
        invites = await storage.list_invites(rooms[0].id)
        assert sorted(invite.role for invite in invites) == [ROLE_GUEST, ROLE_HOST]
    finally:
        await storage.close()


async def test_startup_links_newest_usable(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    try:
        room = await storage.create_room("Room", 10)
        old_guest = await storage.create_invite(room.id, ROLE_GUEST)
        new_guest = await storage.create_invite(room.id, ROLE_GUEST)
        revoked_guest = await storage.create_invite(room.id, ROLE_GUEST)
        await storage.revoke_invite(revoked_guest.id)
        expired_host = await storage.create_invite(room.id, ROLE_HOST, expires_at=1.0)

        text = await _format_startup_links(storage, "https://x.example.org")
    finally:
        await storage.close()

    lines = text.splitlines()
    assert lines[0] == "Room"
    assert lines[1] == (
        f"  Invite link: https://x.example.org/r/{room.id}#{new_guest.token}"
    )
    assert lines[2] == (
        "  Host link (keep it private): none usable, create one with"
        f" `coworking invite create {room.id} --role host`"
    )
    assert old_guest.token not in text
    assert revoked_guest.token not in text
    assert expired_host.token not in text


async def test_startup_links_skip_slot_invites(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    try:
        room = await storage.create_room("Room", 10)
        guest = await storage.create_invite(room.id, ROLE_GUEST)
        plan = {"focus": 3000, "break": 600}
        slot = await storage.create_slot(room.id, time.time() + 3600, 3600, plan)
        bound = await storage.create_invite(room.id, ROLE_GUEST, slot_id=slot.id)

        text = await _format_startup_links(storage, "https://x.example.org")
    finally:
        await storage.close()

    lines = text.splitlines()
    assert lines[1] == f"  Invite link: https://x.example.org/r/{room.id}#{guest.token}"
    assert bound.token not in text


async def test_startup_links_at_most_ten(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    try:
        for number in range(13):
            room = await storage.create_room(f"Room {number}", 10)
            await storage.create_invite(room.id, ROLE_GUEST)
            await storage.create_invite(room.id, ROLE_HOST)

        text = await _format_startup_links(storage, "http://127.0.0.1:8080")
    finally:
        await storage.close()

    blocks = text.split("\n\n")
    assert len(blocks) == 11
    assert blocks[0].startswith("Room 0\n")
    assert blocks[9].startswith("Room 9\n")
    assert blocks[10] == "... and 3 more, see `coworking room list`"
    assert len(LINK.findall(text)) == 20


# slot commands


def create_room_id(tmp_path: Path, limit: int = 25) -> str:
    created = run_coworking(
        tmp_path, "room", "create", "Room", "--limit", str(limit), "--db", "db.sqlite3"
    )
    assert created.returncode == 0, created.stderr
    match = re.search(r"id ([A-Za-z0-9_-]{16})", created.stdout)
    assert match is not None
    return match.group(1)


def test_slot_create_list_edit_cancel(tmp_path: Path) -> None:
    room_id = create_room_id(tmp_path)
    created = run_coworking(
        tmp_path,
        "slot",
        "create",
        room_id,
        "--start",
        "+2h",
        "--length",
        "90m",
        "--plan",
        "25/5/15x4",
        "--capacity",
        "6",
        "--title",
        "Deep work",
        "--db",
        "db.sqlite3",
    )
    assert created.returncode == 0, created.stderr
    slot_id = re.search(r"Created slot (s[0-9a-f]{12})", created.stdout)
    assert slot_id is not None
    assert "90 min, plan 25/5, 15 after 4, 0 of 6 booked, 'Deep work'" in created.stdout

    listed = run_coworking(tmp_path, "slot", "list", room_id, "--db", "db.sqlite3")
    assert listed.returncode == 0, listed.stderr
    assert slot_id.group(1) in listed.stdout

    edited = run_coworking(
        tmp_path,
        "slot",
        "edit",
        slot_id.group(1),
        "--plan",
        "50/10",
        "--capacity",
        "3",
        "--db",
        "db.sqlite3",
    )
    assert edited.returncode == 0, edited.stderr
    assert "plan 50/10, 0 of 3 booked" in edited.stdout

    bound = run_coworking(
        tmp_path,
        "invite",
        "create",
        room_id,
        "--slot",
        slot_id.group(1),
        "--db",
        "db.sqlite3",
    )
    assert bound.returncode == 0, bound.stderr
    assert f"for slot {slot_id.group(1)} only" in bound.stdout

    cancelled = run_coworking(
        tmp_path, "slot", "cancel", slot_id.group(1), "--db", "db.sqlite3"
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    upcoming = run_coworking(tmp_path, "slot", "list", room_id, "--db", "db.sqlite3")
    assert slot_id.group(1) not in upcoming.stdout
    every = run_coworking(
        tmp_path, "slot", "list", room_id, "--all", "--db", "db.sqlite3"
    )
    assert slot_id.group(1) in every.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--start", "2020-01-01T09:00", "--length", "1h"], "in the past"),
        (["--start", "+1h", "--length", "1h", "--plan", "90/10"], "longer than"),
        (["--start", "+1h", "--length", "1h", "--capacity", "99"], "Capacity"),
        (["--start", "+1h"], "needs --length"),
    ],
)
def test_slot_create_invalid(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    room_id = create_room_id(tmp_path, limit=10)
    result = run_coworking(
        tmp_path, "slot", "create", room_id, *arguments, "--db", "db.sqlite3"
    )
    assert_one_line_error(result)
    assert message in result.stderr


@pytest.mark.parametrize("plan", ["50", "50/", "a/b", "50/10/15", "50/10x4"])
def test_slot_create_invalid_plan(tmp_path: Path, plan: str) -> None:
    room_id = create_room_id(tmp_path)
    result = run_coworking(
        tmp_path,
        "slot",
        "create",
        room_id,
        "--start",
        "+1h",
        "--length",
        "1h",
        "--plan",
        plan,
        "--db",
        "db.sqlite3",
    )
    assert result.returncode == 2
    assert "invalid plan" in result.stderr


def test_invite_for_unknown_slot(tmp_path: Path) -> None:
    room_id = create_room_id(tmp_path)
    result = run_coworking(
        tmp_path,
        "invite",
        "create",
        room_id,
        "--slot",
        "s000000000000",
        "--db",
        "db.sqlite3",
    )
    assert_one_line_error(result)
    assert "Slot not found" in result.stderr
def test_serve_on_all_interfaces_needs_public_url(tmp_path: Path) -> None:
    result = run_coworking(tmp_path, "serve", "--host=0.0.0.0", "--port=1")

    assert result.returncode == 1
    assert "COWORKING_PUBLIC_URL is missing" in result.stderr
    assert not (tmp_path / "data").exists()


def test_serve_turn_urls_need_secret(tmp_path: Path) -> None:
    result = run_coworking(
        tmp_path, "serve", env={"COWORKING_TURN_URLS": "turn:127.0.0.1:3478"}
    )

    assert result.returncode == 1
    assert "COWORKING_TURN_SECRET is missing" in result.stderr


def test_health_fails_without_server(tmp_path: Path) -> None:
    port = str(free_port())
    result = run_coworking(tmp_path, "health", env={"COWORKING_PORT": port})

    assert result.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz" in result.stdout
