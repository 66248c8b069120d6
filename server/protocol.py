"""Message formats of the signalling WebSocket and the state data channel.

docs/protocol.md describes every message; this module checks incoming ones.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

PROTOCOL_VERSION = 1
MAX_NAME_LENGTH = 64
MAX_SDP_LENGTH = 200_000
STATE_VALUES = ("on", "off", "none")
STATE_FIELDS = ("mic", "camera")
MAX_VERSION = 2**53 - 1
MAX_CANDIDATE_LENGTH = 1024
MAX_MID_LENGTH = 32
MAX_MLINE_INDEX = 1000

# Presence fields of the state. Each is optional in a state message, and a
# state without it means the default: status "available", no goal, no profile.
STATUS_VALUES = ("available", "focus", "break", "away", "dnd", "back_soon")
MAX_GOAL_LENGTH = 140
PROFILE_TEXT_LIMITS = {"role": 64, "work": 200}
MAX_LINK_LENGTH = 300
LINK_SCHEMES = ("http", "https")
ZERO_WIDTH_JOINER = "\u200d"
# Virtual background of the camera picture: "none", a blur, "builtin:ID" with
# the id of a built-in image, or "upload:ID" with the id of a room's upload.
BACKGROUND_VALUES = ("none", "blur-light", "blur-strong")
BACKGROUND_CHOICE = re.compile(r"builtin:[a-z0-9][a-z0-9-]{0,47}|upload:[0-9a-f]{32}")
# Random per-browser key sent with join, used to bar a removed participant.
CLIENT_KEY_LENGTHS = (16, 64)
CLIENT_KEY_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


class ProtocolError(Exception):
    """A message that breaks the protocol; ``code`` is sent to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_message(self) -> dict[str, str]:
        return {"type": "error", "code": self.code, "message": self.message}


def bad_message(message: str) -> ProtocolError:
    return ProtocolError("bad_message", message)


def parse_message(text: str | None) -> dict[str, Any]:
    """Decode one JSON message and check that it is an object with a type."""
    if text is None:
        raise bad_message("Messages must be JSON text within the size limit.")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise bad_message("The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise bad_message("A message must be a JSON object.")
    if not isinstance(message.get("type"), str):
        raise bad_message('A message must have a string field "type".')
    return message


def require_str(message: dict[str, Any], field: str, max_length: int) -> str:
    value = message.get(field)
    if not isinstance(value, str):
        raise bad_message(f'Field "{field}" must be a string.')
    if len(value) > max_length:
        raise bad_message(f'Field "{field}" is longer than {max_length} characters.')
    return value


def clean_name(value: object) -> str:
    """Return a display name without control characters, or raise."""
    if not isinstance(value, str):
        raise bad_message('Field "name" must be a string.')
    name = "".join(ch for ch in value if not is_forbidden_character(ch))
    name = " ".join(name.split())
    if not name:
        raise bad_message("Please enter a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise bad_message(f"A name can have at most {MAX_NAME_LENGTH} characters.")
    return name


DATA_MESSAGE_TYPES = ("state", "view", "chat", "host", "coffee")
# Characters a message of these types may have: each is a few short fields.
MAX_CONTROL_MESSAGE = 1024
CONTROL_MESSAGE_TYPES = ("host", "coffee")


def parse_data_message(text: str | None) -> dict[str, Any]:
    """Decode a data-channel message and check its type and size."""
    message = parse_message(text)
    kind = message["type"]
    if kind not in DATA_MESSAGE_TYPES:
        raise bad_message(f"Unknown message type {kind[:32]!r}.")
    if kind in CONTROL_MESSAGE_TYPES and len(text or "") > MAX_CONTROL_MESSAGE:
        raise bad_message(
            f"A {kind} message can have at most {MAX_CONTROL_MESSAGE} characters."
        )
    return message


def parse_view(message: dict[str, Any]) -> bool:
    """Check a view message; return whether the participant shows video."""
    video = message.get("video")
    if not isinstance(video, bool):
        raise bad_message('Field "video" must be true or false.')
    return video


def parse_state(message: dict[str, Any]) -> tuple[int, dict[str, str]]:
    """Check a state message and return its version and state."""
    version = message.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad_message('Field "version" must be an integer.')
    if not 1 <= version <= MAX_VERSION:
        raise bad_message(f'Field "version" must be from 1 to {MAX_VERSION}.')
    state = message.get("state")
    if not isinstance(state, dict):
        raise bad_message('Field "state" must be an object.')
    result = {}
    for field in STATE_FIELDS:
        value = state.get(field)
        if value not in STATE_VALUES:
            raise bad_message(f'State field "{field}" must be "on", "off" or "none".')
        result[field] = value
    result.update(parse_presence(state))
    return version, result


def parse_presence(state: dict[str, Any]) -> dict[str, Any]:
    """Check the optional presence and background fields; return those present."""
    result: dict[str, Any] = {}
    if "status" in state:
        if state["status"] not in STATUS_VALUES:
            allowed = ", ".join(f'"{value}"' for value in STATUS_VALUES)
            raise bad_message(f'State field "status" must be one of {allowed}.')
        result["status"] = state["status"]
    if "goal" in state:
        result["goal"] = check_text(state["goal"], "goal", MAX_GOAL_LENGTH)
    if "profile" in state and state["profile"] is not None:
        result["profile"] = parse_profile(state["profile"])
    if "background" in state:
        result["background"] = parse_background(state["background"])
    return result


def parse_background(value: object) -> str:
    """Check the state field "background" and return it."""
    if value in BACKGROUND_VALUES or (
        isinstance(value, str) and BACKGROUND_CHOICE.fullmatch(value)
    ):
        return str(value)
    raise bad_message(
        'State field "background" must be "none", "blur-light", "blur-strong",'
        ' "builtin:" and a built-in id, or "upload:" and an upload id.'
    )


def check_text(value: object, field: str, max_length: int) -> str:
    """Return a one-line text field with its outer spaces removed, or raise."""
    if not isinstance(value, str):
        raise bad_message(f'Field "{field}" must be a string.')
    if any(is_forbidden_character(ch) for ch in value):
        raise bad_message(
            f'Field "{field}" must not contain control or formatting characters.'
        )
    value = value.strip()
    if len(value) > max_length:
        raise bad_message(f'Field "{field}" can have at most {max_length} characters.')
    return value


def is_forbidden_character(ch: str) -> bool:
    """Tell whether a character is a control, formatting or surrogate character.

    The zero-width joiner is allowed because emoji sequences need it. Bidi
    overrides, which can make text read differently from what it is, are not.
    """
    return ch != ZERO_WIDTH_JOINER and unicodedata.category(ch) in ("Cc", "Cf", "Cs")


def parse_profile(value: object) -> dict[str, Any]:
    """Check a profile card: role, work, open_to_chat and link, all required."""
    if not isinstance(value, dict):
        raise bad_message('State field "profile" must be an object or null.')
    expected = {*PROFILE_TEXT_LIMITS, "open_to_chat", "link"}
    unknown = sorted(set(value) - expected)
    if unknown:
        raise bad_message(f'Profile field "{unknown[0][:32]}" is not known.')
    missing = sorted(expected - set(value))
    if missing:
        raise bad_message(f'Profile field "{missing[0]}" is missing.')
    profile: dict[str, Any] = {
        field: check_text(value[field], field, limit)
        for field, limit in PROFILE_TEXT_LIMITS.items()
    }
    if not isinstance(value["open_to_chat"], bool):
        raise bad_message('Profile field "open_to_chat" must be true or false.')
    profile["open_to_chat"] = value["open_to_chat"]
    profile["link"] = check_link(value["link"])
    return profile


def check_link(value: object) -> str:
    """Return an http or https URL with a host, or "" for no link; else raise."""
    link = check_text(value, "link", MAX_LINK_LENGTH)
    if not link:
        return ""
    if any(ch.isspace() for ch in link):
        raise bad_message('Field "link" must not contain spaces.')
    try:
        parts = urlsplit(link)
    except ValueError:
        raise bad_message('Field "link" is not a valid URL.') from None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.hostname:
        raise bad_message(
            'Field "link" must be an http:// or https:// address with a host name.'
        )
    return link


def parse_candidate(
    message: dict[str, Any],
) -> tuple[str | None, str | None, int | None]:
    """Check a candidate message; return the candidate, its mid and m-line index."""
    candidate = message.get("candidate")
    if candidate is not None:
        candidate = require_str(message, "candidate", MAX_CANDIDATE_LENGTH)
    mid = message.get("sdpMid")
    if mid is not None:
        mid = require_str(message, "sdpMid", MAX_MID_LENGTH)
    index = message.get("sdpMLineIndex")
    if index is not None and (
        not isinstance(index, int)
        or isinstance(index, bool)
        or not 0 <= index <= MAX_MLINE_INDEX
    ):
        raise bad_message(
            f'Field "sdpMLineIndex" must be an integer from 0 to {MAX_MLINE_INDEX}.'
        )
    if candidate is not None and mid is None and index is None:
        raise bad_message('A candidate needs "sdpMid" or "sdpMLineIndex".')
    return candidate, mid, index


def parse_client_key(value: object) -> str | None:
    """Check the optional "client" field of join: the browser's random key."""
    if value is None:
        return None
    low, high = CLIENT_KEY_LENGTHS
    if (
        not isinstance(value, str)
        or not low <= len(value) <= high
        or not set(value) <= CLIENT_KEY_CHARACTERS
    ):
        raise bad_message(
            f'Field "client" must be {low} to {high} letters, digits, "-" or "_".'
        )
    return value
