"""The README's configuration table is the one generated from services/config.py, and the
environment is read and checked as it documents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.config import REPO_ROOT, Settings
from services.tools.config_table import markdown_table, readme_table

pytestmark = pytest.mark.unit  # make check: no broker, browser, ClickHouse or Java


def test_readme_table_matches_the_settings():
    table = readme_table((REPO_ROOT / "README.md").read_text("utf-8"))
    assert table is not None, "README.md lost its configuration table markers"
    assert table == markdown_table(), "run: python -m services.tools.config_table --write"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("STORE_DSN", "http://clickhouse:8123/default")
    monkeypatch.setenv("STATE_DIR", "/srv/thuvien/state")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.5, 192.168.0.0/16")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = Settings.from_env()
    assert settings.port == 9100 and settings.store_dsn == "http://clickhouse:8123/default"
    assert settings.state_dir == Path("/srv/thuvien/state")
    assert settings.trusted_proxies == ("10.0.0.5", "192.168.0.0/16")
    assert settings.log_level == "DEBUG"


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch):
    # docker compose passes an unset ${VAR} as VAR=""
    for name in ("PORT", "BUS", "STORE_DSN", "LOG_FORMAT", "TRUSTED_PROXIES"):
        monkeypatch.setenv(name, "")
    settings = Settings.from_env()
    assert (settings.port, settings.bus, settings.store_dsn) == (8000, "embedded", "chdb://var/store")
    assert settings.log_format == "json" and settings.trusted_proxies == ()


def test_an_unknown_bus_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BUS", "rabbitmq")
    with pytest.raises(ValueError) as refused:
        Settings.from_env()
    assert str(refused.value) == "BUS='rabbitmq': input should be 'embedded' or 'kafka'"


@pytest.mark.parametrize(("dsn", "why"), [
    ("postgres://db/x", "is neither chdb://PATH nor http(s)://HOST[:PORT][/DB]"),
    ("http://clickhouse:81234/default", "its port is not a number in 1..65535"),
    ("http://clickhouse:0/default", "its port is not a number in 1..65535"),
    ("http://clickhouse:http/default", "its port is not a number in 1..65535"),
    ("http://clickhouse:8123/thuvien/extra", "names more than one database"),
    ("http:///default", "has no host"),
    ("chdb://", "chdb:// needs the store's directory"),
])
def test_a_bad_store_dsn_is_refused(monkeypatch: pytest.MonkeyPatch, dsn: str, why: str):
    monkeypatch.setenv("STORE_DSN", dsn)
    with pytest.raises(ValueError, match=r"^STORE_DSN=") as refused:
        Settings.from_env()
    assert why in str(refused.value)


def test_a_refused_dsn_does_not_show_its_password(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STORE_DSN", "https://ops:s3cret@clickhouse:0/default")
    with pytest.raises(ValueError, match=r"STORE_DSN='https://ops:\*\*\*@clickhouse:0/default'") as refused:
        Settings.from_env()
    assert "s3cret" not in str(refused.value)


def test_a_malformed_proxy_address_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch):
    # uvicorn would take 10.0.0.1/8 as a name that never matches, and silently trust nobody
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1,10.0.0.1/8")
    with pytest.raises(ValueError, match=r"^TRUSTED_PROXIES=.*'10\.0\.0\.1/8' is not an IP address or CIDR network"):
        Settings.from_env()


def test_every_wrong_variable_is_named_on_one_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PORT", "http")
    monkeypatch.setenv("AUTH_LOCKOUT_S", "0")
    with pytest.raises(ValueError) as refused:
        Settings.from_env()
    message = str(refused.value)
    assert "\n" not in message and message.startswith("PORT='http': input should be a valid integer")
    assert "; AUTH_LOCKOUT_S='0': input should be greater than 0" in message


def test_overrides_win_over_the_environment_and_are_checked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.setenv("QUERY_PORT", "9001")
    assert Settings.from_env(log_format="json").log_format == "json"
    with pytest.raises(ValueError, match=r"^LOG_FORMAT='xml': input should be 'json' or 'text'$"):
        Settings.from_env(log_format="xml")
    with pytest.raises(ValueError, match=r"^PORT=0: input should be greater than or equal to 1$"):
        Settings.from_env(port=0)
    with pytest.raises(ValueError, match=r"^QUEUE_PORT is not a setting$"):
        Settings.from_env(queue_port=9001)


def test_settings_survive_the_trip_through_a_child_process_environment(monkeypatch: pytest.MonkeyPatch):
    settings = Settings.from_env(trusted_proxies="127.0.0.1,::1", held_timeout_hours=0.5, state_dir=Path("/tmp/s"))
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env() == settings


def test_a_service_started_with_a_wrong_setting_says_so_in_one_line():
    env = {**os.environ, "BUS": "rabbitmq", "LOG_LEVEL": "loud"}
    started = subprocess.run([sys.executable, "-m", "services.intake"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 1 and "Traceback" not in started.stderr
    assert started.stderr == ("error: BUS='rabbitmq': input should be 'embedded' or 'kafka'; LOG_LEVEL='loud': input "
                              "should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' (README, Configuration)\n")
