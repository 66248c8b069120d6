"""ICE settings: which addresses the server offers and which servers it uses."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

logger = logging.getLogger(__name__)


def set_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly these addresses as host candidates.

    aioice 0.13 gathers every interface address but loopback and has no option
    to choose, so its address lookup is replaced. Containers need the host's
    public address here, and tests on loopback need 127.0.0.1.
    """
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return [
            a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)
        ]

    aioice.ice.get_host_addresses = host_addresses
    logger.info("ICE host candidates limited to %s", ", ".join(chosen))


def rtc_configuration(ice_servers: Sequence[str]) -> RTCConfiguration:
    # An explicit list, even an empty one, keeps aiortc from using its built-in
    # public STUN server. max-bundle is required: with aiortc's default policy
    # a browser's extra video m-lines end up on a transport that is discarded.
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=url) for url in ice_servers],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
