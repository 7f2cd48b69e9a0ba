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
from pathlib import Path

import pytest
import yaml

from services.config import REPO_ROOT, Settings, env_var

COMPOSE = REPO_ROOT / "docker-compose.yml"
CADDYFILE = REPO_ROOT / "deploy" / "caddy" / "Caddyfile"
APP_SERVICES = {"topics", "intake", "worker", "query", "central-pull"}
# Who may publish host ports: Caddy (80, 443) for phones and readers; Prometheus and Grafana for operators.
PUBLISHING = {"caddy", "prometheus", "grafana"}
SCALED = ("intake", "query")  # replicas behind Caddy: nothing of their own


def compose_env(tmp_path: Path) -> Path:
    """An .env with every variable .env.example names, filled in, as an operator would."""
    env = tmp_path / ".env"
    env.write_text("CLICKHOUSE_USER=u\nCLICKHOUSE_PASSWORD=p\nGRAFANA_ADMIN_PASSWORD=g\nDIGEST_NONCE_SECRET=s\n"
                   "POSTGRES_PASSWORD=pg\nSITE_ADDRESS=localhost\n"
                   "ACCOUNTS_FILE_HOST=./deploy/accounts.json\nAPI_KEYS_FILE_HOST=./deploy/api_keys.json\n")
    return env


def needs(binary: str, why: str) -> str:
    found = shutil.which(binary)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} missing: .ci/run installs it ({why})")
        pytest.skip(f"{binary} is not installed here (CI installs it: {why})")
    return found


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


def test_the_ports_caddy_and_prometheus_reach_are_the_ports_the_services_listen_on(compose: dict):
    services = compose["services"]
    assert services["intake"]["environment"]["PORT"] == "8000"
    assert services["query"]["environment"]["QUERY_PORT"] == "8001"
    assert services["worker"]["environment"]["FAUST_WEB_PORT"] == "6066"
    caddyfile = CADDYFILE.read_text("utf-8")
    # Caddy's defaults (what compose runs): every replica Docker's DNS knows, on the service's port.
    assert "{$INTAKE_UPSTREAMS:dynamic a intake 8000}" in caddyfile
    assert "{$QUERY_UPSTREAMS:dynamic a query 8001}" in caddyfile
    scrape = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text("utf-8"))
    targets = {job["job_name"]: job for job in scrape["scrape_configs"]}
    for job, port in (("intake", 8000), ("query", 8001), ("worker", 6066)):
        # Each replica scraped on its own (a service name would reach one replica at random).
        assert targets[job]["dns_sd_configs"] == [{"names": [job], "type": "A", "port": port}], job


def test_only_caddy_faces_phones_and_readers(compose: dict):
    services = compose["services"]
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == PUBLISHING, publishing
    assert services["caddy"]["ports"] == ["80:80", "443:443", "443:443/udp"]
    assert services["caddy"]["image"].startswith("caddy:2.6")  # the Caddy the tests run
    assert services["caddy"]["command"] == ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter",
                                            "caddyfile"]
    assert "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]


def test_intake_and_query_replicas_keep_nothing_of_their_own(compose: dict):
    """`docker compose up --scale intake=3` works: no fixed name, no host port, no named volume."""
    named = set(compose["volumes"])
    for name in SCALED:
        service = compose["services"][name]
        assert "container_name" not in service and "ports" not in service, name
        for volume in service.get("volumes", []):
            source, target, mode = volume.rsplit(":", 2)
            # Configuration only, read-only: the same file for every replica (and the query replicas read
            # central-pull's state, read-only, for GET /v1/central-pull).
            assert mode == "ro", (name, volume)
            assert (source not in named and target.startswith("/config/")) or (
                name == "query" and volume == CENTRAL_STATE + ":ro"), (name, volume)
    intake = compose["services"]["intake"]
    assert intake["environment"]["LEDGER_DSN"].startswith("postgresql://")
    assert "@postgres:5432/" in intake["environment"]["LEDGER_DSN"]
    assert intake["depends_on"]["postgres"] == {"condition": "service_healthy"}


CENTRAL_STATE = "central-state:/data/state/central"


def test_central_pull_writes_through_the_intakes_path_behind_its_own_profile(compose: dict):
    """`docker compose --profile central up -d` adds the pull: Kafka and the intake's PostgreSQL ledger (so a
    submission phones also sent to the intake is a duplicate), its pyodk config mounted read-only, its cursors
    and state in a volume the query replicas read for GET /v1/central-pull."""
    services = compose["services"]
    pull = services["central-pull"]
    assert pull["profiles"] == ["central"] and all("profiles" not in services[name] for name in APP_SERVICES - {
        "central-pull"})
    command = pull["command"]
    assert command[:3] == ["python", "-m", "services.intake.central"] and "--once" not in command
    metrics_port = int(command[command.index("--metrics-port") + 1])
    env = pull["environment"]
    assert env["BUS"] == "kafka" and env["KAFKA_BOOTSTRAP_SERVERS"] == services["intake"]["environment"][
        "KAFKA_BOOTSTRAP_SERVERS"]
    assert env["LEDGER_DSN"] == services["intake"]["environment"]["LEDGER_DSN"]
    assert any(v.endswith(f"}}:{env['CENTRAL_CONFIG']}:ro") for v in pull["volumes"])
    assert env["STATE_DIR"] == services["query"]["environment"]["STATE_DIR"] == "/data/state"
    assert CENTRAL_STATE in pull["volumes"] and CENTRAL_STATE + ":ro" in services["query"]["volumes"]
    assert CENTRAL_STATE.split(":")[0] in compose["volumes"]
    assert "--scale" not in str(pull) and "deploy" not in pull  # one pull: each form's cursor has one writer
    assert str(metrics_port) in pull["healthcheck"]["test"][-1]
    scrape = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text("utf-8"))
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "central-pull")
    assert job["dns_sd_configs"] == [{"names": ["central-pull"], "type": "A", "port": metrics_port}]
    # The image has the volume's mount point, owned by the app's user: a fresh volume takes both.
    assert "mkdir -p /data/state/central && chown -R app /data" in (REPO_ROOT / "Dockerfile").read_text("utf-8")


def test_postgres_keeps_the_ledger_in_a_volume_with_no_default_password(compose: dict):
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"][1]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:?set in .env}"
    user, db = postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]
    assert compose["services"]["intake"]["environment"]["LEDGER_DSN"] == (
        f"postgresql://{user}:${{POSTGRES_PASSWORD:?set in .env}}@postgres:5432/{db}")


def test_services_believe_forwarded_headers_from_caddy_only(compose: dict):
    """TRUSTED_PROXIES is Caddy's fixed address: in the compose network's subnet, outside the range Docker
    hands out to other containers."""
    import ipaddress

    (pool,) = compose["networks"]["default"]["ipam"]["config"]
    subnet, handed_out = ipaddress.ip_network(pool["subnet"]), ipaddress.ip_network(pool["ip_range"])
    caddy = ipaddress.ip_address(compose["services"]["caddy"]["networks"]["default"]["ipv4_address"])
    assert caddy in subnet and caddy not in handed_out
    for name in SCALED:
        assert compose["services"][name]["environment"]["TRUSTED_PROXIES"] == str(caddy), name


def test_no_secret_has_a_default_and_env_example_lists_every_variable(compose: dict):
    text = COMPOSE.read_text("utf-8")
    for secret in ("CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "DIGEST_NONCE_SECRET", "POSTGRES_PASSWORD"):
        assert f"${{{secret}:?" in text and f"${{{secret}:-" not in text
    example = (REPO_ROOT / ".env.example").read_text("utf-8")
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert used <= {line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}


def test_stateful_services_keep_their_data_in_volumes(compose: dict):
    for name, path in (("kafka", "/var/lib/kafka/data"), ("clickhouse", "/var/lib/clickhouse"),
                       ("postgres", "/var/lib/postgresql/data"), ("prometheus", "/prometheus"),
                       ("grafana", "/var/lib/grafana"), ("caddy", "/data")):
        volumes = compose["services"][name]["volumes"]
        assert any(v.split(":")[0] in compose["volumes"] and v.split(":")[1] == path for v in volumes), name


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path):
    docker_compose = needs("docker-compose", "it checks docker-compose.yml without an engine")
    for profile in ([], ["--profile", "central"]):
        result = subprocess.run([docker_compose, "--env-file", str(compose_env(tmp_path)), "-f", str(COMPOSE),
                                 *profile, "config", "-q"], capture_output=True, text=True, cwd=REPO_ROOT)
        assert result.returncode == 0, result.stderr


def test_caddyfile_parses_with_the_compose_environment_and_is_formatted(compose: dict, tmp_path: Path):
    caddy = needs("caddy", "tests/caddy.py runs deploy/caddy/Caddyfile")
    text = CADDYFILE.read_text("utf-8")
    placeholders = re.findall(r"\{\$([A-Z_]+)(:?)", text)
    assert placeholders and all(default for _, default in placeholders), "every placeholder has compose's default"
    environment = dict(compose["services"]["caddy"]["environment"])
    environment["SITE_ADDRESS"] = "localhost"  # ${SITE_ADDRESS:-localhost}, as .env.example has it
    assert set(environment) <= {name for name, _ in placeholders}, "compose sets only what the Caddyfile reads"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), **environment}
    validate = subprocess.run([caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                              capture_output=True, text=True, env=env)
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert "Valid configuration" in validate.stdout + validate.stderr
    formatted = subprocess.run([caddy, "fmt", str(CADDYFILE)], capture_output=True, text=True, env=env)
    assert formatted.returncode == 0 and formatted.stdout == text, "run `caddy fmt --overwrite deploy/caddy/Caddyfile`"


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
