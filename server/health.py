"""Readiness checks behind /healthz: the database and the media path."""

from __future__ import annotations

import logging
import socket
import sqlite3

import aioice.ice

from .storage import Storage, StorageError

logger = logging.getLogger(__name__)


async def database_problem(storage: Storage) -> str | None:
    """Return why the database is unusable, or None if it is usable."""
    check = getattr(storage, "check", None)
    if check is None:
        return None
    try:
        await check()
    except (StorageError, sqlite3.Error, OSError) as error:
        return f"database: {error}"
    return None


def media_problem() -> str | None:
    """Return why peer connections cannot be set up, or None if they can.

    The server must have an address to offer as an ICE host candidate and be
    able to open a UDP socket on it, which is what aioice does per connection.
    """
    addresses = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    if not addresses:
        return "media: no IP address to offer; set COWORKING_ICE_HOST_ADDRESSES"
    address = addresses[0]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError as error:
        return f"media: cannot open a UDP socket on {address}: {error}"
    return None
