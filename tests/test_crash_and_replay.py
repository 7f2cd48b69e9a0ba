"""Exact under crashes and replays, with a real broker: a faust worker is SIGKILLed at random
points while a few thousand submissions flow, restarted each time, and the final answers
equal the oracle's; reprocessing the whole log from offset zero into an empty store (a new
consumer group) gives identical answers."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import intake_app
from services.bus.admin import ensure_topics
from services.bus.topics import TOPICS
from services.clock import today_local
from services.config import Settings
from services.domain.reference import default_reference
from services.store.aggregates import Aggregates
from services.store.clickhouse import Store
from services.tools.submissions import fill_instance, multipart
from tests.compare import compare
from tests.conftest import OPENROSA, visit_answers
from tests.oracle import Oracle
from tests.published import from_kafka
from tests.workers import WorkerProcess, wait_until_caught_up, worker_settings

pytestmark = pytest.mark.kafka


def _settings(base: Settings, tmp_path: Path, bootstrap: str, prefix: str, group: str, store: str) -> Settings:
    return worker_settings(base, tmp_path, bootstrap=bootstrap, prefix=prefix, group=group, name=group,
                           store=f"chdb://{tmp_path / store}")


def _submissions(xform: bytes, count: int, rng: random.Random) -> list[bytes]:
    libraries = sorted(default_reference().libraries.values(), key=lambda lib: lib.library_id)
    today = today_local()
    firsts, out = [], []
    for i in range(count):
        library = libraries[i % len(libraries)]
        day = today - timedelta(days=1 + rng.randrange(400))
        instance = f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        out.append(fill_instance(xform, visit_answers(library, day, total=rng.randrange(5, 200)), instance))
        firsts.append((library, day, instance))
    for library, day, instance in rng.sample(firsts, count // 20):  # edits of some of them
        edit = f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        out.append(fill_instance(xform, visit_answers(library, day, total=rng.randrange(5, 200)), edit,
                                 deprecated_id=instance))
    return out


def _assert_store_equals_oracle(dsn: str, oracle: Oracle) -> None:
    store = Store(dsn)  # the worker that owned it has stopped
    try:
        compare(Aggregates(store, default_reference()), oracle)
        archived = store.select("SELECT count() AS n FROM events FINAL")[0]["n"]
    finally:
        store.close()
    assert archived == len(oracle.events)


def _stream_with_kills(worker: WorkerProcess, first: Settings, rng: random.Random, topics: list[str]) -> None:
    """Post the submissions from a thread; SIGKILL and restart the worker at three random points."""

    with TestClient(intake_app(first), headers=OPENROSA) as intake:
        xform = intake.get("/forms/visit_log.xml").content
        submissions = _submissions(xform, 2000, rng)
        posted = 0
        failures: list[str] = []

        def post_all() -> None:
            nonlocal posted
            for xml in submissions:
                response = intake.post("/submission", files=multipart(xml))
                if response.status_code != 201:
                    failures.append(response.text)
                posted += 1

        sender = threading.Thread(target=post_all)
        sender.start()
        kill_points = sorted(rng.sample(range(200, len(submissions) - 100), 3))
        for point in kill_points:
            while posted < point and sender.is_alive():
                threading.Event().wait(0.05)
            worker.kill()  # mid-batch, no commit, no flush
            worker.start()
        sender.join()
        assert failures == []

    wait_until_caught_up(worker)



def test_sigkilled_worker_and_replay_give_the_oracle_answers(settings: Settings, tmp_path: Path,
                                                              kafka_bootstrap_servers: str):
    rng = random.Random(20261125)
    prefix = f"crash{uuid.uuid4().hex[:6]}."
    ensure_topics(kafka_bootstrap_servers, prefix, group="processors")
    ensure_topics(kafka_bootstrap_servers, prefix, group="replay")
    first = _settings(settings, tmp_path, kafka_bootstrap_servers, prefix, "processors", "store")
    topics = [t.named(prefix) for t in TOPICS]
    worker = WorkerProcess(first, tmp_path / "worker.log").start()
    try:
        _stream_with_kills(worker, first, rng, topics)
    finally:
        worker.stop()
    assert worker.starts >= 4  # at least three SIGKILLs

    oracle = Oracle(from_kafka(kafka_bootstrap_servers, prefix), default_reference())
    _assert_store_equals_oracle(first.store_dsn, oracle)

    # Replay: a new consumer group from offset zero into an empty store, same answers.
    replay = _settings(settings, tmp_path, kafka_bootstrap_servers, prefix, "replay", "replayed-store")
    replayer = WorkerProcess(replay, tmp_path / "replay.log").start()
    try:
        wait_until_caught_up(replayer)
    finally:
        replayer.stop()
    _assert_store_equals_oracle(replay.store_dsn, oracle)
