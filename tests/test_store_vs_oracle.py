"""Every aggregate and indicator the store answers equals the oracle's, computed apart from the
processors on exactly what the intake published: all forms' samples, edits, retractions, late
and shuffled arrivals, in embedded mode; then a replay of the whole log into an empty store."""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, distributed_intake, embedded_stack
from services.bus.admin import ensure_topics
from services.config import Settings
from services.domain.reference import default_reference
from services.intake.accounts import ANONYMOUS
from services.intake.service import IntakeService
from services.store.aggregates import Aggregates
from services.store.clickhouse import Store
from services.tools.samples import all_sample_reports
from services.tools.submissions import fill_instance, multipart
from tests.compare import UNTIL, compare
from tests.conftest import OPENROSA
from tests.kafka.broker import free_port
from tests.oracle import Oracle
from tests.published import from_embedded_log, from_kafka
from tests.workers import WorkerProcess, wait_until_caught_up


def _post_all(app, service: IntakeService, rng: random.Random) -> None:
    """Every form's samples in shuffled order, then edits of a tenth of the visit logs, then retractions."""
    client = TestClient(app, headers=OPENROSA)
    reports = list(all_sample_reports(default_reference(), UNTIL))
    rng.shuffle(reports)  # arrival order unrelated to event time: late and out of order
    forms: dict[str, bytes] = {}
    accepted: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for form_id, report in reports:
        xform = forms.setdefault(form_id, client.get(f"/forms/{form_id}.xml").content)
        response = client.post("/submission", files=multipart(fill_instance(xform, report.answers,
                                                                            report.instance_id)))
        assert response.status_code == 201, response.text
        accepted.setdefault(form_id, []).append((report.instance_id, report.answers))
    # Edits: a tenth of the visit logs get new counts (a new instanceID with deprecatedID).
    xform = forms["visit_log"]
    for instance_id, answers in rng.sample(accepted["visit_log"], len(accepted["visit_log"]) // 10):
        total = int(answers["visits_total"]) + rng.randrange(1, 30)
        edited = answers | {"visits_total": str(total), "visits_reading": str(
            total - int(answers["visits_learning"]) - int(answers["visits_information"])
            - int(answers["visits_events"])), "visits_adults": str(total - int(answers["visits_children"])),
            "visits_male": str(total - int(answers["visits_female"]))}
        xml = fill_instance(xform, edited, f"uuid:{uuid.UUID(int=rng.getrandbits(128))}", deprecated_id=instance_id)
        assert client.post("/submission", files=multipart(xml)).status_code == 201
    # Retractions (rejected in ODK Central's review) of some chains of several forms.
    retracted = []
    for form_id in ("visit_log", "mobile_session", "reading_promotion", "staff_training", "donation"):
        for instance_id, _ in rng.sample(accepted[form_id], max(1, len(accepted[form_id]) // 15)):
            assert service.retract(instance_id, ANONYMOUS, "central_rejected", "rejected in review")
            retracted.append(instance_id)
    # Half of them reviewed again (rejected → approved): reinstated; a third of those rejected once more.
    reinstated = rng.sample(retracted, len(retracted) // 2)
    for instance_id in reinstated:
        assert service.reinstate(instance_id, ANONYMOUS, "approved-1")
    for instance_id in rng.sample(reinstated, max(1, len(reinstated) // 3)):
        assert service.retract(instance_id, ANONYMOUS, "central_rejected", "rejected again", key="rejected-2")


def _settings(root: Path, forms_dir: Path, **overrides) -> Settings:
    if not (root / "forms").exists():
        shutil.copytree(forms_dir, root / "forms")
    return Settings.from_env(**{"bus": "embedded", "store_dsn": f"chdb://{root / 'store'}",
                                "state_dir": root / "state", "forms_dir": root / "forms", **overrides})


@contextmanager
def loaded_stack(root: Path, forms_dir: Path, seed: int, **overrides) -> Iterator[EmbeddedStack]:
    """An embedded stack under ``root`` with every sample report posted (``_post_all``, shuffled by
    ``seed``); closed on leaving."""
    stack = embedded_stack(_settings(root, forms_dir, **overrides))
    try:
        _post_all(stack.app, stack.service, random.Random(seed))
        yield stack
    finally:
        stack.close()


def test_embedded_store_equals_the_oracle_and_a_replay_gives_the_same(tmp_path: Path, forms_dir: Path):
    settings = _settings(tmp_path / "live", forms_dir)
    with loaded_stack(tmp_path / "live", forms_dir, 4) as stack:
        published = from_embedded_log(settings.state_dir / "bus.sqlite")
        oracle = Oracle(published, default_reference())
        compare(Aggregates(stack.store, default_reference()), oracle)

    # Replay: the whole log from position zero, fresh processor state, an empty store.
    replayed = _settings(tmp_path / "replay", forms_dir)
    replayed.state_dir.mkdir(parents=True)
    shutil.copy(settings.state_dir / "bus.sqlite", replayed.state_dir / "bus.sqlite")
    stack = embedded_stack(replayed)  # drains the log at start-up
    try:
        compare(Aggregates(stack.store, default_reference()), oracle)
    finally:
        stack.close()


@pytest.mark.kafka
def test_distributed_store_equals_the_oracle(tmp_path: Path, forms_dir: Path, kafka_bootstrap_servers: str):
    prefix = f"oracle{uuid.uuid4().hex[:6]}."
    settings = _settings(tmp_path, forms_dir, bus="kafka", kafka_bootstrap_servers=kafka_bootstrap_servers,
                         kafka_topic_prefix=prefix, faust_data_dir=tmp_path / "faust", faust_web_port=free_port(),
                         processor_batch_ms=200, faust_session_timeout_s=6.0)
    ensure_topics(kafka_bootstrap_servers, prefix, group=settings.processor_group)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        app, service = distributed_intake(settings)
        with TestClient(app):
            _post_all(app, service, random.Random(4))
        wait_until_caught_up(worker)
    finally:
        worker.stop()
    oracle = Oracle(from_kafka(kafka_bootstrap_servers, prefix), default_reference())
    store = Store(settings.store_dsn)  # the worker, which owned it, has stopped
    try:
        compare(Aggregates(store, default_reference()), oracle)
    finally:
        store.close()
