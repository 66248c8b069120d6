"""Time-limited TURN credentials derived from a secret shared with the TURN server.

This is the scheme of coturn's `use-auth-secret` option. The user name is
`EXPIRY:ID`, with EXPIRY in Unix seconds, and the password is
base64(HMAC-SHA1(secret, user name)). The TURN server recomputes the password
from the user name and rejects it once EXPIRY has passed, so a leaked
password is useful for TTL seconds at most.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from .config import Secret, Settings


def turn_password(secret: Secret, username: str) -> str:
    digest = hmac.new(
        secret.reveal().encode(), username.encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_server(
    urls: tuple[str, ...],
    secret: Secret,
    ttl: int,
    user_id: str,
    now: float | None = None,
) -> dict[str, Any]:
    """Return an RTCIceServer entry with credentials valid for `ttl` seconds."""
    expiry = int(now if now is not None else time.time()) + ttl
    username = f"{expiry}:{user_id}"
    return {
        "urls": list(urls),
        "username": username,
        "credential": turn_password(secret, username),
    }


def ice_servers_for(settings: Settings, user_id: str) -> list[dict[str, Any]]:
    """Return the ICE servers for one admitted participant's browser.

    STUN URLs come as they are configured; TURN servers get fresh credentials
    named after the participant.
    """
    servers: list[dict[str, Any]] = [{"urls": [url]} for url in settings.ice_servers]
    if settings.turn_urls and settings.turn_secret is not None:
        servers.append(
            turn_server(
                settings.turn_urls, settings.turn_secret, settings.turn_ttl, user_id
            )
        )
    return servers
