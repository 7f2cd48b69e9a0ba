"""Faults of the distributed mode, with a real broker and real chDB (issue 7): nothing accepted is lost,
nothing is counted twice.

- The broker stops while the intake receives submissions: what could not be made durable is answered
  503 with ``Retry-After`` (never 201), and once the broker is back and the phones resend, every
  accepted submission is in the store exactly once and the answers equal the oracle's.
- Workers join, are SIGKILLed and leave while submissions flow (1 → 2 → 1 workers of one consumer
  group, partitions moving between them): the answers equal the oracle's.
- The store cannot take inserts for a minute (its disk is full: a small tmpfs, filled): the worker
  retries, its failure counter and its lag show it, and once space is back it catches up to the
  oracle's answers.

After each: ``tests/bookkeeping.py`` — the 201s are exactly the archived events plus dead letters.
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import intake_app
from services.bus.admin import ensure_topics
from services.bus.topics import TOPICS, VISIT_EVENTS
from services.config import Settings
from services.domain.reference import default_reference
from services.ops.replay import processed_offsets
from services.store.aggregates import Aggregates
from services.store.clickhouse import Store
from tests.bookkeeping import assert_bookkeeping
from tests.compare import compare
from tests.conftest import OPENROSA
from tests.disk import fill, small_disk
from tests.kafka.broker import KafkaBroker
from tests.oracle import Oracle
from tests.published import from_kafka
from tests.senders import Senders, visit_streams
from tests.workers import WorkerProcess, consumer_lag, wait_until_caught_up, worker_settings

pytestmark = pytest.mark.kafka

BROKER_DOWN_S = 12.0  # how long the broker stays stopped (plus its restart)
PUBLISH_TIMEOUT_S = 3.0  # the intake's wait for Kafka's acknowledgement before answering 503
DISK_FULL_S = 60.0  # "the writer cannot insert for a minute"
GROUP = "processors"
VISIT_PARTITIONS = VISIT_EVENTS.partitions


# --------------------------------------------------------------------------- settings, workers, checks


def _settings(base: Settings, tmp_path: Path, bootstrap: str, prefix: str, name: str, store_dsn: str) -> Settings:
    """One worker's settings (its own web port, faust data dir, the store given), or the intake's."""
    return worker_settings(base, tmp_path, bootstrap=bootstrap, prefix=prefix, group=GROUP, name=name,
                           store=store_dsn, kafka_publish_timeout_s=PUBLISH_TIMEOUT_S)


def _topics(prefix: str) -> list[str]:
    return [t.named(prefix) for t in TOPICS]


def _assert_store_equals_oracle(dsn: str, bootstrap: str, prefix: str, accepted: dict[str, str]) -> None:
    """The store (its worker stopped) answers as the oracle does on what the intake published, and holds
    every accepted submission exactly once."""
    oracle = Oracle(from_kafka(bootstrap, prefix), default_reference())
    store = Store(dsn)
    try:
        compare(Aggregates(store, default_reference()), oracle)
        assert_bookkeeping(store, set(accepted), accepted)
    finally:
        store.close()


def _wait(condition, timeout_s: float, what: str, worker: WorkerProcess | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        if worker is not None:
            assert worker.alive(), f"worker died while waiting for {what}:\n{worker.log_tail()}"
        assert time.monotonic() < deadline, (
            f"no {what} within {timeout_s}s" + (f":\n{worker.log_tail()}" if worker else ""))
        time.sleep(0.2)


def _processing(worker: WorkerProcess, topic: str | None = None) -> bool:
    """Whether the worker (since its last start) has written something, from ``topic`` if given."""
    done = processed_offsets(worker.settings.faust_web_port)
    return any(topic is None or t == topic for t, _ in done)


# --------------------------------------------------------------------------- the broker stops


def test_broker_outage_answers_503_and_loses_nothing(settings: Settings, tmp_path: Path):
    """With the broker down, nothing is answered 201 unless it is durable in Kafka; the intake says
    503 + Retry-After in OpenRosa XML, recovers by itself when the broker is back, and after the
    resends every 201 is in the store exactly once with the oracle's answers."""
    rng = random.Random(20261207)
    broker = KafkaBroker().start()  # its own: stopping it must not disturb the other tests' broker
    try:
        bootstrap, prefix = broker.bootstrap_servers, f"outage{uuid.uuid4().hex[:6]}."
        ensure_topics(bootstrap, prefix, group=GROUP)
        intake_settings = _settings(settings, tmp_path, bootstrap, prefix, "intake", f"chdb://{tmp_path / 'unused'}")
        with TestClient(intake_app(intake_settings), headers=OPENROSA) as intake:
            xform = intake.get("/forms/visit_log.xml").content
            senders = Senders(intake, visit_streams(xform, 500, rng, senders=4), rate=40.0).start()
            senders.wait_until(120)
            broker.stop(keep_data=True)
            stopped_at = time.monotonic()
            time.sleep(BROKER_DOWN_S)
            broker.start()
            senders.rate = None
            senders.join()

            statuses = {o.status for o in senders.outcomes}
            assert statuses <= {201, 503}, statuses
            refused = [o for o in senders.outcomes if o.status == 503]
            assert refused, "the broker was down for a while and nothing was answered 503"
            for outcome in refused:
                assert outcome.at > stopped_at, "503 while the broker was up"
                assert int(outcome.headers["Retry-After"]) > 0
                assert outcome.headers["X-OpenRosa-Version"] == "1.0"
                assert outcome.headers["Content-Type"].startswith("text/xml")
                assert '<OpenRosaResponse xmlns="http://openrosa.org/http/response">' in outcome.text
                assert 'nature="submit_error"' in outcome.text
            # Every 201 so far is durable in Kafka (edits held for an original that got 503 are durable
            # in the intake's ledger instead, and published when the original comes).
            held = {o.submission.instance_id for o in senders.outcomes
                    if o.status == 201 and "Edit received" in o.text}
            published = {event.event_id for _, event in from_kafka(bootstrap, prefix)}
            lost = set(senders.accepted()) - held - published
            assert not lost, f"{len(lost)} submissions answered 201 are not in Kafka: {sorted(lost)[:5]}"

            # Collect resends what got 503 until it is taken.
            resend = {o.submission.instance_id: o.submission for o in refused}
            for instance_id, submission in resend.items():
                deadline = time.monotonic() + 60
                while senders.post(submission).status != 201:
                    assert time.monotonic() < deadline, f"{instance_id} still refused 60s after the restart"
                    time.sleep(1)
            accepted = senders.accepted()
            assert set(accepted) == {s.instance_id for stream in senders.streams for s in stream}

        worker_settings = _settings(settings, tmp_path, bootstrap, prefix, "worker", f"chdb://{tmp_path / 'store'}")
        worker = WorkerProcess(worker_settings, tmp_path / "worker.log").start()
        try:
            wait_until_caught_up(worker)
        finally:
            worker.stop()
        _assert_store_equals_oracle(worker_settings.store_dsn, bootstrap, prefix, accepted)
    finally:
        broker.stop()


# --------------------------------------------------------------------------- workers come, die and go


def test_workers_join_die_and_leave_under_load(settings: Settings, tmp_path: Path, kafka_bootstrap_servers: str,
                                               clickhouse_server: str):
    """One consumer group, 12 partitions per event topic, one ClickHouse server: worker A alone, then B
    joins (1 → 2), A is SIGKILLed and restarted, B is SIGKILLed for good (2 → 1), A is SIGKILLed and
    restarted again, all while submissions flow; A catches up. The store equals the oracle's answers."""
    rng = random.Random(20261208)
    bootstrap, prefix = kafka_bootstrap_servers, f"rebal{uuid.uuid4().hex[:6]}."
    ensure_topics(bootstrap, prefix, group=GROUP)
    topics = _topics(prefix)
    visits = next(t for t in topics if t.endswith("events.visit_logged"))
    a_settings = _settings(settings, tmp_path, bootstrap, prefix, "a", clickhouse_server)
    b_settings = _settings(settings, tmp_path, bootstrap, prefix, "b", clickhouse_server)
    a = WorkerProcess(a_settings, tmp_path / "worker-a.log").start()
    b = WorkerProcess(b_settings, tmp_path / "worker-b.log")
    try:
        with TestClient(intake_app(a_settings), headers=OPENROSA) as intake:
            xform = intake.get("/forms/visit_log.xml").content
            senders = Senders(intake, visit_streams(xform, 1500, rng, senders=2), rate=15.0).start()
            _wait(lambda: _processing(a, visits), 120, "processing by worker A", a)
            b.start()  # 1 → 2: a rebalance hands B some of A's partitions, with their table state
            _wait(lambda: _processing(b, visits), 120, "processing by worker B", b)
            senders.wait_until(senders.posted + 60)
            a.kill()  # mid-batch; B takes A's partitions after the session timeout, A takes some back
            a.start()
            _wait(lambda: _processing(a, visits), 120, "processing by worker A after its restart", a)
            senders.wait_until(senders.posted + 60)
            b.kill()  # 2 → 1 for good
            _wait(lambda: len([tp for tp in processed_offsets(a.settings.faust_web_port) if tp[0] == visits])
                  == VISIT_PARTITIONS, 120, "worker A taking over B's partitions", a)
            senders.wait_until(senders.posted + 60)
            a.kill()
            a.start()
            assert senders.running(), "the stream ended before the workers' choreography did: more submissions"
            senders.rate = None
            senders.join()
            assert {o.status for o in senders.outcomes} == {201}
            accepted = senders.accepted()
        wait_until_caught_up(a)
    finally:
        a.stop()
        b.stop()
    assert a.starts == 3 and b.starts == 1

    assert "\"batch written\"" in b.log_path.read_text(errors="replace"), "worker B never wrote"
    _assert_store_equals_oracle(clickhouse_server, bootstrap, prefix, accepted)


# --------------------------------------------------------------------------- the store's disk is full


def _lag_gauge(worker: WorkerProcess) -> float:
    return worker.metric("processor_consumer_lag")


def test_store_disk_full_for_a_minute(settings: Settings, tmp_path: Path, kafka_bootstrap_servers: str):
    """The worker's chDB lives on a 64 MB tmpfs, filled while submissions flow: ClickHouse refuses the
    inserts (no space), the worker retries without moving its offsets, store_insert_failures_total and
    the lag show it; when space comes back it catches up, no loss, no double count."""
    rng = random.Random(20261209)
    bootstrap, prefix = kafka_bootstrap_servers, f"full{uuid.uuid4().hex[:6]}."
    ensure_topics(bootstrap, prefix, group=GROUP)
    topics = _topics(prefix)
    with small_disk(tmp_path / "disk", 64 * 1024 * 1024) as disk:
        worker_settings = _settings(settings, tmp_path, bootstrap, prefix, "worker", f"chdb://{disk / 'store'}")
        worker = WorkerProcess(worker_settings, tmp_path / "worker.log").start()
        filler = None
        try:
            with TestClient(intake_app(worker_settings), headers=OPENROSA) as intake:
                xform = intake.get("/forms/visit_log.xml").content
                senders = Senders(intake, visit_streams(xform, 1500, rng, senders=2), rate=12.0).start()
                _wait(lambda: _processing(worker), 120, "processing", worker)
                failures_before = worker.metric("store_insert_failures_total")
                filler = fill(disk)
                full_at = time.monotonic()
                _wait(lambda: worker.metric("store_insert_failures_total") > failures_before, DISK_FULL_S / 2,
                      "failed insert on the full disk", worker)
                _wait(lambda: consumer_lag(worker_settings, topics) > 0 and _lag_gauge(worker) > 0,
                      DISK_FULL_S - (time.monotonic() - full_at), "lag visible while the disk is full", worker)
                time.sleep(max(0.0, DISK_FULL_S - (time.monotonic() - full_at)))
                assert worker.alive(), worker.log_tail()
                failures_during = worker.metric("store_insert_failures_total") - failures_before
                assert failures_during >= 3, f"only {failures_during} failed inserts in {DISK_FULL_S}s"
                assert senders.running(), "the stream ended before the disk was freed: more submissions"
                filler.unlink()
                filler = None
                senders.rate = None
                senders.join()
                assert {o.status for o in senders.outcomes} == {201}
                accepted = senders.accepted()
            wait_until_caught_up(worker)
            assert _wait_for_gauge_zero(worker)
        finally:
            if filler is not None:
                filler.unlink()
            worker.stop()
        _assert_store_equals_oracle(worker_settings.store_dsn, bootstrap, prefix, accepted)


def _wait_for_gauge_zero(worker: WorkerProcess, timeout_s: float = 30) -> bool:
    """processor_consumer_lag (refreshed every 10 s) back to zero once the worker has caught up."""
    _wait(lambda: _lag_gauge(worker) == 0, timeout_s, "processor_consumer_lag back to 0", worker)
    return True
