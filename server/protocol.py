"""Message formats of the signalling WebSocket and the state data channel.

docs/protocol.md describes every message; this module checks incoming ones.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

PROTOCOL_VERSION = 1
MAX_NAME_LENGTH = 64
MAX_SDP_LENGTH = 200_000
STATE_VALUES = ("on", "off", "none")
STATE_FIELDS = ("mic", "camera")
MAX_VERSION = 2**53 - 1
MAX_CANDIDATE_LENGTH = 1024
MAX_MID_LENGTH = 32
MAX_MLINE_INDEX = 1000


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
    name = "".join(
        ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )
    name = " ".join(name.split())
    if not name:
        raise bad_message("Please enter a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise bad_message(f"A name can have at most {MAX_NAME_LENGTH} characters.")
    return name


DATA_MESSAGE_TYPES = ("state", "view", "host", "coffee")


def parse_data_message(text: str | None) -> dict[str, Any]:
    """Decode a data-channel message and check that its type is known."""
    message = parse_message(text)
    if message["type"] not in DATA_MESSAGE_TYPES:
        raise bad_message(f"Unknown message type {message['type'][:32]!r}.")
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
    return version, result


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
