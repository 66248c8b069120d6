from pathlib import Path

import pytest

from server.config import (
    ConfigError,
    Secret,
    Settings,
    check_serve_settings,
    load_settings,
    settings_environment,
)

ADMIN_TOKEN = "admin-token-0123456789-abcdef"


@pytest.fixture(autouse=True)
def empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in an empty directory, so no real .env file is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_dotenv(text: str) -> None:
    Path(".env").write_text(text, encoding="utf-8")


def test_defaults() -> None:
    settings = load_settings(environ={})

    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.db_path == Path("data/coworking.sqlite3")
    assert settings.public_url == ""
    assert settings.ice_host_addresses == ()
    assert settings.ice_servers == ()
    assert settings.admin_token is None
    assert settings.room_limit == 25
    assert settings.log_level == "INFO"
    assert settings.url == "http://127.0.0.1:8080"


def test_precedence_override_env_dotenv() -> None:
    write_dotenv("COWORKING_PORT=1111\nCOWORKING_ROOM_LIMIT=7\nCOWORKING_HOST=::1\n")
    environ = {"COWORKING_PORT": "2222", "COWORKING_ROOM_LIMIT": "8"}

    settings = load_settings({"port": 3333}, environ=environ)

    assert settings.port == 3333  # override beats environment
    assert settings.room_limit == 8  # environment beats .env
    assert settings.host == "::1"  # .env beats default
    assert settings.log_level == "INFO"  # default


def test_none_override_ignored() -> None:
    settings = load_settings(
        {"port": None, "host": None, "ice_servers": None},
        environ={"COWORKING_PORT": "2222", "COWORKING_ICE_SERVERS": "stun:a.test"},
    )

    assert settings.port == 2222
    assert settings.host == "127.0.0.1"
    assert settings.ice_servers == ("stun:a.test",)


def test_all_environment_variables() -> None:
    environ = {
        "COWORKING_HOST": "0.0.0.0",
        "COWORKING_PORT": "443",
        "COWORKING_DB": "/var/lib/coworking/db.sqlite3",
        "COWORKING_PUBLIC_URL": "https://cowork.example.org/",
        "COWORKING_ICE_HOST_ADDRESSES": "192.0.2.10, 2001:db8::1,",
        "COWORKING_ICE_SERVERS": "stun:stun.example.org:3478,turns:t.example.org",
        "COWORKING_ADMIN_TOKEN": ADMIN_TOKEN,
        "COWORKING_ROOM_LIMIT": "40",
        "COWORKING_LOG_LEVEL": "debug",
        "COWORKING_WORKERS": "3",
    }

    settings = load_settings(environ=environ)

    assert settings.host == "0.0.0.0"
    assert settings.port == 443
    assert settings.db_path == Path("/var/lib/coworking/db.sqlite3")
    assert settings.public_url == "https://cowork.example.org"
    assert settings.ice_host_addresses == ("192.0.2.10", "2001:db8::1")
    assert settings.ice_servers == (
        "stun:stun.example.org:3478",
        "turns:t.example.org",
    )
    assert settings.admin_token is not None
    assert settings.admin_token.reveal() == ADMIN_TOKEN
    assert settings.room_limit == 40
    assert settings.log_level == "DEBUG"
    assert settings.workers == 3
    assert settings.worker_count == 3
    assert settings.url == "https://cowork.example.org"


def test_overrides_accept_lists_and_paths() -> None:
    settings = load_settings(
        {
            "db_path": Path("x/y.sqlite3"),
            "ice_host_addresses": ["127.0.0.1", "::1"],
            "ice_servers": ["stun:127.0.0.1:3478"],
            "port": "9000",
        },
        environ={},
    )

    assert settings.db_path == Path("x/y.sqlite3")
    assert settings.ice_host_addresses == ("127.0.0.1", "::1")
    assert settings.ice_servers == ("stun:127.0.0.1:3478",)
    assert settings.port == 9000


def test_dotenv_syntax() -> None:
    write_dotenv(
        "# comment line\n"
        "\n"
        "   # indented comment\n"
        "export COWORKING_PORT=9001\n"
        'COWORKING_PUBLIC_URL = "https://a.example.org/x"\n'
        "COWORKING_ADMIN_TOKEN='with#hash-0123456789'\n"
        "OTHER_TOOL_SETTING=ignored\n"
    )

    settings = load_settings(environ={})

    assert settings.port == 9001
    assert settings.public_url == "https://a.example.org/x"
    assert settings.admin_token == Secret("with#hash-0123456789")


def test_dotenv_malformed_line() -> None:
    write_dotenv("COWORKING_PORT=1\nCOWORKING_ADMIN_TOKEN secret-value\n")

    with pytest.raises(ConfigError) as raised:
        load_settings(environ={})

    assert "line 2" in str(raised.value)
    assert ".env" in str(raised.value)
    assert "secret-value" not in str(raised.value)


def test_dotenv_unknown_variable() -> None:
    write_dotenv("COWORKING_PROT=8000\n")

    with pytest.raises(ConfigError, match="Unknown variable COWORKING_PROT on line 1"):
        load_settings(environ={})


def test_environment_empty_counts_as_set() -> None:
    write_dotenv("COWORKING_PUBLIC_URL=https://from-dotenv.example.org\n")

    settings = load_settings(environ={"COWORKING_PUBLIC_URL": ""})

    assert settings.public_url == ""


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "COWORKING_PORT",
            "abc",
            "COWORKING_PORT must be an integer from 1 to 65535, got 'abc'",
        ),
        (
            "COWORKING_PORT",
            "0",
            "COWORKING_PORT must be an integer from 1 to 65535, got '0'",
        ),
        (
            "COWORKING_PORT",
            "8_080",
            "COWORKING_PORT must be an integer from 1 to 65535, got '8_080'",
        ),
        (
            "COWORKING_PORT",
            "65536",
            "COWORKING_PORT must be an integer from 1 to 65535, got '65536'",
        ),
        (
            "COWORKING_ROOM_LIMIT",
            "1",
            "COWORKING_ROOM_LIMIT must be an integer from 2 to 100, got '1'",
        ),
        (
            "COWORKING_LOG_LEVEL",
            "LOUD",
            "COWORKING_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR,"
            " CRITICAL, got 'LOUD'",
        ),
        (
            "COWORKING_ICE_SERVERS",
            "stun:ok.example.org,https://stun.example.org",
            "COWORKING_ICE_SERVERS must be a comma-separated list of URLs starting"
            " with stun:, stuns:, turn: or turns:, got 'https://stun.example.org'",
        ),
        (
            "COWORKING_ICE_SERVERS",
            "stun:",
            "COWORKING_ICE_SERVERS must be a comma-separated list of URLs starting"
            " with stun:, stuns:, turn: or turns:, got 'stun:'",
        ),
        (
            "COWORKING_ICE_HOST_ADDRESSES",
            "10.0.0.1,eth0",
            "COWORKING_ICE_HOST_ADDRESSES must be a comma-separated list of IP"
            " addresses, got 'eth0'",
        ),
        (
            "COWORKING_HOST",
            "bad host",
            "COWORKING_HOST must be an IP address or a host name, got 'bad host'",
        ),
        (
            "COWORKING_HOST",
            "",
            "COWORKING_HOST must be an IP address or a host name, got ''",
        ),
        (
            "COWORKING_DB",
            " ",
            "COWORKING_DB must be a file path, got ' '",
        ),
        (
            "COWORKING_WORKERS",
            "-1",
            "COWORKING_WORKERS must be an integer from 0 to 64, got '-1'",
        ),
    ],
)
def test_invalid_value_message(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={variable: value})
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.org",
        "cowork.example.org",
        "https://",
        "https://cowork.example.org/?a=1",
        "https://cowork.example.org/#x",
        "https://user:pw@cowork.example.org",
        "https://cowork.example.org:99999",
        "https://cowork.example.org/a b",
    ],
)
def test_invalid_public_url(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"COWORKING_PUBLIC_URL": url})
    assert str(raised.value).startswith("COWORKING_PUBLIC_URL must be an http://")
    assert repr(url) in str(raised.value)


def test_invalid_override_names_flag() -> None:
    with pytest.raises(ConfigError, match="^--port must be an integer"):
        load_settings({"port": "http"}, environ={})
    with pytest.raises(ConfigError, match="^--ice-server must be"):
        load_settings({"ice_servers": ["stun.example.org"]}, environ={})


def test_invalid_dotenv_value_names_file() -> None:
    write_dotenv("COWORKING_PORT=abc\n")

    with pytest.raises(ConfigError, match="^COWORKING_PORT in .env must be"):
        load_settings(environ={})


def test_unknown_override_rejected() -> None:
    with pytest.raises(ConfigError, match="Unknown settings in overrides: colour"):
        load_settings({"colour": "blue"}, environ={})


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_admin_token_too_short_hides_value() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"COWORKING_ADMIN_TOKEN": "short-secret"})

    assert "COWORKING_ADMIN_TOKEN must be at least 16 characters" in str(raised.value)
    assert "short-secret" not in str(raised.value)


def test_admin_token_empty_disables() -> None:
    settings = load_settings(environ={"COWORKING_ADMIN_TOKEN": ""})
    assert settings.admin_token is None


def test_settings_repr_hides_admin_token() -> None:
    settings = load_settings(environ={"COWORKING_ADMIN_TOKEN": ADMIN_TOKEN})

    assert ADMIN_TOKEN not in repr(settings)
    assert ADMIN_TOKEN not in str(settings)
    assert "Secret('**********')" in repr(settings)


def test_secret_masks_and_reveals() -> None:
    secret = Secret(ADMIN_TOKEN)

    assert repr(secret) == "Secret('**********')"
    assert str(secret) == "Secret('**********')"
    assert f"{secret}" == "Secret('**********')"
    assert secret.reveal() == ADMIN_TOKEN
    assert secret == Secret(ADMIN_TOKEN)
    assert secret != Secret(ADMIN_TOKEN + "x")


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("0.0.0.0", 80, "http://127.0.0.1:80"),
        ("::", 8080, "http://[::1]:8080"),
        ("::1", 8443, "http://[::1]:8443"),
        ("2001:db8::5", 8080, "http://[2001:db8::5]:8080"),
        ("localhost", 9000, "http://localhost:9000"),
    ],
)
def test_url_built_from_host(host: str, port: int, url: str) -> None:
    settings = load_settings({"host": host, "port": port}, environ={})
    assert settings.url == url


def test_url_from_bracketed_host() -> None:
    settings = load_settings({"host": "[::1]"}, environ={})
    assert settings.host == "::1"
    assert settings.url == "http://[::1]:8080"


def test_url_prefers_public_url() -> None:
    settings = load_settings(
        {"public_url": "https://example.org/cowork/", "host": "0.0.0.0"}, environ={}
    )
    assert settings.url == "https://example.org/cowork"


def test_workers_zero_means_one_per_core() -> None:
    settings = load_settings(environ={"COWORKING_WORKERS": "0"})

    assert settings.worker_count >= 1


def test_settings_environment_round_trip() -> None:
    settings = load_settings(
        {"ice_host_addresses": ["127.0.0.1", "::1"], "workers": "2"},
        environ={
            "COWORKING_ADMIN_TOKEN": ADMIN_TOKEN,
            "COWORKING_ICE_SERVERS": "stun:stun.example.org:3478",
        },
    )

    environ = settings_environment(settings)

    assert load_settings(environ=environ) == settings
    assert environ["COWORKING_ADMIN_TOKEN"] == ADMIN_TOKEN


def test_session_plan_default() -> None:
    plan = load_settings(environ={}).session_plan
    assert (plan.focus, plan.short_break, plan.rounds, plan.long_break) == (
        3000,
        600,
        4,
        1800,
    )


def test_session_plan_from_environment() -> None:
    settings = load_settings(environ={"COWORKING_SESSION_PLAN": "25/5/3/15"})
    plan = settings.session_plan
    assert (plan.focus, plan.short_break, plan.rounds, plan.long_break) == (
        1500,
        300,
        3,
        900,
    )


def test_session_plan_round_trip() -> None:
    settings = load_settings(environ={"COWORKING_SESSION_PLAN": "1.5s/2s/2/0.25"})
    assert load_settings(environ=settings_environment(settings)) == settings


@pytest.mark.parametrize(
    "value", ["50/10/4", "fifty/10/4/30", "50/10/101/30", "0/1/1/1"]
)
def test_session_plan_invalid(value: str) -> None:
    with pytest.raises(ConfigError, match="COWORKING_SESSION_PLAN"):
        load_settings(environ={"COWORKING_SESSION_PLAN": value})


TURN_SECRET = "turn-secret-0123456789-abcdef"
METRICS_TOKEN = "metrics-token-0123456789-abc"


def test_turn_settings_from_environment() -> None:
    settings = load_settings(
        environ={
            "COWORKING_TURN_URLS": "turn:t.example.org:3478, turns:t.example.org",
            "COWORKING_TURN_SECRET": TURN_SECRET,
            "COWORKING_TURN_TTL": "900",
        }
    )

    assert settings.turn_urls == ("turn:t.example.org:3478", "turns:t.example.org")
    assert settings.turn_secret == Secret(TURN_SECRET)
    assert settings.turn_ttl == 900


def test_turn_urls_without_secret_names_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"COWORKING_TURN_URLS": "turn:t.example.org"})

    assert str(raised.value).startswith("COWORKING_TURN_SECRET is missing")


def test_turn_secret_without_urls_names_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"COWORKING_TURN_SECRET": TURN_SECRET})

    assert str(raised.value).startswith("COWORKING_TURN_URLS is missing")


def test_turn_urls_reject_stun() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            environ={
                "COWORKING_TURN_URLS": "stun:t.example.org",
                "COWORKING_TURN_SECRET": TURN_SECRET,
            }
        )

    assert "turn: or turns: URLs only" in str(raised.value)


def test_turn_secret_too_short_hides_value() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            environ={
                "COWORKING_TURN_URLS": "turn:t.example.org",
                "COWORKING_TURN_SECRET": "tiny-secret",
            }
        )

    assert "COWORKING_TURN_SECRET must be at least 16" in str(raised.value)
    assert "tiny-secret" not in str(raised.value)


def test_settings_repr_hides_every_secret() -> None:
    settings = load_settings(
        environ={
            "COWORKING_ADMIN_TOKEN": ADMIN_TOKEN,
            "COWORKING_METRICS_TOKEN": METRICS_TOKEN,
            "COWORKING_TURN_URLS": "turn:t.example.org",
            "COWORKING_TURN_SECRET": TURN_SECRET,
        }
    )

    for secret in (ADMIN_TOKEN, METRICS_TOKEN, TURN_SECRET):
        assert secret not in repr(settings)
        assert secret not in str(settings)
    assert repr(settings).count("Secret('**********')") == 3


def test_log_format_json_or_text() -> None:
    assert load_settings(environ={}).log_format == "text"
    assert load_settings(environ={"COWORKING_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"COWORKING_LOG_FORMAT": "xml"})
    assert "COWORKING_LOG_FORMAT must be one of text, json" in str(raised.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "cowork.lan"])
def test_serve_on_network_needs_public_url(host: str) -> None:
    settings = load_settings({"host": host}, environ={})

    with pytest.raises(ConfigError) as raised:
        check_serve_settings(settings)

    assert str(raised.value).startswith("COWORKING_PUBLIC_URL is missing")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_serve_on_loopback_needs_no_public_url(host: str) -> None:
    check_serve_settings(load_settings({"host": host}, environ={}))


def test_turn_settings_round_trip() -> None:
    settings = load_settings(
        environ={
            "COWORKING_METRICS_TOKEN": METRICS_TOKEN,
            "COWORKING_TURN_URLS": "turn:t.example.org",
            "COWORKING_TURN_SECRET": TURN_SECRET,
            "COWORKING_LOG_FORMAT": "json",
        }
    )

    assert load_settings(environ=settings_environment(settings)) == settings


def test_background_settings_from_environment(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    settings = load_settings(
        environ={
            "COWORKING_BACKGROUNDS_DIR": str(folder),
            "COWORKING_BACKGROUND_UPLOADS": "off",
            "COWORKING_BACKGROUND_MAX_BYTES": "200000",
            "COWORKING_BACKGROUND_MAX_PIXELS": "4000000",
            "COWORKING_BACKGROUND_MAX_UPLOADS": "3",
        }
    )
    assert settings.backgrounds_dir == folder
    assert settings.background_uploads is False
    assert settings.background_max_bytes == 200_000
    assert settings.background_max_pixels == 4_000_000
    assert settings.background_max_uploads == 3
    assert load_settings(environ=settings_environment(settings)) == settings


def test_background_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.backgrounds_dir is None
    assert settings.background_uploads is True


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("COWORKING_BACKGROUNDS_DIR", "/no/such/folder", "existing folder"),
        ("COWORKING_BACKGROUND_UPLOADS", "maybe", "on or off"),
        ("COWORKING_BACKGROUND_MAX_BYTES", "10", "from 10000 to"),
        ("COWORKING_BACKGROUND_MAX_PIXELS", "lots", "integer"),
    ],
)
def test_invalid_background_setting(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={variable: value})
