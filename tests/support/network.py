"""Guard that keeps media tests inside a loopback-only network namespace."""

from __future__ import annotations

import os

import ifaddr
import pytest

LOOPBACK = {"127.0.0.1", "::1"}


def interface_addresses() -> list[str]:
    addresses = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            # ifaddr reports IPv6 addresses as (address, flowinfo, scope_id).
            addresses.append(ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip)
    return addresses


def require_loopback_only() -> None:
    """Skip, or fail under CI, unless loopback is the only network here.

    Media tests must not send packets to any other address, and aioice and
    Chromium would gather every interface address.
    """
    others = [a for a in interface_addresses() if a not in LOOPBACK]
    if not others:
        return
    message = (
        f"media tests need a loopback-only network namespace, found {others}; "
        "run them with scripts/test"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
