"""Approval in distributed mode, on the real Kafka broker: a province-quarter of 400 libraries' daily
logs (about 36,000 chains) approved through the Kafka-mode query app, its approval message (the
snapshot, packed: about 26 B a chain here) larger than Kafka's default 1 MB limit, archived by the
faust worker's approvals processor, and the approved figure read back (``schemas/AGGREGATES.md``, "Approval")."""

from __future__ import annotations

import hashlib
import random
import time as clock
import uuid
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient

from services.bootstrap import query_app
from services.bus.admin import ensure_topics
from services.bus.kafka import KafkaPublisher
from services.bus.topics import APPROVALS
from services.clock import today_local
from services.config import TIMEZONE, Settings
from services.domain.forms.visit_log import VisitCounts, VisitLogged
from services.domain.reference import default_reference
from services.ops.broker import topic_states
from services.query.access import add_key
from tests.workers import WorkerProcess, wait_until_caught_up, worker_settings

pytestmark = pytest.mark.kafka

LIBRARIES, PROVINCE = 400, "08"  # 2025 Tuyên Quang (legacy Hà Giang and Tuyên Quang)
KAFKA_DEFAULT_LIMIT = 1_000_000


def _last_quarter() -> tuple[str, date, date]:
    today = today_local()
    first_this = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    end = first_this - timedelta(days=1)
    start = date(end.year, end.month - 2, 1)
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}", start, end


def _events(start: date, end: date) -> list[VisitLogged]:
    """One visit log a day of each of ``LIBRARIES`` libraries of the province (the reference's own
    libraries, each standing for many: the store counts chains, whatever their library)."""
    reference = default_reference()
    libraries = [lib for lib in sorted(reference.libraries.values(), key=lambda lib: lib.library_id)
                 if lib.area("2025").province_code == PROVINCE]
    rng = random.Random(2026)
    events, day = [], start
    while day <= end:
        for n in range(LIBRARIES):
            library = libraries[n % len(libraries)]
            total = rng.randrange(5, 120)
            counts = VisitCounts(visits_total=total, visits_children=total // 2, visits_adults=total - total // 2,
                                 visits_female=total // 2, visits_male=total - total // 2, visits_ethnic_minority=0,
                                 visits_learning=0, visits_information=0, visits_reading=total, visits_events=0,
                                 virtual_visits=0, loans=total // 3, renewals=0, new_registrations=0)
            instance = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            events.append(VisitLogged(
                event_id=instance, root_id=instance, form_id="visit_log", form_version="test", occurred_on=day,
                submitted_at=datetime.combine(day, time(19, 30), TIMEZONE), library_id=library.library_id,
                areas=list(library.areas), submitter="test",
                source="openrosa", content_hash=hashlib.sha256(instance.encode()).hexdigest(), payload=counts))
        day += timedelta(days=1)
    return events


def _approval_message_sizes(settings: Settings) -> list[int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"t-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(APPROVALS.named(settings.kafka_topic_prefix), 0, 0)])
        sizes = []
        while (message := consumer.poll(10)) is not None and not message.error():
            sizes.append(len(message.value()))
        return sizes
    finally:
        consumer.close()


def _wait_folded(worker: WorkerProcess, processor: str, count: int, timeout_s: float = 300) -> None:
    """Until the worker's ``processor`` has folded ``count`` events, then until its group has caught up."""
    deadline = clock.monotonic() + timeout_s
    while worker.metric("processor_events_processed_total", f'processor="{processor}"') < count:
        assert worker.alive() and clock.monotonic() < deadline, worker.log_tail()
        clock.sleep(0.5)
    wait_until_caught_up(worker)


def test_a_province_quarter_larger_than_a_kafka_message_is_approved_and_read_back(
        tmp_path: Path, settings: Settings, kafka_bootstrap_servers: str):
    period, start, end = _last_quarter()
    prefix = f"t{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix, group="processors")
    distributed = worker_settings(settings, tmp_path, bootstrap=kafka_bootstrap_servers, prefix=prefix,
                                  group="processors", name="w", store=settings.store_dsn)
    events = _events(start, end)
    publisher = KafkaPublisher(kafka_bootstrap_servers, prefix)
    try:
        for wait in [publisher.send(event) for event in events]:
            wait()
    finally:
        publisher.close()
    worker = WorkerProcess(distributed, tmp_path / "worker.log").start()
    _wait_folded(worker, "daily_visits", len(events))
    worker.stop()  # chDB: one process at a time owns the store

    keys = tmp_path / "keys.json"
    key = add_key(keys, "so-tuyen-quang", [f"read:province:2025:{PROVINCE}", f"approve:province:2025:{PROVINCE}"])
    query = distributed.model_copy(update={"api_keys_file": str(keys)})
    span = {"scheme": "2025", "province": PROVINCE, "start": start.isoformat(), "end": end.isoformat(),
            "granularity": "quarter"}
    with TestClient(query_app(query), headers={"Authorization": f"Bearer {key}"}) as api:
        [live] = api.get("/v1/visits", params=span).json()["series"]
        assert live["reports"] == len(events) and live["status"] == "provisional"
        approved = api.post("/v1/approvals", json={"scheme": "2025", "province": PROVINCE, "period": period})
        assert approved.status_code == 202, approved.text

    [size] = _approval_message_sizes(distributed)
    assert size > KAFKA_DEFAULT_LIMIT  # the snapshot, packed, still exceeds the default limit: the topic's is larger

    worker.start()
    _wait_folded(worker, "approvals", 1)
    worker.stop()
    with TestClient(query_app(query), headers={"Authorization": f"Bearer {key}"}) as api:
        [point] = api.get("/v1/visits", params=span).json()["series"]
        assert point["status"] == "approved"
        assert (point["reports"], point["visits_total"]) == (len(events), sum(e.payload.visits_total for e in events))
        [approval] = api.get("/v1/approvals").json()["approvals"]
        assert approval["approval_id"] == approved.json()["approval_id"] and approval["approved_by"] == "so-tuyen-quang"
        assert sum(month["reports"] for month in approval["figures"].values()) == len(events)


def test_an_approvals_topic_made_before_its_limit_is_reported_and_raised(kafka_bootstrap_servers: str,
                                                                         settings: Settings):
    """An upgrade: the approvals topic exists with the broker's default limit. ``thuvien topics`` says so,
    and creating the layout again (``--apply``) raises it."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix, topics=(replace(APPROVALS, max_message_bytes=None),))
    on_kafka = settings.model_copy(update={"bus": "kafka", "kafka_bootstrap_servers": kafka_bootstrap_servers,
                                           "kafka_topic_prefix": prefix})
    [before] = topic_states(on_kafka, (APPROVALS,))
    assert not before.matches and "max.message.bytes=" in before.problem()
    assert ensure_topics(kafka_bootstrap_servers, prefix, topics=(APPROVALS,)) == []  # nothing made, limit set
    [after] = topic_states(on_kafka, (APPROVALS,))
    assert after.matches and after.max_message_bytes == APPROVALS.max_message_bytes
