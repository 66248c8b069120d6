"""Checks of the deployment files that need no container engine."""

import ipaddress
import re
from pathlib import Path

import pytest

from server.config import ENVIRONMENT_VARIABLES, read_dotenv

ROOT = Path(__file__).resolve().parents[2]
COTURN_CONFIG = ROOT / "deploy" / "coturn" / "turnserver.conf"

# Addresses that the production TURN server must never relay toward.
FORBIDDEN_PEERS = [
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "10.1.2.3",
    "100.64.0.1",
    "172.16.5.4",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # metadata service of AWS, GCP, Azure and others
    "::1",
    "fe80::1",
    "fd00:ec2::254",  # AWS metadata service over IPv6
    "::ffff:10.0.0.1",
]
ALLOWED_PEERS = ["203.0.114.7", "8.8.8.8", "2a00:1450::1"]


def coturn_options() -> list[tuple[str, str]]:
    options = []
    for line in COTURN_CONFIG.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            options.append((name.strip(), value.strip()))
    return options


def denied_ranges() -> list[tuple[ipaddress._BaseAddress, ipaddress._BaseAddress]]:
    ranges = []
    for name, value in coturn_options():
        if name == "denied-peer-ip":
            first, _, last = value.partition("-")
            ranges.append(
                (ipaddress.ip_address(first), ipaddress.ip_address(last or first))
            )
    return ranges


def is_denied(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(
        type(first) is type(ip) and first <= ip <= last
        for first, last in denied_ranges()
    )


@pytest.mark.parametrize("address", FORBIDDEN_PEERS)
def test_coturn_denies_internal_peer(address: str) -> None:
    assert is_denied(address)


@pytest.mark.parametrize("address", ALLOWED_PEERS)
def test_coturn_allows_public_peer(address: str) -> None:
    assert not is_denied(address)


def test_coturn_config_has_no_exceptions() -> None:
    names = {name for name, _ in coturn_options()}

    assert "allowed-peer-ip" not in names
    assert "allow-loopback-peers" not in names
    assert "use-auth-secret" in names
    assert "static-auth-secret" not in names  # the compose file passes it


def test_compose_runs_coturn_with_this_config() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()

    assert "./deploy/coturn/turnserver.conf:/etc/coturn/turnserver.conf:ro" in compose
    assert re.search(r"--static-auth-secret=\$\{COWORKING_TURN_SECRET", compose)


def test_env_example_is_valid_dotenv() -> None:
    variables = read_dotenv(ROOT / ".env.example")

    known = set(ENVIRONMENT_VARIABLES.values())
    assert {v for v in variables if v.startswith("COWORKING_")} <= known
    for required in (
        "COWORKING_PUBLIC_URL",
        "COWORKING_ICE_HOST_ADDRESSES",
        "COWORKING_TURN_SECRET",
        "COWORKING_TURN_URLS",
        "COWORKING_ADMIN_TOKEN",
        "COWORKING_DB",
        "COWORKING_LOG_LEVEL",
    ):
        assert required in variables
    assert variables["COWORKING_TURN_SECRET"] == ""
