"""``thuvien``, the operator's command line, run as operators run it (a child process, settings in the
environment) against a real broker and chDB: topics, lag, replay (distributed and embedded), doctor,
dead letters; and the operators' Grafana dashboard."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, distributed_intake, embedded_stack
from services.bus.admin import ensure_topics
from services.bus.topics import VISIT_EVENTS
from services.clock import today_local
from services.config import REPO_ROOT, TIMEZONE, Settings
from services.domain.reference import default_reference
from services.intake.accounts import ANONYMOUS
from services.intake.service import IntakeService
from services.ops import broker
from services.store.aggregates import Aggregates
from services.store.clickhouse import AreaFilter, Store
from services.tools.samples import all_sample_reports
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, visit_answers
from tests.kafka.broker import free_port
from tests.serving import serving
from tests.workers import WorkerProcess, wait_until_caught_up

TODAY = today_local()
AREAS = [AreaFilter("legacy"), AreaFilter("2025"), AreaFilter("legacy", "02"), AreaFilter("2025", "08")]


def thuvien(settings: Settings, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m services.ops ARGS`` (what the ``thuvien`` script runs) with ``settings`` as its environment."""
    return subprocess.run([sys.executable, "-m", "services.ops", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **settings.to_env(), **env})


def _kafka_settings(settings: Settings, tmp_path: Path, bootstrap: str, prefix: str) -> Settings:
    return settings.model_copy(update={
        "bus": "kafka", "kafka_bootstrap_servers": bootstrap, "kafka_topic_prefix": prefix,
        "faust_data_dir": tmp_path / "faust", "faust_web_port": free_port(), "processor_batch_ms": 200,
        "faust_session_timeout_s": 6.0})


def _prefix(name: str) -> str:
    return f"{name}{uuid.uuid4().hex[:6]}."


def _post_some(app: FastAPI, service: IntakeService, rng: random.Random) -> list[str]:
    """A slice of every form's samples, edits of a few visit logs and one retraction; the accepted ids."""
    client = TestClient(app, headers=OPENROSA)
    by_form: dict[str, list] = {}
    for form_id, report in all_sample_reports(default_reference(), TODAY - timedelta(days=1)):
        by_form.setdefault(form_id, []).append(report)
    xforms: dict[str, bytes] = {}
    accepted: list[tuple[str, str, dict[str, str]]] = []
    for form_id, reports in by_form.items():
        xform = xforms.setdefault(form_id, client.get(f"/forms/{form_id}.xml").content)
        for report in reports[:: max(1, len(reports) // 12)][:12]:
            response = client.post("/submission", files=multipart(fill_instance(xform, report.answers,
                                                                                report.instance_id)))
            assert response.status_code == 201, response.text
            accepted.append((form_id, report.instance_id, report.answers))
    visits = [(iid, answers) for form_id, iid, answers in accepted if form_id == "visit_log"]
    for instance_id, answers in rng.sample(visits, 3):  # edits: the same breakdowns, more visits in total
        more = int(answers["visits_total"]) + 7
        edited = answers | {"visits_total": str(more), "visits_reading": str(int(answers["visits_reading"]) + 7),
                            "visits_adults": str(more - int(answers["visits_children"])),
                            "visits_male": str(more - int(answers["visits_female"]))}
        xml = fill_instance(xforms["visit_log"], edited, f"uuid:{uuid.UUID(int=rng.getrandbits(128))}",
                            deprecated_id=instance_id)
        assert client.post("/submission", files=multipart(xml)).status_code == 201
    assert service.retract(visits[0][0], ANONYMOUS, "central_rejected", "rejected in review")
    return [iid for _, iid, _ in accepted]


def answers(dsn: str) -> dict[Any, Any]:
    """What the store answers: visits, sessions, donations, indicators per area; the archive; the dead letters."""
    store = Store(dsn)
    try:
        aggregates = Aggregates(store, default_reference())
        start = date(2024, 1, 1)
        out: dict[Any, Any] = {}
        for area in AREAS:
            for granularity in ("day", "month", "year"):
                out[("visits", area, granularity)] = aggregates.visits(area, start, TODAY, granularity)
            for name in ("mobile_sessions", "reading_promotion", "training", "donations"):
                out[(name, area)] = getattr(aggregates, name)(area, start, TODAY, "month")
            out[("growth", area)] = aggregates.growth(area, TODAY.year)
            out[("indicators", area)] = aggregates.indicators(area, TODAY.year, TODAY)
        out["events"] = [r["event_id"] for r in store.select("SELECT event_id FROM events FINAL ORDER BY event_id")]
        out["dead_letters"] = [(r["instance_id"], r["reason_code"]) for r in store.select(
            "SELECT instance_id, reason_code FROM dead_letters FINAL ORDER BY instance_id, reason_code")]
        out["rotation"] = store.select("SELECT * EXCEPT (version) FROM rotation_batches FINAL ORDER BY batch_id")
    finally:
        store.close()
    assert out["events"] and out[("visits", AREAS[0], "year")], "the store answers nothing: nothing to compare"
    return out


# ------------------------------------------------------------------------------------------ topics


@pytest.mark.kafka
def test_topics_apply_twice_is_idempotent_and_matches_the_declaration(settings: Settings, tmp_path: Path,
                                                                      kafka_bootstrap_servers: str):
    prefix = _prefix("ops")
    kafka = _kafka_settings(settings, tmp_path, kafka_bootstrap_servers, prefix)
    declared = {t.named(prefix): t for t in broker.declared_topics(kafka.processor_group)}

    listing = thuvien(kafka, "topics")
    assert listing.returncode == 0, listing.stderr
    for name, topic in declared.items():
        assert re.search(rf"^{re.escape(name)}\s+{topic.partitions}\s+1\s+\S.*\s{topic.cleanup_policy}$",
                         listing.stdout, re.M), (name, listing.stdout)

    first = thuvien(kafka, "topics", "--apply")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{len(declared)} created, 0 existing" in first.stdout
    second = thuvien(kafka, "topics", "--apply")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"0 created, {len(declared)} existing" in second.stdout
    assert second.stdout.count(" exists") == len(declared) and " created" not in second.stdout.replace(
        "0 created", "")

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    configs = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name) for name in declared])
    for resource, future in configs.items():
        topic, config = declared[resource.name], future.result(10)
        assert len(metadata.topics[resource.name].partitions) == topic.partitions, resource.name
        assert config["cleanup.policy"].value == topic.cleanup_policy, resource.name
        assert config["retention.ms"].value == str(topic.retention_ms), resource.name


@pytest.mark.kafka
def test_topics_apply_says_when_an_existing_topic_differs(settings: Settings, tmp_path: Path,
                                                          kafka_bootstrap_servers: str):
    prefix = _prefix("opsdiff")
    kafka = _kafka_settings(settings, tmp_path, kafka_bootstrap_servers, prefix)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap_servers})
    admin.create_topics([NewTopic(f"{prefix}deadletters", num_partitions=3, replication_factor=1)])[
        f"{prefix}deadletters"].result(10)
    result = thuvien(kafka, "topics", "--apply")
    assert result.returncode == 1
    assert re.search(rf"^{re.escape(prefix)}deadletters .* exists — DIFFERS: 3 partitions \(declared 1\)$",
                     result.stdout, re.M), result.stdout
    doctor = thuvien(kafka, "doctor", STORE_DSN=f"chdb://{tmp_path / 'no-store'}")
    assert doctor.returncode == 1
    assert re.search(rf"^FAIL  topics +{re.escape(prefix)}deadletters: 3 partitions \(declared 1\)", doctor.stdout,
                     re.M), doctor.stdout


# ------------------------------------------------------------------------------------------ lag


@pytest.mark.kafka
def test_lag_shows_a_produced_but_unconsumed_backlog(settings: Settings, tmp_path: Path,
                                                     kafka_bootstrap_servers: str):
    prefix = _prefix("opslag")
    kafka = _kafka_settings(settings, tmp_path, kafka_bootstrap_servers, prefix)
    ensure_topics(kafka_bootstrap_servers, prefix, group=kafka.processor_group)
    topic = VISIT_EVENTS.named(prefix)
    producer = Producer({"bootstrap.servers": kafka_bootstrap_servers})
    for i in range(25):
        producer.produce(topic, key=f"LIB-{i % 5}".encode(), value=b"{}", partition=i % 2)
    producer.flush(10)

    idle = thuvien(kafka, "lag")
    assert idle.returncode == 0, idle.stderr
    rows = _lag_rows(idle.stdout)
    assert rows[(topic, 0)] == ("-", 13, 13) and rows[(topic, 1)] == ("-", 12, 12), idle.stdout
    assert f"total lag: 25 ({topic} 25)" in idle.stdout

    broker.commit_offsets(kafka, kafka.processor_group, {(topic, 0): 10})  # the workers got through part of it
    partly = _lag_rows(thuvien(kafka, "lag").stdout)
    assert partly[(topic, 0)] == ("10", 13, 3) and partly[(topic, 1)] == ("-", 12, 12)

    other = thuvien(kafka, "lag", "--group", "someone-else")
    assert f"group {prefix}someone-else" in other.stdout and "total lag: 25" in other.stdout


def _lag_rows(text: str) -> dict[tuple[str, int], tuple[str, int, int]]:
    rows = {}
    for line in text.splitlines():
        found = re.match(r"^(\S+)\s+(\d+)\s+(-|\d+)\s+(\d+)\s+(\d+)$", line)
        if found:
            rows[(found[1], int(found[2]))] = (found[3], int(found[4]), int(found[5]))
    return rows


@pytest.mark.kafka
def test_starting_offsets_from_a_date_an_offset_or_the_beginning(settings: Settings, tmp_path: Path,
                                                                  kafka_bootstrap_servers: str):
    kafka = _kafka_settings(settings, tmp_path, kafka_bootstrap_servers, _prefix("opsdate"))
    topic = f"{kafka.kafka_topic_prefix}dated"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    days = [date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 2),
            date(2026, 3, 4)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap_servers})
    for day in days:  # 00:30 in Hà Nội is still the day before in UTC: the day is Asia/Ho_Chi_Minh's
        stamp = datetime(day.year, day.month, day.day, 0, 30, tzinfo=TIMEZONE)
        producer.produce(topic, value=b"{}", timestamp=int(stamp.timestamp() * 1000))
    producer.flush(10)

    def start(**kwargs: Any) -> int:
        return broker.starting_offsets(kafka, topics=[topic], **kwargs)[(topic, 0)]

    assert start() == 0
    assert [start(from_date=date(2026, 2, 28)), start(from_date=date(2026, 3, 1)), start(from_date=date(2026, 3, 2)),
            start(from_date=date(2026, 3, 3)), start(from_date=date(2026, 3, 5))] == [0, 0, 3, 5, 6]
    assert [start(from_offset=4), start(from_offset=100), start(from_offset=-3)] == [4, 6, 0]


# ------------------------------------------------------------------------------------------ replay


@pytest.mark.kafka
def test_distributed_replay_from_the_beginning_and_from_a_date_gives_the_original_answers(
        settings: Settings, tmp_path: Path, kafka_bootstrap_servers: str):
    prefix = _prefix("opsreplay")
    kafka = _kafka_settings(settings, tmp_path, kafka_bootstrap_servers, prefix)
    original = kafka.model_copy(update={"store_dsn": f"chdb://{tmp_path / 'original'}"})
    ensure_topics(kafka_bootstrap_servers, prefix, group=original.processor_group)
    worker = WorkerProcess(original, tmp_path / "worker.log").start()
    try:
        app, service = distributed_intake(original)
        with TestClient(app):
            accepted = _post_some(app, service, random.Random(6))
        wait_until_caught_up(worker)
    finally:
        worker.stop()
    expected = answers(original.store_dsn)
    assert set(accepted) <= set(expected["events"])

    for group, start in (("replay-all", ["--from-beginning"]),
                         ("replay-since", ["--from-date", (TODAY - timedelta(days=1)).isoformat()])):
        store = f"chdb://{tmp_path / group}"
        result = thuvien(kafka, "replay", "--to-store", store, "--group", group, *start,
                         "--worker-log", str(tmp_path / f"{group}.log"), "--timeout", "240")
        assert result.returncode == 0, result.stdout + result.stderr + _tail(tmp_path / f"{group}.log")
        assert f"offsets: committed for {prefix}{group} on " in result.stdout
        assert re.search(r"replay: \d+ events written, 0 remaining", result.stderr), result.stderr
        assert re.search(rf"^done: \d+ events replayed into {re.escape(store)} by group {group}; "
                         rf"{len(expected['events'])} events archived", result.stdout, re.M), result.stdout
        assert answers(store) == expected, group
        assert broker.committed_offsets(kafka, group), "the replay's group has its offsets"

    # The replay's worker logged JSON lines carrying each event's id from fold to write.
    lines = [json.loads(line) for line in (tmp_path / "replay-all.log").read_text().splitlines() if line.strip()]
    written = {i for line in lines if line["message"] == "batch written" for i in line["event_ids"]}
    assert set(accepted) <= written
    assert {line["event_id"] for line in lines if line["message"] == "event folded"} <= written

    # From an offset: the worker starts where the replay committed, not at the log start.
    ends = broker.watermarks(kafka)
    skipped = sum(min(2, high) for (topic, _), (_, high) in ends.items() if ".events." in f".{topic}")
    result = thuvien(kafka, "replay", "--to-store", f"chdb://{tmp_path / 'from-2'}", "--group", "replay-from-2",
                     "--from-offset", "2", "--timeout", "240")
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store(f"chdb://{tmp_path / 'from-2'}")
    try:
        archived = store.select("SELECT count() AS n FROM events FINAL")[0]["n"]
    finally:
        store.close()
    assert archived == len(expected["events"]) - skipped

    again = thuvien(kafka, "replay", "--to-store", f"chdb://{tmp_path / 'other'}", "--group", "replay-all",
                    "--from-beginning")
    assert again.returncode == 2 and "already has offsets" in again.stdout
    busy = thuvien(kafka, "replay", "--to-store", f"chdb://{tmp_path / 'replay-all'}", "--group", "fresh",
                   "--from-beginning")
    assert busy.returncode == 2 and "is not empty" in busy.stdout


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def test_embedded_replay_from_a_position_into_a_fresh_store(settings: Settings, tmp_path: Path):
    stack = embedded_stack(settings.model_copy(update={"held_timeout_hours": 168.0}))
    try:
        _post_some(stack.app, stack.service, random.Random(8))
    finally:
        stack.close()
    expected = answers(settings.store_dsn)
    log = settings.state_dir / "bus.sqlite"

    def replay(state: str, store: str, *start: str) -> subprocess.CompletedProcess:
        return thuvien(settings, "replay", "--embedded", "--log", str(log), "--state-dir", str(tmp_path / state),
                       "--to-store", store, *start)

    replayed = f"chdb://{tmp_path / 'replayed'}"
    result = replay("replay-state", replayed, "--from-beginning")
    assert result.returncode == 0, result.stdout + result.stderr
    # every processor of the pipeline, each to the end of its input (the batch stage's is made by the replay)
    assert re.search(r"replay: daily_visits\+event_archive (\d+)/\1, activities\+event_archive (\d+)/\2, "
                     r"rotation_chains\+event_archive (\d+)/\3, rotation [1-9]\d*, event_archive (\d+)/\4",
                     result.stderr), result.stderr
    assert "done: log" in result.stdout and "events archived" in result.stdout
    assert answers(replayed) == expected

    db = sqlite3.connect(log)
    positions = [row[0] for row in db.execute("SELECT position FROM log WHERE topic LIKE 'events.%' "
                                              "ORDER BY position")]
    db.close()
    middle = positions[len(positions) // 2]
    partial = f"chdb://{tmp_path / 'partial'}"
    result = replay("partial-state", partial, "--from-offset", str(middle))
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store(partial)
    try:
        assert store.select("SELECT count() AS n FROM events FINAL")[0]["n"] == len([p for p in positions
                                                                                      if p >= middle])
    finally:
        store.close()

    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    nothing = replay("s3", f"chdb://{tmp_path / 'none'}", "--from-date", tomorrow)
    assert nothing.returncode == 0 and "nothing to replay" in nothing.stdout
    today = replay("s4", f"chdb://{tmp_path / 'today'}", "--from-date", TODAY.isoformat())
    assert today.returncode == 0, today.stdout + today.stderr
    assert answers(f"chdb://{tmp_path / 'today'}") == expected  # everything was published today

    again = replay("replay-state", f"chdb://{tmp_path / 'elsewhere'}", "--from-beginning")
    assert again.returncode == 2 and "already holds processor state" in again.stdout
    no_group = thuvien(settings, "replay", "--to-store", replayed, "--from-beginning")
    assert no_group.returncode == 2 and "--group" in no_group.stderr


# ------------------------------------------------------------------------------------------ doctor


def _migrated(settings: Settings) -> Settings:
    embedded_stack(settings).close()  # what `make run` leaves: built forms, a migrated store
    return settings


def _doctor_lines(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        status = re.match(r"^(OK|WARN|FAIL)\s+(\S+)", line)
        if status:
            found.setdefault(status[2], []).append(line)
    return found


def test_doctor_passes_on_a_healthy_embedded_config(settings: Settings):
    result = thuvien(_migrated(settings), "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _doctor_lines(result)
    for name in ("settings", "forms", "reference", "state"):
        assert lines[name][0].startswith("OK"), lines[name]
    assert "7 forms built" in lines["forms"][0]
    assert lines["accounts"][0].startswith("WARN") and "ACCOUNTS_FILE is not set" in lines["accounts"][0]
    assert [line.split()[0] for line in lines["store"]] == ["WARN", "OK"]
    assert "one process owns a chDB directory" in lines["store"][0] and "stop the running stack" in lines["store"][0]
    assert "migrations applied" in lines["store"][1]
    assert "FAIL" not in result.stdout and result.stdout.rstrip().endswith("doctor: all checks passed")


def test_doctor_fails_with_a_clear_line_on_a_wrong_store_dsn(settings: Settings, tmp_path: Path):
    unreachable = thuvien(settings, "doctor", STORE_DSN="http://127.0.0.1:1/default")
    assert unreachable.returncode == 1
    (line,) = [line for line in unreachable.stdout.splitlines() if line.startswith("FAIL")]
    assert line.startswith("FAIL  store       cannot open STORE_DSN=http://127.0.0.1:1/default: ")
    assert "→ check STORE_DSN (host, port, database, user, password) and that ClickHouse is up" in line

    secret = thuvien(settings, "doctor", STORE_DSN="https://ops:s3cret@127.0.0.1:1/default")
    assert secret.returncode == 1 and "s3cret" not in secret.stdout and "ops:***@127.0.0.1:1" in secret.stdout
    nonsense = thuvien(settings, "doctor", STORE_DSN="postgres://db/x")
    assert nonsense.returncode == 1 and "neither chdb://PATH nor http(s)://" in nonsense.stdout
    broken = thuvien(settings, "doctor", LOG_FORMAT="xml")
    assert broken.returncode == 1 and broken.stdout.startswith("FAIL  settings    the environment does not parse")


def test_doctor_says_to_stop_the_stack_that_holds_the_chdb_directory(settings: Settings):
    stack = embedded_stack(settings)  # this process owns the store now
    try:
        result = thuvien(settings, "doctor")
    finally:
        stack.close()
    assert result.returncode == 1
    fail = [line for line in result.stdout.splitlines() if line.startswith("FAIL  store")]
    assert fail and "a running stack or worker holds this chDB directory" in fail[0], result.stdout


@pytest.mark.kafka
def test_doctor_fails_on_a_missing_topic_until_topics_are_applied(settings: Settings, tmp_path: Path,
                                                                  kafka_bootstrap_servers: str):
    prefix = _prefix("opsdoc")
    kafka = _kafka_settings(_migrated(settings), tmp_path, kafka_bootstrap_servers, prefix).model_copy(
        update={"api_keys_file": str(_keys_file(tmp_path))})
    missing = thuvien(kafka, "doctor")
    assert missing.returncode == 1
    lines = _doctor_lines(missing)
    assert lines["kafka"][0].startswith("OK") and kafka_bootstrap_servers in lines["kafka"][0]
    assert f"FAIL  topics      {prefix}events.visit_logged: missing  → create it: thuvien topics --apply" \
        in lines["topics"], lines["topics"]
    # every event topic, and the workers' own: internal topics and a changelog per state table
    assert len(lines["topics"]) == len(broker.declared_topics(kafka.processor_group))

    assert thuvien(kafka, "topics", "--apply").returncode == 0
    healthy = thuvien(kafka, "doctor")
    assert healthy.returncode == 0, healthy.stdout
    assert _doctor_lines(healthy)["topics"][0].startswith("OK")

    gone = thuvien(kafka, "doctor", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert gone.returncode == 1 and "FAIL  kafka       no broker answers at KAFKA_BOOTSTRAP_SERVERS=" in gone.stdout


def _keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"0" * 64: {"name": "ops", "scopes": ["admin"]}}), "utf-8")
    return path


# ------------------------------------------------------------------------------------------ dead letters


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[EmbeddedStack, str]]:
    """The embedded stack on a real port, as operators reach it. Held edits expire at once."""
    stack = embedded_stack(settings.model_copy(update={"held_timeout_hours": 0.0}))
    try:
        with serving(stack.app, settings) as base_url:
            yield stack, base_url
    finally:
        stack.close()


def test_deadletters_list_through_the_cli(served: tuple[EmbeddedStack, str], settings: Settings, library):
    stack, url = served
    client = TestClient(stack.app, headers=OPENROSA)
    xform = client.get("/forms/visit_log.xml").content
    orphan = fill_instance(xform, visit_answers(library, TODAY - timedelta(days=2)), "uuid:orphan-edit",
                           deprecated_id="uuid:never-came")
    assert client.post("/submission", files=multipart(orphan)).status_code == 201  # held, waiting
    assert stack.service.expire_held() == 1  # the original never came: a dead letter

    listed = thuvien(settings, "deadletters", "--query", url, "--intake", url, "list",
                     OPS_API_KEY=stack.demo_api_key or "")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    (row,) = listed.stdout.splitlines()
    assert "open" in row and "predecessor_missing" in row and "uuid:orphan-edit" in row and "visit_log" in row
    assert "1 dead letter(s) open" in listed.stderr

    refused = thuvien(settings, "deadletters", "--query", url, "list")
    assert refused.returncode == 1 and "pass --api-key or set OPS_API_KEY" in refused.stderr

    letter_id = row.split()[0]
    redriven = thuvien(settings, "deadletters", "--query", url, "--intake", url, "--api-key",
                       stack.demo_api_key or "", "redrive", letter_id)
    # Re-driven as sent: still an edit of a submission that never came, so held again (201).
    assert redriven.returncode == 0 and redriven.stdout.startswith(f"{letter_id}: 201"), redriven.stdout


# ------------------------------------------------------------------------------------------ dashboard

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "operators" / "operators.json"
GRAFANA = REPO_ROOT / "deploy" / "grafana"


def _targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_operators_dashboard_reads_the_provisioned_prometheus_and_is_where_the_provider_looks():
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())[
        "datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and not source["isDefault"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in panels} == {source["uid"]}
    assert {t["datasource"]["uid"] for p in panels for t in p["targets"]} == {source["uid"]}
    assert dashboard["uid"] == "thuvien-operators" and dashboard["timezone"] == "Asia/Ho_Chi_Minh"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    # Grafana's file provider walks subdirectories of its path: the one provider finds this dashboard.
    providers = [p for f in (GRAFANA / "provisioning" / "dashboards").glob("*.y*ml")
                 for p in yaml.safe_load(f.read_text("utf-8"))["providers"]]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text("utf-8"))
    mounts = [v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./")]
    read = {host for p in providers for host, inside in mounts if inside == p["options"]["path"]}
    assert any(DASHBOARD.is_relative_to((REPO_ROOT / host).resolve()) for host in read), (read, mounts)


def test_operators_dashboard_shows_what_operators_watch_with_exported_metrics():
    from prometheus_client.metrics import MetricWrapperBase

    from services import metrics

    exported = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            exported |= {metric._name, f"{metric._name}_total", f"{metric._name}_bucket"}
    exprs = " ".join(expr for _, expr in _targets())
    used = set(re.findall(r"\b([a-z_]+(?:_total|_bucket|_seconds|_lag))\b", exprs))
    assert used <= exported, used - exported
    for wanted in ("intake_submissions_accepted_total", "intake_submissions_rejected_total", "processor_consumer_lag",
                   "bus_publish_seconds_bucket", "store_write_seconds_bucket", "dead_letters_total",
                   "central_poll_lag_seconds"):
        assert wanted in used, wanted
    assert "sum by (reason)" in exprs and "sum by (form_id)" in exprs and "sum by (topic)" in exprs


def test_promtool_parses_every_dashboard_query(tmp_path: Path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool (Debian package prometheus) is not installed here; CI installs it")
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(_targets())]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "operators-dashboard", "rules": rules}]}), "utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
