"""Distributed mode end to end, with real components: the intake publishes to a real Kafka
broker (confluent-kafka, acks=all), a faust-streaming worker *process* consumes and writes
to ClickHouse (chDB, owned by that process), and the query service answers from the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.bootstrap import intake_app, query_app
from services.bus.admin import ensure_topics
from services.bus.topics import TOPICS
from services.clock import today_local
from services.config import REPO_ROOT, Settings
from services.domain.reference import Library, default_reference
from services.query.access import add_key
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, visit_answers
from tests.kafka.broker import free_port

pytestmark = pytest.mark.kafka


@dataclass
class Worker:
    process: subprocess.Popen
    web_port: int
    log_path: Path

    def processed(self) -> float:
        """Events folded so far, read from the worker's own /metrics."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.web_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return -1
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("processor_events_processed_total{")
                   and 'processor="daily_visits"' in line)

    def wait_processed(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"worker died:\n{self.log_path.read_text()[-4000:]}"
            if self.processed() >= count:
                return
            time.sleep(0.3)
        raise AssertionError(f"worker processed {self.processed()} of {count}:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def distributed_settings(tmp_path: Path, settings: Settings, kafka_bootstrap_servers: str) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix, group=settings.processor_group)
    return Settings.from_env(
        bus="kafka", kafka_bootstrap_servers=kafka_bootstrap_servers, kafka_topic_prefix=prefix,
        store_dsn=settings.store_dsn, state_dir=settings.state_dir, forms_dir=settings.forms_dir,
        faust_data_dir=tmp_path / "faust", faust_web_port=free_port(), processor_batch_ms=200)


@pytest.fixture
def worker(distributed_settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    s = distributed_settings
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "KAFKA_TOPIC_PREFIX":
           s.kafka_topic_prefix, "STORE_DSN": s.store_dsn, "FAUST_DATA_DIR": str(s.faust_data_dir),
           "FAUST_WEB_PORT": str(s.faust_web_port), "PROCESSOR_BATCH_MS": "200", "LOG_LEVEL": "INFO"}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.processors.worker"], cwd=REPO_ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    running = Worker(process, s.faust_web_port, log_path)
    try:
        yield running
    finally:
        running.stop()


def test_topics_are_created_once_with_the_declared_layout(kafka_bootstrap_servers: str):
    from confluent_kafka.admin import AdminClient

    prefix = f"t{uuid.uuid4().hex[:8]}."
    assert sorted(ensure_topics(kafka_bootstrap_servers, prefix)) == sorted(t.named(prefix) for t in TOPICS)
    assert ensure_topics(kafka_bootstrap_servers, prefix) == []  # idempotent
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap_servers}).list_topics(timeout=10)
    for topic in TOPICS:
        assert len(metadata.topics[topic.named(prefix)].partitions) == topic.partitions


def test_submission_flows_through_kafka_and_a_faust_worker(distributed_settings: Settings, worker: Worker):
    reference = default_reference()
    ha_giang: Library = next(lib for lib in reference.libraries.values() if lib.area("legacy").province_code == "02")
    lai_chau: Library = next(lib for lib in reference.libraries.values() if lib.area("legacy").province_code == "12")
    today = today_local()
    yesterday = today - timedelta(days=1)
    three_months_ago = (today.replace(day=1) - timedelta(days=80)).replace(day=10)

    with TestClient(intake_app(distributed_settings), headers=OPENROSA) as intake:
        xform = intake.get("/forms/visit_log.xml").content
        submissions = [
            fill_instance(xform, visit_answers(ha_giang, yesterday, total=40, loans=11), "uuid:d-1"),
            fill_instance(xform, visit_answers(ha_giang, yesterday, total=20, loans=4), "uuid:d-2"),
            fill_instance(xform, visit_answers(lai_chau, three_months_ago, total=64, loans=9), "uuid:d-3"),
        ]
        for xml in submissions:
            assert intake.post("/submission", files=multipart(xml)).status_code == 201
        resend = intake.post("/submission", files=multipart(submissions[0]))
        assert resend.status_code == 201 and "already received" in resend.text
        conflicting = fill_instance(xform, visit_answers(ha_giang, yesterday, total=7), "uuid:d-1")
        assert intake.post("/submission", files=multipart(conflicting)).status_code == 409

    worker.wait_processed(3)
    worker.stop()  # chDB: the process that writes owns the data directory; the query opens it after

    keys = distributed_settings.state_dir / "api-keys.json"
    key = add_key(keys, "e2e", ["read:all"])
    secured = distributed_settings.model_copy(update={"api_keys_file": str(keys)})
    with TestClient(query_app(secured), headers={"Authorization": f"Bearer {key}"}) as query:  # closes the store

        def month(lib: Library, day, scheme="legacy") -> list[dict]:
            response = query.get("/v1/visits", params={
                "scheme": scheme, "province": lib.area(scheme).province_code,
                "start": day.replace(day=1).isoformat(), "end": day.isoformat(), "granularity": "month"})
            assert response.status_code == 200, response.text
            return response.json()["series"]

        [hg] = month(ha_giang, yesterday)
        assert (hg["visits_total"], hg["loans"], hg["reports"]) == (60, 15, 2)
        [lc] = month(lai_chau, three_months_ago)
        assert lc["period"] == three_months_ago.strftime("%Y-%m") and lc["visits_total"] == 64
        assert month(lai_chau, today) == []  # the late one is not counted in this month
        [hg_2025] = month(ha_giang, yesterday, scheme="2025")
        assert hg_2025["visits_total"] == 60
