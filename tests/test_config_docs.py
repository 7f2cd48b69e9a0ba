"""The README's configuration table is the one generated from services/config.py."""

from __future__ import annotations

import re

import pytest

from services.config import REPO_ROOT, Settings
from services.tools.config_table import markdown_table

pytestmark = pytest.mark.unit  # make check: no broker, browser, ClickHouse or Java


def test_readme_table_matches_the_settings():
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    block = re.search(r"<!-- config-table:start -->\n(.*?)\n<!-- config-table:end -->", readme, re.S)
    assert block, "README.md lost its configuration table markers"
    assert block.group(1) == markdown_table(), "run: python -m services.tools.config_table"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("STORE_DSN", "http://clickhouse:8123/default")
    settings = Settings.from_env()
    assert settings.port == 9100 and settings.store_dsn == "http://clickhouse:8123/default"


def test_an_unknown_bus_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BUS", "rabbitmq")
    with pytest.raises(ValueError, match="BUS must be"):
        Settings.from_env()
