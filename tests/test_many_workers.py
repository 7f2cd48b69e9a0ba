"""Four faust workers over twelve partitions and one ClickHouse server: the answers are the oracle's,
however the partitions move between workers and whichever worker holds what.

While submissions flow, workers join (1 → 4), one is SIGKILLed and rejoins, one leaves, and one is
SIGKILLed for good; the submissions include rotation batches whose movements (each its own chain,
so in its own partition) are folded by the batch stage through the repartition topic, receipts
edited into another batch, visit logs edited to another library in another province and day, and
retractions. Once the survivors have caught up, the store (visits, every other aggregate, the
indicators and every rotation batch) equals ``tests/oracle.py``'s answers on what the intake
published, and every accepted submission is archived exactly once.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import distributed_intake
from services.bus.admin import ensure_topics
from services.bus.topics import EVENT_PARTITIONS, VISIT_EVENTS
from services.clock import today_local
from services.config import Settings
from services.domain.reference import Library, default_reference
from services.intake.accounts import ANONYMOUS
from services.ops.replay import processed_offsets
from services.store.aggregates import Aggregates
from services.store.clickhouse import Store
from services.tools.submissions import fill_instance
from tests.bookkeeping import assert_bookkeeping
from tests.compare import compare
from tests.conftest import OPENROSA, visit_answers
from tests.oracle import Oracle
from tests.published import from_kafka
from tests.senders import Senders, Submission, visit_streams
from tests.test_rotation import rotation_answers
from tests.workers import WorkerProcess, wait_until_caught_up, worker_settings

pytestmark = pytest.mark.kafka

GROUP = "processors"
WORKERS = 4
LIBRARIES = sorted(default_reference().libraries.values(), key=lambda lib: lib.library_id)


def _settings(base: Settings, tmp_path: Path, bootstrap: str, prefix: str, name: str, store: str) -> Settings:
    return worker_settings(base, tmp_path, bootstrap=bootstrap, prefix=prefix, group=GROUP, name=name, store=store)


def _new_id(rng: random.Random) -> str:
    return f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"


def _moved_reports(xform: bytes, rng: random.Random, count: int) -> list[Submission]:
    """Visit logs, each followed by an edit that moves it to a library of another province, another day."""
    out = []
    today = today_local()
    for _ in range(count):
        here = rng.choice(LIBRARIES)
        there = rng.choice([lib for lib in LIBRARIES
                            if lib.area("legacy").province_code != here.area("legacy").province_code])
        original = _new_id(rng)
        day = today - timedelta(days=1 + rng.randrange(300))
        out.append(Submission.of(fill_instance(xform, visit_answers(here, day, total=rng.randrange(5, 90)), original)))
        out.append(Submission.of(fill_instance(
            xform, visit_answers(there, day - timedelta(days=rng.randrange(1, 40)), total=rng.randrange(5, 90)),
            _new_id(rng), deprecated_id=original)))
    return out


def _rotation(xform: bytes, rng: random.Random, batches: int) -> tuple[list[Submission], list[str]]:
    """Batches dispatched to, received and returned by a library (three chains each, in three partitions
    as like as not), with some receipts edited into another batch held by the same library; the
    instanceIDs of the current receipts (retracted later, some of them)."""
    out, receipts = [], []
    today = today_local()

    def post(library: Library, batch_id: str, movement: str, day, instance: str, **extra) -> None:
        answers = rotation_answers(library, batch_id, movement, day, **extra)
        out.append(Submission.of(fill_instance(xform, answers, instance, deprecated_id=extra_deprecated.get(instance))))

    extra_deprecated: dict[str, str] = {}
    for n in range(batches):
        holder = LIBRARIES[(n * 7) % len(LIBRARIES)]
        province = holder.area("2025").province_code
        batch_id, other_batch = (f"LC-{province}-{today.year}-{number:03d}" for number in (500 + 2 * n, 501 + 2 * n))
        dispatched = today - timedelta(days=120 - n)
        post(holder, batch_id, "dispatched", dispatched, _new_id(rng))
        receipt = _new_id(rng)
        post(holder, batch_id, "received", dispatched + timedelta(days=3), receipt, lost=rng.randrange(3))
        if n % 4 == 0:  # the receipt belonged to another batch held by the same library: edited there
            post(holder, other_batch, "dispatched", dispatched, _new_id(rng))
            edit = _new_id(rng)
            extra_deprecated[edit] = receipt
            post(holder, other_batch, "received", dispatched + timedelta(days=4), edit, damaged=1)
            receipt = edit
        receipts.append(receipt)
        if n % 3 != 2:
            post(holder, batch_id, "returned", dispatched + timedelta(days=60), _new_id(rng), damaged=rng.randrange(3))
    return out, receipts


def _wait(condition, timeout_s: float, what: str, workers: list[WorkerProcess]) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.log_path.name}\n{w.log_tail(2000)}" for w in workers)
            raise AssertionError(f"no {what} within {timeout_s}s:\n{logs}")
        time.sleep(0.3)


def _visits_of(worker: WorkerProcess, topic: str) -> set[int]:
    return {p for t, p in processed_offsets(worker.settings.faust_web_port) if t == topic}


def test_four_workers_over_twelve_partitions_equal_the_oracle(settings: Settings, tmp_path: Path,
                                                               kafka_bootstrap_servers: str, clickhouse_server: str):
    assert EVENT_PARTITIONS == 12
    rng = random.Random(20261130)
    bootstrap, prefix = kafka_bootstrap_servers, f"many{uuid.uuid4().hex[:6]}."
    ensure_topics(bootstrap, prefix, group=GROUP)
    visits = VISIT_EVENTS.named(prefix)
    workers = [WorkerProcess(_settings(settings, tmp_path, bootstrap, prefix, f"w{i}", clickhouse_server),
                             tmp_path / f"worker-{i}.log") for i in range(WORKERS)]
    app, service = distributed_intake(_settings(settings, tmp_path, bootstrap, prefix, "intake", clickhouse_server))
    try:
        with TestClient(app, headers=OPENROSA) as intake:
            visit_xform = intake.get("/forms/visit_log.xml").content
            rotation_xform = intake.get("/forms/rotation_movement.xml").content
            lanes = visit_streams(visit_xform, 500, rng, senders=2)
            rotation, receipts = _rotation(rotation_xform, rng, 24)
            lanes.append(_moved_reports(visit_xform, rng, 40) + rotation)
            # Slowly while the workers join (a join takes as long as the machine's load makes it), so
            # the stream outlasts the joins however long they take; at full rate for the choreography.
            senders = Senders(intake, lanes, rate=2.0).start()

            workers[0].start()
            _wait(lambda: _visits_of(workers[0], visits), 120, "processing by the first worker", workers)
            for worker in workers[1:]:  # 1 → 4: each join moves partitions, and their state, to the newcomer
                worker.start()
            _wait(lambda: all(_visits_of(w, visits) for w in workers), 180, "processing by all four workers",
                  workers)
            senders.rate = 16.0
            _wait(lambda: {p for w in workers for p in _visits_of(w, visits)} == set(range(EVENT_PARTITIONS)), 120,
                  "processing of every partition", workers)
            senders.wait_until(senders.posted + 60)
            workers[1].kill()  # mid-batch: no commit, no flush; it rejoins
            workers[1].start()
            senders.wait_until(senders.posted + 60)
            workers[2].stop()  # leaves: its partitions go to the others
            senders.wait_until(senders.posted + 60)
            workers[0].kill()  # gone for good
            assert senders.running(), "the stream ended before the workers' choreography did: more submissions"
            senders.rate = None
            senders.join()
            assert {o.status for o in senders.outcomes} == {201}, {o.status for o in senders.outcomes}
            accepted = senders.accepted()
            # Central's review rejects some visit logs and some receipts (moved ones included).
            for instance_id in rng.sample(sorted(accepted), 25) + receipts[::5]:
                service.retract(instance_id, ANONYMOUS, "central_rejected", "rejected in review")
        wait_until_caught_up(workers[1], 240, others=(workers[3],))
    finally:
        for worker in workers:
            worker.stop()
    assert [w.starts for w in workers] == [1, 2, 1, 1]

    oracle = Oracle(from_kafka(bootstrap, prefix), default_reference())
    store = Store(clickhouse_server)
    try:
        assert store.select("SELECT count() AS n FROM rotation_batches FINAL")[0]["n"] >= 24
        compare(Aggregates(store, default_reference()), oracle)
        assert_bookkeeping(store, set(accepted), accepted)
    finally:
        store.close()
