"""Data-quality flags and their "checked, correct" marks in distributed mode, on the real Kafka broker:
phones' reports through the Kafka intake raise flags in the faust worker's quality stage; an officer
marks them through the Kafka-mode query app; the marks reach the list once the worker's approvals
processor has archived them; a key of another province is refused; and a replay of the log into a
fresh store (``services/ops/replay.py``, what ``thuvien replay`` runs) gives the same flags and the
same marks. The embedded twin, with every refusal: ``tests/test_flag_checks.py``.

chDB: one process at a time owns a store, so the worker is stopped while the query app reads it.
"""

from __future__ import annotations

import io
import time as clock
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import distributed_intake, query_app
from services.bus.admin import ensure_topics
from services.clock import today_local
from services.config import Settings
from services.domain.periods import add_months
from services.domain.reference import Library, default_reference
from services.ops.replay import distributed_replay
from services.query.access import add_key
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, library_of, visit_answers
from tests.workers import WorkerProcess, wait_until_caught_up, worker_settings

pytestmark = pytest.mark.kafka

REFERENCE = default_reference()


HG, CB = library_of("02"), library_of("04")  # Hà Giang (now in 2025 Tuyên Quang, 08), Cao Bằng
THIS_MONTH = today_local().replace(day=1)
ZERO, LATE = add_months(THIS_MONTH, -3), add_months(THIS_MONTH, -4)  # both long past their deadline
PERIOD = {"start": add_months(THIS_MONTH, -6).isoformat(), "end": today_local().isoformat()}
FLAGS = 4  # Hà Giang: zero visits and late in ZERO, late in LATE; Cao Bằng: late in ZERO


def flag_id(library: Library, month: date, rule: str) -> str:
    return f"{library.library_id}/{month:%Y-%m}/{rule}"


def check_path(flag: str) -> str:
    return f"/v1/data-quality/{flag}/check"


def _report(phone: TestClient, xform: bytes, answers: dict[str, str], instance: str) -> None:
    response = phone.post("/submission", files=multipart(fill_instance(xform, answers, instance)))
    assert response.status_code == 201, response.text


def _send_reports(intake: Settings) -> None:
    """Three reports, sent today for months whose deadline has passed: every one is late, and Hà
    Giang's of ZERO counts no visit at all."""
    app, _service = distributed_intake(intake)
    with TestClient(app, headers=OPENROSA) as phone:
        xform = phone.get("/forms/visit_log.xml").content
        nothing = visit_answers(HG, ZERO + timedelta(days=4), total=0, loans=0) | {
            "virtual_visits": "0", "renewals": "0", "new_registrations": "0"}
        _report(phone, xform, nothing, "uuid:kafka-check-zero")
        _report(phone, xform, visit_answers(HG, LATE + timedelta(days=6)), "uuid:kafka-check-late")
        _report(phone, xform, visit_answers(CB, ZERO + timedelta(days=5)), "uuid:kafka-check-cb")


def _run_until(worker: WorkerProcess, processor: str, count: int, timeout_s: float = 180) -> None:
    """Start the worker; stop it once its ``processor`` has counted ``count`` outcomes (flags written,
    actions archived) and its group has caught up with every topic it reads."""
    worker.start()
    deadline = clock.monotonic() + timeout_s
    while worker.metric("processor_events_processed_total", f'processor="{processor}"') < count:
        assert worker.alive() and clock.monotonic() < deadline, worker.log_tail()
        clock.sleep(0.5)
    wait_until_caught_up(worker)
    worker.stop()


def listed(api: TestClient, key: str) -> dict[str, dict[str, Any]]:
    """Every flag of the region over the period, as the key's holder sees it."""
    response = api.get("/v1/data-quality", params={**PERIOD, "scheme": "legacy", "page_size": 1000},
                       headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return {item["flag_id"]: item for item in response.json()["items"]}


def test_flags_raised_by_the_worker_are_marked_unmarked_and_survive_a_replay(
        tmp_path: Path, settings: Settings, kafka_bootstrap_servers: str):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix, group="processors")
    distributed = worker_settings(settings, tmp_path, bootstrap=kafka_bootstrap_servers, prefix=prefix,
                                  group="processors", name="w", store=settings.store_dsn)
    keys = tmp_path / "keys.json"
    tq = add_key(keys, "so-tuyen-quang", ["read:province:2025:08", "approve:province:2025:08"])
    cb = add_key(keys, "so-cao-bang", ["read:province:legacy:04", "approve:province:legacy:04"])
    reader = add_key(keys, "bo-vh-doc", ["read:all"])
    query = distributed.model_copy(update={"api_keys_file": str(keys)})
    zero, late_zero, late = (flag_id(HG, ZERO, "zero_visits"), flag_id(HG, ZERO, "late_report"),
                             flag_id(HG, LATE, "late_report"))

    _send_reports(distributed)
    worker = WorkerProcess(distributed, tmp_path / "worker.log")
    _run_until(worker, "quality", FLAGS)

    with TestClient(query_app(query)) as api:
        flags = listed(api, reader)
        assert set(flags) == {zero, late_zero, late, flag_id(CB, ZERO, "late_report")}
        assert flags[zero]["root_ids"] == ["uuid:kafka-check-zero"] and flags[zero]["checked"] is False
        # Tuyên Quang's officer (2025 Tuyên Quang holds legacy Hà Giang) marks two; Cao Bằng's may not
        checked = api.post(check_path(zero), json={"note": "Thư viện đóng cửa sửa mái"},
                           headers={"Authorization": f"Bearer {tq}"})
        assert checked.status_code == 202, checked.text
        assert api.post(check_path(late), headers={"Authorization": f"Bearer {tq}"}).status_code == 202
        refused = api.post(check_path(late_zero), headers={"Authorization": f"Bearer {cb}"})
        assert refused.status_code == 403 and refused.json()["invalid_params"][0]["name"] == "Authorization"
        assert api.post(check_path(flag_id(CB, ZERO, "late_report")),
                        headers={"Authorization": f"Bearer {tq}"}).status_code == 403
        # published, not yet archived: the list says what the store holds
        assert not any(item["checked"] for item in listed(api, reader).values())

    _run_until(worker, "approvals", 2)  # the two marks (the refused ones were never published)
    with TestClient(query_app(query)) as api:
        flags = listed(api, reader)
        assert {f for f, item in flags.items() if item["checked"]} == {zero, late}
        assert (flags[zero]["checked_by"], flags[zero]["checked_at"], flags[zero]["check_note"]) == (
            "so-tuyen-quang", checked.json()["at"], "Thư viện đóng cửa sửa mái")
        assert api.delete(check_path(late), headers={"Authorization": f"Bearer {cb}"}).status_code == 403
        assert api.delete(check_path(late), headers={"Authorization": f"Bearer {tq}"}).status_code == 202

    _run_until(worker, "approvals", 1)  # the withdrawal
    with TestClient(query_app(query)) as api:
        live = listed(api, reader)
        assert {f for f, item in live.items() if item["checked"]} == {zero}
        assert live[late]["checked_by"] is None

    replayed = f"chdb://{tmp_path / 'replayed'}"
    out = io.StringIO()
    assert distributed_replay(distributed, to_store=replayed, group="replay", from_offset=None, from_date=None,
                              worker_log=tmp_path / "replay.log", timeout_s=240, out=out) == 0, out.getvalue()
    with TestClient(query_app(query.model_copy(update={"store_dsn": replayed}))) as api:
        assert listed(api, reader) == live
