"""docker-compose.yml refers only to things that exist: modules, settings, ports, files.

No Docker engine runs here, so the file is checked statically; `docker-compose config`
(Debian's docker-compose, which needs no engine) checks its syntax where installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from services.config import REPO_ROOT, Settings, env_var

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
    known = {env_var(name) for name in Settings.model_fields}
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
                   "ACCOUNTS_FILE_HOST=./deploy/accounts.json\nAPI_KEYS_FILE_HOST=./deploy/api_keys.json\n")
    result = subprocess.run(["docker-compose", "--env-file", str(env), "-f", str(COMPOSE), "config", "-q"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


# --- Grafana (deploy/grafana): a provisioned ClickHouse data source and dashboards ----------------------

GRAFANA = REPO_ROOT / "deploy" / "grafana"
_MACRO_TIMES = ("toDateTime(1704042000)", "toDateTime(1795453200)")  # 2024-01-01 and 2026-11-22, +07:00


def _dashboards() -> list[tuple[str, dict]]:
    """The ClickHouse dashboards (deploy/grafana/dashboards/*.json; subfolders hold Prometheus ones)."""
    files = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert files, "no dashboard in deploy/grafana/dashboards"
    return [(f.name, json.loads(f.read_text("utf-8"))) for f in files]


def _panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found += [panel, *panel.get("panels", [])]  # a collapsed row holds its panels
    return [p for p in found if p.get("type") != "row"]


def _queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, SQL) of every panel target and every query variable."""
    queries = [(f"panel {p['title']!r}", t["rawSql"]) for p in _panels(dashboard) for t in p.get("targets", [])]
    queries += [(f"variable {v['name']}", v["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


def _migration_relations() -> set[str]:
    text = "\n".join(p.read_text("utf-8") for p in sorted((REPO_ROOT / "schemas" / "clickhouse").glob("*.sql")))
    return set(re.findall(r"CREATE\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS\s+(\w+)", text, re.I))


def _relations_read(sql: str) -> set[str]:
    """Tables and views after FROM / JOIN, less the query's own WITH names (and subqueries)."""
    ctes = set(re.findall(r"(?:\bWITH|,)\s*(\w+)\s+AS\s*\(", sql, re.I))
    named = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", sql, re.I))
    return named - ctes


def _expand(sql: str, scheme: str, province: str) -> str:
    """The SQL as the ClickHouse plugin sends it: its macros and the dashboard's variables replaced."""
    start, end = _MACRO_TIMES
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= {start} AND \1 <= {end}", sql)
    sql = sql.replace("$__fromTime", start).replace("$__toTime", end)
    sql = sql.replace("${scheme}", scheme).replace("${province}", province)
    assert "$" not in sql, f"a macro or variable this test does not know: {sql}"
    return sql


def test_grafana_datasource_is_the_clickhouse_plugin_with_credentials_from_env_example(compose: dict):
    path = GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml"
    text = path.read_text("utf-8")
    (source,) = yaml.safe_load(text)["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["host"] == "clickhouse" and source["jsonData"]["protocol"] == "http"
    assert source["jsonData"]["port"] == 8123 and "8123" in compose["services"]["clickhouse"]["healthcheck"]["test"][1]
    assert source["jsonData"]["username"] == "${CLICKHOUSE_USER}"
    assert source["secureJsonData"]["password"] == "${CLICKHOUSE_PASSWORD}"
    settings = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", settings))
    example = (REPO_ROOT / ".env.example").read_text("utf-8")
    declared = {line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    assert used and used <= declared, f"not in .env.example: {used - declared}"
    grafana = compose["services"]["grafana"]
    assert used <= set(grafana["environment"]), "the grafana container must get every variable the file reads"
    assert grafana["environment"]["GF_INSTALL_PLUGINS"] == "grafana-clickhouse-datasource"
    uids = {d["uid"] for _, dashboard in _dashboards() for p in _panels(dashboard) for d in [p["datasource"]]}
    assert uids == {source["uid"]}, "every panel reads the provisioned data source"


def test_grafana_provisioning_is_mounted_where_grafana_reads_it(compose: dict):
    volumes = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "thuvien.yaml").read_text("utf-8"))[
        "providers"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in volumes


def test_every_dashboard_parses_and_its_sql_reads_only_what_the_migrations_create():
    relations = _migration_relations()
    assert {"visits_library_daily", "current_facts", "rotation_batches", "dead_letters", "events"} <= relations
    read: set[str] = set()
    for name, dashboard in _dashboards():
        assert dashboard["uid"] and dashboard["title"] and dashboard["timezone"] == "Asia/Ho_Chi_Minh", name
        ids = [p["id"] for p in dashboard["panels"]] + [p["id"] for row in dashboard["panels"]
                                                           for p in row.get("panels", [])]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for where, sql in _queries(dashboard):
            tables = _relations_read(sql)
            assert tables, f"{name} {where}: reads no table"
            assert tables <= relations, f"{name} {where}: no migration creates {tables - relations}"
            read |= tables
    # The views the managers were promised: visits, facts (indicator inputs), rotation, intake.
    assert {"visits_library_daily", "current_facts", "rotation_batches", "dead_letters", "events",
            "rejections"} <= read


def test_every_dashboard_query_runs_on_the_migrated_store(tmp_path):
    """Each panel's SQL, with the plugin's macros expanded, runs on chDB with the repo's migrations:
    names, columns, functions and joins are checked by ClickHouse itself, under both schemes."""
    from services.store.clickhouse import Store

    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        store.migrate()
        for name, dashboard in _dashboards():
            for where, sql in _queries(dashboard):
                for scheme, province in (("legacy", "all"), ("2025", "all"), ("legacy", "02")):
                    try:
                        store.select(_expand(sql, scheme, province))
                    except Exception as exc:  # noqa: BLE001 - the message names the panel
                        pytest.fail(f"{name} {where} ({scheme}, {province}): {exc}")
    finally:
        store.close()
