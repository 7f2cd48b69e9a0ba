"""Embedded mode end to end: a submission built from the served XForm, through OpenRosa, to /v1/visits."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from datetime import date, timedelta

from fastapi.testclient import TestClient

from services.bootstrap import embedded_stack
from services.clock import today_local
from services.domain.reference import REFERENCE_DIR, Library
from services.tools.submissions import fill_instance, multipart
from tests.conftest import visit_answers


def served_xform(client: TestClient) -> bytes:
    form_list = client.get("/formList")
    assert form_list.status_code == 200
    assert "<formID>visit_log</formID>" in form_list.text
    return client.get("/forms/visit_log.xml").content


def post(client: TestClient, xml: bytes):
    return client.post("/submission", files=multipart(xml))


def month_of(client: TestClient, library: Library, day: date, scheme: str = "legacy") -> dict | None:
    area = library.area(scheme)  # type: ignore[arg-type]
    response = client.get("/v1/visits", params={
        "scheme": scheme, "province": area.province_code, "start": day.replace(day=1).isoformat(),
        "end": day.isoformat(), "granularity": "month"})
    assert response.status_code == 200, response.text
    series = response.json()["series"]
    return series[0] if series else None


def test_submission_reaches_the_query_api(client: TestClient, library: Library):
    day = today_local() - timedelta(days=1)
    xml = fill_instance(served_xform(client), visit_answers(library, day, total=40, loans=25), "uuid:e2e-1")

    response = post(client, xml)

    assert response.status_code == 201
    assert "OpenRosaResponse" in response.text and 'nature="submit_success"' in response.text
    assert response.headers["X-OpenRosa-Version"] == "1.0"
    month = month_of(client, library, day)
    assert month is not None
    assert (month["visits_total"], month["loans"], month["reports"]) == (40, 25, 1)
    assert month["visits_children"] + month["visits_adults"] == 40
    # The same library under the 2025 scheme: Hà Giang (legacy 02) now lies in Tuyên Quang (08).
    current = month_of(client, library, day, scheme="2025")
    assert library.area("2025").province_code == "08"
    assert current is not None and current["visits_total"] == 40


def test_identical_resend_is_accepted_and_changes_nothing(client: TestClient, library: Library):
    day = today_local() - timedelta(days=2)
    xml = fill_instance(served_xform(client), visit_answers(library, day, total=30), "uuid:e2e-resend")
    assert post(client, xml).status_code == 201
    before = month_of(client, library, day)

    again = post(client, xml)

    assert again.status_code == 201
    assert "already received" in again.text
    assert month_of(client, library, day) == before
    assert before is not None and before["visits_total"] == 30 and before["reports"] == 1


def test_same_instance_id_with_other_answers_is_a_conflict(client: TestClient, library: Library):
    day = today_local() - timedelta(days=3)
    xform = served_xform(client)
    assert post(client, fill_instance(xform, visit_answers(library, day, total=30), "uuid:e2e-conflict")).status_code \
        == 201
    before = month_of(client, library, day)

    conflicting = post(client, fill_instance(xform, visit_answers(library, day, total=99), "uuid:e2e-conflict"))

    assert conflicting.status_code == 409
    assert 'nature="submit_error"' in conflicting.text and "uuid:e2e-conflict" in conflicting.text
    assert month_of(client, library, day) == before


def test_late_submission_lands_in_its_own_month(client: TestClient, library: Library):
    today = today_local()
    three_months_ago = (today.replace(day=1) - timedelta(days=80)).replace(day=15)
    xml = fill_instance(served_xform(client), visit_answers(library, three_months_ago, total=52), "uuid:e2e-late")

    assert post(client, xml).status_code == 201

    assert month_of(client, library, three_months_ago)["visits_total"] == 52  # type: ignore[index]
    assert month_of(client, library, today) is None


def test_edit_replaces_the_earlier_version(client: TestClient, library: Library):
    day = today_local() - timedelta(days=4)
    xform = served_xform(client)
    assert post(client, fill_instance(xform, visit_answers(library, day, total=30), "uuid:v1")).status_code == 201

    edited = fill_instance(xform, visit_answers(library, day, total=34), "uuid:v2", deprecated_id="uuid:v1")
    assert post(client, edited).status_code == 201

    month = month_of(client, library, day)
    assert month is not None and (month["visits_total"], month["reports"]) == (34, 1)


def test_invalid_submission_is_refused_with_a_readable_reason(client: TestClient, library: Library):
    answers = visit_answers(library, today_local(), total=40)
    answers["visits_children"] = "35"  # 35 + 20 adults ≠ 40
    rejected = 'intake_submissions_rejected_total{form_id="visit_log",reason="totals_inconsistent",status="400"}'
    before = _metric(client, rejected)

    response = post(client, fill_instance(served_xform(client), answers, "uuid:e2e-bad"))

    assert response.status_code == 400
    assert "trẻ em + người lớn" in response.text and "children + adults" in response.text
    assert month_of(client, library, today_local()) is None
    assert _metric(client, rejected) == before + 1


def test_metrics_count_what_happened(client: TestClient, library: Library):
    day = today_local() - timedelta(days=5)
    xml = fill_instance(served_xform(client), visit_answers(library, day), "uuid:e2e-metrics")
    before = _metric(client, 'intake_submissions_accepted_total{form_id="visit_log",kind="new"}')
    post(client, xml)
    post(client, xml)
    text = client.get("/metrics").text
    assert _metric(client, 'intake_submissions_accepted_total{form_id="visit_log",kind="new"}') == before + 1
    for name in ("bus_publish_seconds_count", "processor_events_processed_total", "store_rows_inserted_total"):
        assert name in text


def _metric(client: TestClient, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_every_accepted_event_is_archived_once(client: TestClient, stack, library: Library):
    day = today_local() - timedelta(days=6)
    xml = fill_instance(served_xform(client), visit_answers(library, day, total=21), "uuid:e2e-archive")
    post(client, xml)
    post(client, xml)  # resend
    [archived] = stack.store.events("visit_logged")
    assert (archived["event_id"], archived["library_id"], archived["occurred_on"]) == (
        "uuid:e2e-archive", library.library_id, day)
    assert archived["province_legacy"] == library.area("legacy").province_code
    assert json.loads(archived["payload"])["visits_total"] == 21


def test_a_retraction_takes_the_submission_out_of_the_counts(client: TestClient, stack, library: Library):
    from services.intake.accounts import ANONYMOUS

    day = today_local() - timedelta(days=7)
    xform = served_xform(client)
    post(client, fill_instance(xform, visit_answers(library, day, total=30), "uuid:keep"))
    post(client, fill_instance(xform, visit_answers(library, day, total=11), "uuid:withdraw"))
    service = stack.service

    assert service.retract("uuid:withdraw", ANONYMOUS, "central_rejected", "rejected in review")
    assert not service.retract("uuid:withdraw", ANONYMOUS, "central_rejected", "again")  # once only
    assert not service.retract("uuid:never-seen", ANONYMOUS, "central_rejected", "unknown")

    month = month_of(client, library, day)
    assert month is not None and (month["visits_total"], month["reports"]) == (30, 1)


def test_a_deployment_registry_replaces_the_sample_one(tmp_path, settings, library: Library):
    """LIBRARIES_FILE: the intake accepts the deployment's libraries and refuses ones it does not list."""
    with (REFERENCE_DIR / "libraries.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ours = {**next(r for r in rows if r["library_id"] == library.library_id), "library_id": "LIB-TEST-0001",
            "name_vi": "Thư viện xã Thử Nghiệm", "name_en": "Thu Nghiem Commune Library"}
    registry = tmp_path / "registry.csv"
    with registry.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(ours)

    stack = embedded_stack(settings.model_copy(update={"libraries_file": str(registry)}))
    try:
        client = TestClient(stack.app, headers={"X-OpenRosa-Version": "1.0", "X-API-Key": stack.demo_api_key or ""})
        xform, day = served_xform(client), today_local() - timedelta(days=1)
        manifest = client.get("/forms/visit_log/manifest").text
        media = [client.get(url).text for url in re.findall(r"<downloadUrl>([^<]+)</downloadUrl>", manifest)]
        assert any("LIB-TEST-0001" in m for m in media) and not any(library.library_id in m for m in media)
        ours_library = replace(library, library_id="LIB-TEST-0001")

        accepted = post(client, fill_instance(xform, visit_answers(ours_library, day, total=7), "uuid:registry-1"))
        refused = post(client, fill_instance(xform, visit_answers(library, day, total=9), "uuid:registry-2"))

        assert accepted.status_code == 201, accepted.text
        assert refused.status_code == 400 and library.library_id in refused.text
        month = month_of(client, library, day)
        assert month is not None and month["visits_total"] == 7
    finally:
        stack.close()
