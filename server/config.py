"""Server settings, read once from flags, the environment and a `.env` file."""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

from .session import Plan, PlanError
from .storage import MAX_ROOM_LIMIT, MIN_ROOM_LIMIT

MAX_WORKERS = 64

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
ICE_SERVER_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
TURN_SCHEMES = ("turn:", "turns:")
MIN_SECRET_LENGTH = 16
# Lifetime of the TURN credentials handed to a participant, in seconds.
MIN_TURN_TTL = 60
MAX_TURN_TTL = 7 * 86400
DOTENV_PATH = Path(".env")


class ConfigError(ValueError):
    """Invalid setting. The message names the setting, the value and what is
    accepted, except for secrets, whose value it never contains."""


class Secret:
    """A string whose repr() and str() are masked, so printing or logging a Secret
    does not show the value. Only reveal() returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Server settings. Build them with load_settings, which validates each value."""

    host: str = "127.0.0.1"
    port: int = 8080
    db_path: Path = Path("data/coworking.sqlite3")
    # Base URL of invite links, for a server behind a reverse proxy. Empty means
    # http://HOST:PORT, see `url`.
    public_url: str = ""
    # Addresses the SFU offers as ICE host candidates. Empty means every address of
    # every interface.
    ice_host_addresses: tuple[str, ...] = ()
    # STUN and TURN URLs for browsers and for the server's peer connections. There is
    # deliberately no public default server.
    # Browsers reject turn: and turns: URLs here, which carry no credentials:
    # configure TURN servers with turn_urls and turn_secret instead.
    ice_servers: tuple[str, ...] = ()
    admin_token: Secret | None = None  # bearer token for /api/admin/stats
    # Bearer token for /metrics. The admin token is accepted there too.
    metrics_token: Secret | None = None
    # TURN servers for browsers (turn: or turns: URLs) and the secret they share
    # with this server, from which it derives credentials per participant.
    turn_urls: tuple[str, ...] = ()
    turn_secret: Secret | None = None
    # Long enough for a working day in one session, see docs/hosting.md.
    turn_ttl: int = 12 * 3600
    room_limit: int = 25  # participant limit for new rooms
    log_level: str = "INFO"
    log_format: str = "text"  # "json" writes one JSON object per line
    # Worker processes that host rooms; 0 means one per CPU core. With one worker
    # everything runs in a single process.
    workers: int = 0
    # Failed invite checks per client address and minute before its attempts
    # are refused for the rest of that minute.
    admission_failures: int = 30
    # Addresses of reverse proxies whose X-Forwarded-For header names the
    # client, such as 127.0.0.1 for a proxy on the same machine.
    trusted_proxies: tuple[str, ...] = ()
    # Minutes before a slot's start from which an invite bound to it admits.
    slot_early_minutes: int = 10

    @property
    def slot_early_seconds(self) -> float:
        return self.slot_early_minutes * 60.0
    # Default focus/break plan of a room's session clock.
    session_plan: Plan = Plan()
    # Folder whose PNG, JPEG and WebP files replace the built-in virtual
    # backgrounds; None means the set in static/backgrounds.
    backgrounds_dir: Path | None = None
    # Whether participants may upload their own background images.
    background_uploads: bool = True
    # Limits on one uploaded background: file size in bytes, width x height.
    background_max_bytes: int = 5_000_000
    background_max_pixels: int = 12_000_000
    # Uploaded backgrounds kept per room; more are rejected.
    background_max_uploads: int = 100

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def url(self) -> str:
        """Base URL of invite links, without a trailing slash.

        Without a public_url it is built from host and port. A wildcard host
        (0.0.0.0 or ::) becomes the loopback address of the same family, which
        makes a link that works on this machine only.
        """
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


# Setting name -> environment variable. load_settings reads only these.
ENVIRONMENT_VARIABLES = {
    "host": "COWORKING_HOST",
    "port": "COWORKING_PORT",
    "db_path": "COWORKING_DB",
    "public_url": "COWORKING_PUBLIC_URL",
    "ice_host_addresses": "COWORKING_ICE_HOST_ADDRESSES",
    "ice_servers": "COWORKING_ICE_SERVERS",
    "admin_token": "COWORKING_ADMIN_TOKEN",
    "room_limit": "COWORKING_ROOM_LIMIT",
    "log_level": "COWORKING_LOG_LEVEL",
    "workers": "COWORKING_WORKERS",
    "admission_failures": "COWORKING_ADMISSION_FAILURES",
    "trusted_proxies": "COWORKING_TRUSTED_PROXIES",
    "slot_early_minutes": "COWORKING_SLOT_EARLY_MINUTES",
    "session_plan": "COWORKING_SESSION_PLAN",
    "metrics_token": "COWORKING_METRICS_TOKEN",
    "turn_urls": "COWORKING_TURN_URLS",
    "turn_secret": "COWORKING_TURN_SECRET",
    "turn_ttl": "COWORKING_TURN_TTL",
    "log_format": "COWORKING_LOG_FORMAT",
    "backgrounds_dir": "COWORKING_BACKGROUNDS_DIR",
    "background_uploads": "COWORKING_BACKGROUND_UPLOADS",
    "background_max_bytes": "COWORKING_BACKGROUND_MAX_BYTES",
    "background_max_pixels": "COWORKING_BACKGROUND_MAX_PIXELS",
    "background_max_uploads": "COWORKING_BACKGROUND_MAX_UPLOADS",
}

# Setting name -> command-line flag, to name the source of a bad override.
_FLAGS = {
    "host": "--host",
    "port": "--port",
    "db_path": "--db",
    "public_url": "--public-url",
    "ice_host_addresses": "--ice-host-address",
    "ice_servers": "--ice-server",
    "log_level": "--log-level",
    "workers": "--workers",
}

_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOTENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")


def load_settings(
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Settings:
    """Build the settings and raise ConfigError for any invalid value.

    Each setting comes from the first source that has it: `overrides` (keyed by
    Settings field name, None values skipped), then `environ`, then the `.env` file
    in the current directory, then the Settings default. A variable that is set but
    empty counts as set.
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(ENVIRONMENT_VARIABLES))
    if unknown:
        raise ConfigError(f"Unknown settings in overrides: {', '.join(unknown)}")

    dotenv = read_dotenv(DOTENV_PATH)
    values: dict[str, object] = {}
    for field_name, variable in ENVIRONMENT_VARIABLES.items():
        override = overrides.get(field_name)
        if override is not None:
            raw: object = override
            source = _FLAGS.get(field_name, field_name)
        elif variable in environ:
            raw = environ[variable]
            source = variable
        elif variable in dotenv:
            raw = dotenv[variable]
            source = f"{variable} in {DOTENV_PATH}"
        else:
            continue
        values[field_name] = _PARSERS[field_name](raw, source)
    settings = Settings(**values)  # type: ignore[arg-type]
    check_required(settings)
    return settings


def check_required(settings: Settings) -> None:
    """Raise ConfigError naming the variable that another setting requires."""
    if settings.turn_urls and settings.turn_secret is None:
        raise ConfigError(
            "COWORKING_TURN_SECRET is missing: it is required when"
            " COWORKING_TURN_URLS is set, and must be the static-auth-secret of"
            " the TURN server"
        )
    if settings.turn_secret is not None and not settings.turn_urls:
        raise ConfigError(
            "COWORKING_TURN_URLS is missing: it is required when"
            " COWORKING_TURN_SECRET is set, such as turn:cowork.example.org:3478"
        )


def check_serve_settings(settings: Settings) -> None:
    """Raise ConfigError for settings that `serve` needs beyond load_settings.

    A server that listens on a non-loopback address is meant for other
    machines, so links built from the listening address would be wrong.
    """
    if settings.public_url or _is_loopback(settings.host):
        return
    raise ConfigError(
        f"COWORKING_PUBLIC_URL is missing: it is required when the server listens"
        f" on {settings.host}, because invite links must carry the address that"
        " browsers use, such as https://cowork.example.org"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_environment(settings: Settings) -> dict[str, str]:
    """Return environment variables that make load_settings rebuild `settings`.

    The server passes its settings to its worker processes this way.
    """
    values: dict[str, str] = {}
    for field_name, variable in ENVIRONMENT_VARIABLES.items():
        value = getattr(settings, field_name)
        if value is None:
            continue
        if isinstance(value, Secret):
            value = value.reveal()
        elif isinstance(value, tuple):
            value = ",".join(value)
        values[variable] = str(value)
    return values


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file of KEY=VALUE lines and return its variables.

    Blank lines and lines starting with # are skipped, an `export ` prefix is
    allowed, and one pair of matching quotes around a value is removed. Return an
    empty dict if the file does not exist. Raise ConfigError for a malformed line or
    an unknown COWORKING_ variable, which is most likely a typo.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read {path}: {error}") from error

    variables: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, separator, value = stripped.partition("=")
        key = key.strip()
        # The line itself stays out of the message because it may contain a secret.
        if not separator or not _DOTENV_KEY.fullmatch(key):
            raise ConfigError(
                f"Invalid line {number} in {path}: expected KEY=VALUE or a # comment"
            )
        if key.startswith("COWORKING_") and key not in ENVIRONMENT_VARIABLES.values():
            known = ", ".join(ENVIRONMENT_VARIABLES.values())
            raise ConfigError(
                f"Unknown variable {key} on line {number} in {path}. Known variables:"
                f" {known}"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        variables[key] = value
    return variables


def _parse_host(value: object, source: str) -> str:
    message = f"{source} must be an IP address or a host name, got {value!r}"
    if not isinstance(value, str):
        raise ConfigError(message)
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_HOSTNAME_LABEL.fullmatch(x) for x in labels):
        raise ConfigError(message)
    return host


def _parse_integer(value: object, source: str, minimum: int, maximum: int) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or not minimum <= number <= maximum:
        raise ConfigError(
            f"{source} must be an integer from {minimum} to {maximum}, got {value!r}"
        )
    return number


def _parse_port(value: object, source: str) -> int:
    return _parse_integer(value, source, 1, 65535)


def _parse_room_limit(value: object, source: str) -> int:
    return _parse_integer(value, source, MIN_ROOM_LIMIT, MAX_ROOM_LIMIT)


def _parse_admission_failures(value: object, source: str) -> int:
    return _parse_integer(value, source, 1, 1_000_000)


def _parse_slot_early_minutes(value: object, source: str) -> int:
    return _parse_integer(value, source, 0, 24 * 60)


def _parse_workers(value: object, source: str) -> int:
    return _parse_integer(value, source, 0, MAX_WORKERS)


def _parse_db_path(value: object, source: str) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source} must be a file path, got {value!r}")
    return Path(value.strip()).expanduser()


def _parse_public_url(value: object, source: str) -> str:
    message = (
        f"{source} must be an http:// or https:// URL without a user name, query or"
        f" fragment, such as https://cowork.example.org, got {value!r}"
    )
    if not isinstance(value, str):
        raise ConfigError(message)
    url = value.strip()
    if not url:
        return ""
    if any(character.isspace() or not character.isprintable() for character in url):
        raise ConfigError(message)
    try:
        parts = urlsplit(url)
        _ = (
            parts.port
        )  # raises ValueError unless the port is an integer from 0 to 65535
    except ValueError as error:
        raise ConfigError(message) from error
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or url.endswith(("?", "#"))
    ):
        raise ConfigError(message)
    return url.rstrip("/")


def _split_list(value: object, source: str) -> list[str]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        items = list(value)
    else:
        raise ConfigError(
            f"{source} must be a comma-separated string or a list of strings,"
            f" got {value!r}"
        )
    return [item.strip() for item in items if item.strip()]


def _parse_ip_addresses(value: object, source: str) -> tuple[str, ...]:
    addresses = []
    for item in _split_list(value, source):
        try:
            addresses.append(str(ipaddress.ip_address(item)))
        except ValueError as error:
            raise ConfigError(
                f"{source} must be a comma-separated list of IP addresses, got {item!r}"
            ) from error
    return tuple(addresses)


def _parse_ice_servers(value: object, source: str) -> tuple[str, ...]:
    urls = []
    for item in _split_list(value, source):
        scheme_ok = item.startswith(ICE_SERVER_SCHEMES)
        rest = item.partition(":")[2]
        if (
            not scheme_ok
            or not rest
            or any(c.isspace() or not c.isprintable() for c in item)
        ):
            raise ConfigError(
                f"{source} must be a comma-separated list of URLs starting with"
                f" stun:, stuns:, turn: or turns:, got {item!r}"
            )
        urls.append(item)
    return tuple(urls)


def _parse_secret(value: object, source: str) -> Secret | None:
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ConfigError(f"{source} must be a string")
    token = value.strip()
    if not token:
        return None
    # The messages give only the length, because the value is a secret.
    if len(token) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{source} must be at least {MIN_SECRET_LENGTH} characters long, got"
            f" {len(token)} characters. Generate one with: python3 -c 'import"
            " secrets; print(secrets.token_urlsafe(24))'"
        )
    if any(character.isspace() or not character.isprintable() for character in token):
        raise ConfigError(f"{source} must not contain spaces or control characters")
    return Secret(token)


def _parse_turn_urls(value: object, source: str) -> tuple[str, ...]:
    urls = _parse_ice_servers(value, source)
    for url in urls:
        if not url.startswith(TURN_SCHEMES):
            raise ConfigError(
                f"{source} must list turn: or turns: URLs only, got {url!r}"
            )
    return urls


def _parse_turn_ttl(value: object, source: str) -> int:
    return _parse_integer(value, source, MIN_TURN_TTL, MAX_TURN_TTL)


def _parse_log_format(value: object, source: str) -> str:
    log_format = value.strip().lower() if isinstance(value, str) else None
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"{source} must be one of {', '.join(LOG_FORMATS)}, got {value!r}"
        )
    return log_format


def _parse_log_level(value: object, source: str) -> str:
    level = value.strip().upper() if isinstance(value, str) else None
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"{source} must be one of {', '.join(LOG_LEVELS)}, got {value!r}"
        )
    return level


def _parse_session_plan(value: object, source: str) -> Plan:
    if isinstance(value, Plan):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{source} must be a plan such as 50/10/4/30, got {value!r}")
    try:
        return Plan.parse(value)
    except PlanError as error:
        raise ConfigError(f"{source}: {error}") from error


def _parse_backgrounds_dir(value: object, source: str) -> Path | None:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"{source} must be a folder path, got {value!r}")
    if not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{source} must name an existing folder, got {value!r}")
    return path


_SWITCH_VALUES = {
    "on": True,
    "true": True,
    "1": True,
    "off": False,
    "false": False,
    "0": False,
}


def _parse_switch(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _SWITCH_VALUES:
        return _SWITCH_VALUES[value.strip().lower()]
    raise ConfigError(f"{source} must be on or off, got {value!r}")


def _parse_background_max_bytes(value: object, source: str) -> int:
    return _parse_integer(value, source, 10_000, 100_000_000)


def _parse_background_max_pixels(value: object, source: str) -> int:
    return _parse_integer(value, source, 10_000, 100_000_000)


def _parse_background_max_uploads(value: object, source: str) -> int:
    return _parse_integer(value, source, 0, 10_000)


_PARSERS: dict[str, Callable[[object, str], object]] = {
    "host": _parse_host,
    "port": _parse_port,
    "db_path": _parse_db_path,
    "public_url": _parse_public_url,
    "ice_host_addresses": _parse_ip_addresses,
    "ice_servers": _parse_ice_servers,
    "admin_token": _parse_secret,
    "metrics_token": _parse_secret,
    "turn_urls": _parse_turn_urls,
    "turn_secret": _parse_secret,
    "turn_ttl": _parse_turn_ttl,
    "log_format": _parse_log_format,
    "room_limit": _parse_room_limit,
    "log_level": _parse_log_level,
    "workers": _parse_workers,
    "admission_failures": _parse_admission_failures,
    "trusted_proxies": _parse_ip_addresses,
    "slot_early_minutes": _parse_slot_early_minutes,
    "session_plan": _parse_session_plan,
    "backgrounds_dir": _parse_backgrounds_dir,
    "background_uploads": _parse_switch,
    "background_max_bytes": _parse_background_max_bytes,
    "background_max_pixels": _parse_background_max_pixels,
    "background_max_uploads": _parse_background_max_uploads,
}
