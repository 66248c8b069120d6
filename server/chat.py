"""Room chat over the data channel: checks, rate limit and bounded history.

Messages live only in memory, in the room's :class:`ChatLog`. They are gone
when the room closes, which happens when its last participant leaves, or
when :meth:`ChatLog.clear` runs at the end of a session.
"""

from __future__ import annotations

import collections
import secrets
import time
from typing import Any

from . import protocol

MAX_CHAT_LENGTH = 1000
HISTORY_LENGTH = 100
# Chat messages a participant may send per second on average, and in a burst.
CHAT_RATE = 1.0
CHAT_BURST = 5
RATE_LIMITED = "rate_limited"
RATE_LIMITED_MESSAGE = (
    "You are sending chat messages too fast. Wait a few seconds, then send again."
)
# Whitespace kept inside a chat message. Other control characters are rejected.
KEPT_CONTROLS = frozenset("\n\t")


def parse_chat(message: dict[str, Any]) -> str:
    """Check a chat message and return its text without outer whitespace."""
    text = message.get("text")
    if not isinstance(text, str):
        raise protocol.bad_message('Field "text" must be a string.')
    if any(
        ch not in KEPT_CONTROLS and protocol.is_forbidden_character(ch) for ch in text
    ):
        raise protocol.bad_message(
            "A chat message must not contain control or formatting characters."
        )
    text = text.strip()
    if not text:
        raise protocol.bad_message("A chat message must not be empty.")
    if len(text) > MAX_CHAT_LENGTH:
        raise protocol.bad_message(
            f"A chat message can have at most {MAX_CHAT_LENGTH} characters; "
            f"this one has {len(text)}."
        )
    return text


class ChatLog:
    """The last HISTORY_LENGTH chat messages of one room, oldest first."""

    def __init__(self) -> None:
        self.messages: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=HISTORY_LENGTH
        )

    def add(
        self, sender_id: str, sender_name: str, text: str, keep: bool = True
    ) -> dict[str, Any]:
        """Return a message as the server sends it, stored when ``keep``."""
        entry = {
            "type": "chat",
            "id": "m" + secrets.token_hex(8),
            "from": sender_id,
            "name": sender_name,
            "text": text,
            # Server time in milliseconds since the Unix epoch.
            "at": int(time.time() * 1000),
        }
        if keep:
            self.messages.append(entry)
        return entry

    def history(self) -> dict[str, Any]:
        return {"type": "chat_history", "messages": list(self.messages)}

    def clear(self) -> None:
        self.messages.clear()
