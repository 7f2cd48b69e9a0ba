"""docker-compose.yml refers only to things that exist: modules, settings, ports, files.

No Docker engine runs here, so the file is checked statically; `docker-compose config`
(Debian's docker-compose, which needs no engine) checks its syntax where installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess

import pytest
import yaml

from services.config import REPO_ROOT, SETTINGS

COMPOSE = REPO_ROOT / "docker-compose.yml"
APP_SERVICES = {"topics", "intake", "worker", "query"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def test_every_app_service_runs_a_module_that_exists(compose: dict):
    services = compose["services"]
    assert set(services) >= APP_SERVICES
    for name in APP_SERVICES:
        command = services[name]["command"]
        assert command[:2] == ["python", "-m"], name
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: no module {command[2]}"


def test_every_environment_variable_is_a_documented_setting(compose: dict):
    known = {s.env for s in SETTINGS}
    for name in APP_SERVICES:
        env = compose["services"][name].get("environment", {})
        assert set(env) <= known, f"{name}: unknown settings {set(env) - known}"


def test_published_ports_are_the_ports_the_services_listen_on(compose: dict):
    services = compose["services"]
    assert services["intake"]["environment"]["PORT"] == "8000"
    assert any(p.endswith(":8000") for p in services["intake"]["ports"])
    assert services["query"]["environment"]["QUERY_PORT"] == "8001"
    assert any(p.endswith(":8001") for p in services["query"]["ports"])
    assert services["worker"]["environment"]["FAUST_WEB_PORT"] == "6066"
    scrape = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text("utf-8"))
    targets = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert targets["intake"]["static_configs"][0]["targets"] == ["intake:8000"]
    assert targets["query"]["static_configs"][0]["targets"] == ["query:8001"]
    assert targets["worker"]["dns_sd_configs"][0]["port"] == 6066


def test_no_secret_has_a_default_and_env_example_lists_every_variable(compose: dict):
    text = COMPOSE.read_text("utf-8")
    for secret in ("CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "DIGEST_NONCE_SECRET"):
        assert f"${{{secret}:?" in text and f"${{{secret}:-" not in text
    example = (REPO_ROOT / ".env.example").read_text("utf-8")
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert used <= {line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}


def test_stateful_services_keep_their_data_in_volumes(compose: dict):
    for name in ("kafka", "clickhouse", "intake", "prometheus", "grafana"):
        assert compose["services"][name].get("volumes"), name


def test_compose_file_is_valid_for_docker_compose(tmp_path):
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose missing: .ci/run installs Debian's docker-compose")
        pytest.skip("Debian's docker-compose is not installed here (CI installs it)")
    env = tmp_path / ".env"
    env.write_text("CLICKHOUSE_USER=u\nCLICKHOUSE_PASSWORD=p\nGRAFANA_ADMIN_PASSWORD=g\nDIGEST_NONCE_SECRET=s\n"
                   "ACCOUNTS_FILE_HOST=./deploy/accounts.json\n")
    result = subprocess.run(["docker-compose", "--env-file", str(env), "-f", str(COMPOSE), "config", "-q"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
