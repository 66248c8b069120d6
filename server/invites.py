"""Invite links and the admission check for a room id and invite token."""

from __future__ import annotations

import logging
import re
import time
from typing import TypeGuard

from .schedule import DEFAULT_EARLY_SECONDS, check_window
from .storage import Invite, Room, Storage

logger = logging.getLogger(__name__)

INVALID_INVITE_MESSAGE = "This invite link is not valid or has expired."

# Room ids (16 characters) and tokens (32 characters) are URL-safe base64. The range
# leaves room for longer ids and tokens later while rejecting oversized input before
# any database query.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
_MAX_ID_LENGTH = 64


class InviteError(Exception):
    """Rejected admission. Every cause has the same code and message, so a caller
    cannot tell an unknown room from a wrong, expired or revoked token."""

    code = "invalid_invite"

    def __init__(self) -> None:
        super().__init__(INVALID_INVITE_MESSAGE)


def make_link(public_url: str, room_id: str, token: str) -> str:
    """Return the invite link for a room. The token goes after `#`, so browsers
    never send it in a request line or a Referer header."""
    base = public_url.rstrip("/")
    return f"{base}/r/{room_id}#{token}"


def newest_room_invite(invites: list[Invite], role: str, now: float) -> Invite | None:
    """Return the newest usable invite of `role` that admits at any time.

    Invites bound to a slot are left out: shown as the room's general link, they
    would send everyone to that one session's waiting page.
    """
    usable = [
        invite
        for invite in invites
        if invite.role == role and invite.slot_id is None and invite.is_usable(now)
    ]
    return max(usable, key=lambda invite: invite.created_at, default=None)


def _is_well_formed(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and len(value) <= _MAX_ID_LENGTH
        and _ID_PATTERN.fullmatch(value) is not None
    )


async def admit(
    storage: Storage,
    room_id: str,
    token: str | None,
    now: float | None = None,
    early_seconds: float = DEFAULT_EARLY_SECONDS,
) -> tuple[Room, Invite]:
    """Return the room and the invite if `token` admits its holder to `room_id`.

    Raise InviteError when the room id or token is malformed, the token is unknown or
    belongs to another room, the invite is revoked or expired at `now` (default: the
    current time), or the room does not exist. Malformed input is rejected without a
    database query. Logs name the room id and the reason, never the token.

    An invite bound to a slot admits only from `early_seconds` before the slot's
    start to its end; outside that window, or for a cancelled slot, raise
    schedule.SlotWindowError.
    """
    if not _is_well_formed(room_id):
        logger.debug("Rejected admission: malformed room id")
        raise InviteError()
    if not _is_well_formed(token):
        logger.debug("Rejected admission to room %s: malformed token", room_id)
        raise InviteError()

    if now is None:
        now = time.time()

    invite = await storage.get_invite_by_token(token)
    if invite is None:
        reason = "unknown token"
    elif invite.room_id != room_id:
        reason = f"token of invite {invite.id} is for another room"
    elif invite.revoked_at is not None:
        reason = f"invite {invite.id} is revoked"
    elif not invite.is_usable(now):
        reason = f"invite {invite.id} has expired"
    else:
        room = await storage.get_room(room_id)
        if room is not None:
            await _check_slot_window(storage, invite, now, early_seconds)
            return room, invite
        reason = "room not found"

    logger.debug("Rejected admission to room %s: %s", room_id, reason)
    raise InviteError()


async def _check_slot_window(
    storage: Storage, invite: Invite, now: float, early_seconds: float
) -> None:
    if invite.slot_id is None:
        return
    slot = await storage.get_slot(invite.slot_id)
    if slot is None:
        # The foreign key keeps this from happening; refuse rather than admit.
        logger.error("Invite %s names missing slot %s", invite.id, invite.slot_id)
        raise InviteError()
    check_window(slot, now, early_seconds)
