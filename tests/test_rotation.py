"""Book rotation: the embedded stack end to end through the served rotation_movement form, and the
faust worker building the same batch rows as the pure fold (``test_rotation_fold.py``)."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.clock import today_local
from services.config import Settings
from services.domain.forms.rotation_movement import RotationMoved
from services.domain.reference import Library
from services.domain.rotation import REASON_CODE
from services.store import rotation as rotation_store
from services.store.clickhouse import AreaFilter, Store
from services.tools.submissions import fill_instance, multipart
from tests.test_distributed_e2e import Worker, distributed_settings, worker  # noqa: F401 (fixtures)
from tests.test_rotation_fold import HOLDER, OTHER, run

# --- embedded, end to end through the served form ------------------------------------------------------


def rotation_answers(library: Library, batch_id: str, movement: str, day: date, *, copies: int = 60,
                     ethnic: int = 12, lost: int = 0, damaged: int = 0) -> dict[str, str]:
    """A movement as services/tools/samples.py builds them: from the provincial library of the holder's province."""
    province = library.area("2025").province_code
    answers: dict[str, object] = {
        "batch_id": batch_id, "province": province, "library_id": library.library_id,
        "origin": "provincial_library", "origin_province": province, "titles": 30, "copies": copies,
        "ethnic_language_copies": ethnic, "movement": movement, "movement_date": day.isoformat()}
    if movement != "dispatched":
        answers |= {"copies_lost": lost, "copies_damaged": damaged}
    return {k: str(v) for k, v in answers.items()}


def post(client: TestClient, answers: dict[str, str], instance_id: str) -> None:
    xform = client.get("/forms/rotation_movement.xml")
    assert xform.status_code == 200, xform.text
    response = client.post("/submission", files=multipart(fill_instance(xform.content, answers, instance_id)))
    assert response.status_code == 201, response.text


def _batch_id(library: Library, n: int) -> str:
    return f"LC-{library.area('2025').province_code}-{today_local().year}-{n:03d}"


def test_dispatch_receive_return_moves_status_and_on_hand(client: TestClient, stack):
    today = today_local()
    start = today - timedelta(days=20)
    batch_id = _batch_id(HOLDER, 101)
    area = AreaFilter("legacy", HOLDER.area("legacy").province_code)

    def on_hand() -> list[dict[str, Any]]:
        return rotation_store.on_hand_by_library(stack.store, area, today)

    post(client, rotation_answers(HOLDER, batch_id, "dispatched", start), "uuid:rot-d")
    assert rotation_store.batch(stack.store, batch_id)["status"] == "dispatched"
    assert on_hand() == []

    post(client, rotation_answers(HOLDER, batch_id, "received", start + timedelta(days=2), lost=2), "uuid:rot-r")
    [held] = on_hand()
    assert (held["library_id"], held["batches_on_hand"], held["copies_on_hand"]) == (HOLDER.library_id, 1, 58)
    assert (held["ethnic_language_copies_on_hand"], held["days_held"]) == (12, 18)
    [listed] = rotation_store.batches(stack.store, area, today)
    assert (listed["batch_id"], listed["status"], listed["days_held"]) == (batch_id, "received", 18)
    # as it stood the day before the receipt
    [before] = rotation_store.batches(stack.store, area, start + timedelta(days=1))
    assert (before["status"], before["received_on"], before["copies_lost"]) == ("dispatched", None, 0)

    post(client, rotation_answers(HOLDER, batch_id, "returned", start + timedelta(days=15), damaged=3), "uuid:rot-t")
    row = rotation_store.batch(stack.store, batch_id)
    assert (row["status"], row["returned_on"], row["copies_lost"], row["copies_damaged"]) == (
        "returned", start + timedelta(days=15), 2, 3)
    assert on_hand() == []
    [province] = rotation_store.province_rotation(stack.store, "legacy", today, 90)
    assert (province["province_code"], province["copies_dispatched"], province["copies_in_circulation"]) == (
        HOLDER.area("legacy").province_code, 60, 0)
    assert province["loss_rate"] == pytest.approx(2 / 60)
    assert [m["movement"] for m in rotation_store.movements(stack.store, batch_id)] == [
        "dispatched", "received", "returned"]


def test_a_receipt_before_its_dispatch_is_invalid_until_the_dispatch_comes(client: TestClient, stack):
    today = today_local()
    batch_id = _batch_id(HOLDER, 102)
    post(client, rotation_answers(HOLDER, batch_id, "received", today - timedelta(days=5)), "uuid:rot-early")
    [movement] = rotation_store.movements(stack.store, batch_id)
    assert (movement["valid"], movement["reason_code"]) == (0, "received_before_dispatch")
    assert rotation_store.batch(stack.store, batch_id)["status"] == "none"
    [letter] = [d for d in stack.store.dead_letters(open_only=True) if d["instance_id"] == "uuid:rot-early"]
    assert letter["reason_code"] == REASON_CODE and batch_id in letter["reason_vi"] and not letter["resolved"]
    assert json.loads(letter["event_json"])["batch"]["movements"][0]["reason_code"] == "received_before_dispatch"

    # the dispatch, sent late from the provincial library's phone
    post(client, rotation_answers(HOLDER, batch_id, "dispatched", today - timedelta(days=8)), "uuid:rot-late")
    assert [(m["movement"], m["valid"]) for m in rotation_store.movements(stack.store, batch_id)] == [
        ("dispatched", 1), ("received", 1)]
    assert rotation_store.batch(stack.store, batch_id)["status"] == "received"
    assert [d for d in stack.store.dead_letters(open_only=True) if d["instance_id"] == "uuid:rot-early"] == []
    [closed] = [d for d in stack.store.dead_letters(open_only=False) if d["instance_id"] == "uuid:rot-early"]
    assert closed["resolved"] and closed["dead_letter_id"] == letter["dead_letter_id"]


def test_overdue_batches_by_the_loan_period(client: TestClient, stack, settings: Settings):
    today = today_local()
    late, recent = _batch_id(HOLDER, 103), _batch_id(HOLDER, 104)
    post(client, rotation_answers(HOLDER, late, "dispatched", today - timedelta(days=30)), "uuid:rot-o1")
    post(client, rotation_answers(HOLDER, late, "received", today - timedelta(days=28)), "uuid:rot-o2")
    post(client, rotation_answers(HOLDER, recent, "dispatched", today - timedelta(days=5), copies=40),
         "uuid:rot-o3")

    def province(loan_days: int) -> dict[str, Any]:
        [row] = rotation_store.province_rotation(stack.store, "2025", today, loan_days)
        return row

    assert settings.rotation_loan_days == 90 and province(settings.rotation_loan_days)["batches_overdue"] == 0
    assert province(10)["batches_overdue"] == 1
    assert province(3)["batches_overdue"] == 2
    row = province(10)
    assert (row["province_code"], row["batches_in_circulation"], row["copies_in_circulation"]) == ("08", 2, 100)
    # twenty days earlier, the late batch was not yet overdue at 10 days, the recent one not yet sent
    [then] = rotation_store.province_rotation(stack.store, "2025", today - timedelta(days=25), 10)
    assert (then["batches_dispatched"], then["batches_overdue"]) == (1, 0)


# --- distributed: the faust worker --------------------------------------------------------------------


def _rotation_processed(running: Worker) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{running.web_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return -1
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("processor_events_processed_total{") and 'processor="rotation"' in line)


@pytest.mark.kafka
def test_the_faust_worker_builds_the_same_batch_rows(distributed_settings: Settings,  # noqa: F811
                                                     worker: Worker):  # noqa: F811
    from services.bootstrap import intake_app
    from tests.conftest import OPENROSA

    today = today_local()
    batch_id = _batch_id(HOLDER, 105)
    steps = [("received", today - timedelta(days=9), HOLDER, "uuid:k-early"),  # before its dispatch, at first
             ("dispatched", today - timedelta(days=12), HOLDER, "uuid:k-d"),
             ("received", today - timedelta(days=8), OTHER, "uuid:k-other"),  # invalid: received twice
             ("returned", today - timedelta(days=2), HOLDER, "uuid:k-t")]
    with TestClient(intake_app(distributed_settings), headers=OPENROSA) as intake:
        xform = intake.get("/forms/rotation_movement.xml").content
        for movement, day, library, instance_id in steps:
            xml = fill_instance(xform, rotation_answers(library, batch_id, movement, day, lost=1), instance_id)
            assert intake.post("/submission", files=multipart(xml)).status_code == 201

    deadline = time.monotonic() + 120
    while _rotation_processed(worker) < len(steps):
        assert worker.process.poll() is None, worker.log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, worker.log_path.read_text()[-4000:]
        time.sleep(0.3)
    time.sleep(1)  # the archive agent may trail the rotation agent by a batch
    worker.stop()  # chDB: one process owns the data directory

    store = Store(distributed_settings.store_dsn)
    try:
        row = rotation_store.batch(store, batch_id)
        movements = rotation_store.movements(store, batch_id)
        archived = store.events("rotation_moved")
        letters = [d for d in store.dead_letters(open_only=True) if d["reason_code"] == REASON_CODE]
    finally:
        store.close()
    assert row is not None
    assert (row["status"], row["library_id"], row["valid_movements"], row["invalid_movements"]) == (
        "returned", HOLDER.library_id, 3, 1)

    # the same events folded here, in the pure domain, give the same batch row
    events = [RotationMoved.model_validate({**e, "payload": json.loads(e["payload"])}) for e in
              _envelopes(archived)]
    expected = run(events).batches[batch_id]
    got = {k: v for k, v in row.items() if k != "version"}
    assert got == {k: v for k, v in dataclasses.asdict(expected).items() if k != "version"}
    assert [(m["event_id"], m["valid"], m["reason_code"]) for m in movements] == [
        ("uuid:k-d", 1, ""), ("uuid:k-early", 1, ""), ("uuid:k-other", 0, "received_twice"), ("uuid:k-t", 1, "")]
    assert [d["instance_id"] for d in letters] == ["uuid:k-other"]


def _envelopes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Archived rows back into event fields (the archive keeps the envelope's columns)."""
    out = []
    for e in rows:
        areas = [{"scheme": "legacy", "province_code": e["province_legacy"], "commune_code": e["commune_legacy"]},
                 {"scheme": "2025", "province_code": e["province_2025"], "commune_code": e["commune_2025"]}]
        out.append({"event_type": e["event_type"], "event_id": e["event_id"], "root_id": e["root_id"],
                    "deprecated_id": e["deprecated_id"] or None, "form_id": e["form_id"],
                    "form_version": e["form_version"], "submitted_at": e["submitted_at"],
                    "occurred_on": e["occurred_on"], "library_id": e["library_id"], "areas": areas,
                    "submitter": e["submitter"], "source": e["source"], "content_hash": e["content_hash"],
                    "payload": e["payload"]})
    return out
