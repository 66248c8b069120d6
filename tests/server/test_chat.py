"""The chat log's bound and the chat message checks, without a server."""

from __future__ import annotations

import pytest

from server import protocol
from server.chat import HISTORY_LENGTH, ChatLog, parse_chat


def test_chat_log_keeps_newest() -> None:
    log = ChatLog()
    for index in range(HISTORY_LENGTH + 5):
        log.add("p1", "Ada", f"message {index}")

    messages = log.history()["messages"]

    assert len(messages) == HISTORY_LENGTH
    assert messages[0]["text"] == "message 5"
    assert messages[-1]["text"] == f"message {HISTORY_LENGTH + 4}"


def test_chat_log_ids_unique() -> None:
    log = ChatLog()
    ids = {log.add("p1", "Ada", "hi")["id"] for _ in range(50)}

    assert len(ids) == 50


def test_chat_log_clear() -> None:
    log = ChatLog()
    log.add("p1", "Ada", "hi")
    log.clear()

    assert log.history() == {"type": "chat_history", "messages": []}


def test_parse_chat_keeps_emoji_joiner() -> None:
    family = "\U0001f469\u200d\U0001f4bb"

    assert parse_chat({"text": f" {family}\tok "}) == f"{family}\tok"


def test_parse_chat_rejects_bidi_override() -> None:
    with pytest.raises(protocol.ProtocolError, match="control or formatting"):
        parse_chat({"text": "invoice\u202egpj.exe"})
