"""Data quality end to end (/v1/data-quality), on the samples loaded with their sending times into one
embedded stack: the samples' months raise no flag but the late reports their sending times say;
each rule fires on a crafted case, naming its chains, and the edit that fixes it clears it; a
replay of the log into a fresh store gives the same flags. Rules: services/domain/quality.py.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, embedded_stack
from services.domain.quality import reporting_deadline
from services.domain.reference import default_reference
from services.tools.load_samples import load_in_process
from services.tools.samples import all_sample_reports
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, visit_answers
from tests.published import from_embedded_log
from tests.test_store_vs_oracle import _settings

UNTIL = date(2025, 12, 31)
REFERENCE = default_reference()
PERIOD = {"start": "2024-01-01", "end": "2025-12-31"}
CLOSED: list[EmbeddedStack] = []  # closed by the replay test (one chDB engine per process: one store open)
SAMPLES = [r for form_id, r in all_sample_reports(REFERENCE, UNTIL) if form_id == "visit_log"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quality")


@pytest.fixture(scope="module")
def loaded(root: Path, forms_dir: Path) -> Iterator[EmbeddedStack]:
    settings = _settings(root, forms_dir)
    stack = embedded_stack(settings)
    try:
        assert set(load_in_process(stack.service, settings.forms_dir, UNTIL)) == {"new"}
        yield stack
    finally:
        if stack not in CLOSED:
            stack.close()


@pytest.fixture(scope="module")
def api(loaded: EmbeddedStack) -> TestClient:
    return TestClient(loaded.app, headers={"Authorization": f"Bearer {loaded.demo_api_key}"})


@pytest.fixture(scope="module")
def intake(loaded: EmbeddedStack) -> TestClient:
    return TestClient(loaded.app, headers=OPENROSA)


def flags(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Every flag of the region (legacy scheme) over the samples' period, page by page."""
    items, token = [], None
    while True:
        response = api.get("/v1/data-quality", params={**PERIOD, **params, "page_size": 50,
                                                       **({"page_token": token} if token else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        token = body["next_page_token"]
        if token is None:
            return items


def by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(f["library_id"], f["month"], f["rule"]): f for f in items}


def post(intake: TestClient, answers: dict[str, str], instance_id: str, deprecated_id: str | None = None) -> None:
    xform = intake.get("/forms/visit_log.xml").content
    xml = fill_instance(xform, answers, instance_id, deprecated_id=deprecated_id)
    response = intake.post("/submission", files=multipart(xml))
    assert response.status_code == 201, response.text


def test_the_samples_raise_only_the_late_reports_their_sending_times_say(api: TestClient):
    found = flags(api)
    assert found, "the samples have late reports"
    assert {f["rule"] for f in found} == {"late_report"}, [f["message_en"] for f in found if f["rule"] != "late_report"]
    late: dict[tuple[str, str], set[str]] = {}
    for report in SAMPLES:
        month = date.fromisoformat(report.answers["report_date"]).replace(day=1)
        assert report.sent_at is not None
        if report.sent_at.date() > reporting_deadline(month):
            late.setdefault((report.answers["library_id"], f"{month:%Y-%m}"), set()).add(report.instance_id)
    assert {(f["library_id"], f["month"]): set(f["root_ids"]) for f in found} == late
    some = found[0]
    assert some["message_vi"] and some["message_en"] and some["figures"]["deadline"]
    where = REFERENCE.libraries[some["library_id"]].area("legacy")
    assert some["areas"]["legacy"]["province_code"] == where.province_code
    # the rule filter, and CSV (every row)
    assert flags(api, rule="outlier") == []
    text = api.get("/v1/data-quality", params={**PERIOD, "format": "csv"}).text
    assert len(list(csv.DictReader(io.StringIO(text)))) == len(found)


def _sample(library_id: str, month: str):
    return next(r for r in SAMPLES if r.answers["library_id"] == library_id and r.answers["report_date"][:7] == month)


def test_each_rule_fires_on_a_crafted_case_names_its_chains_and_an_edit_that_fixes_it_clears_it(
        loaded: EmbeddedStack, api: TestClient, intake: TestClient, root: Path):
    libraries = sorted({r.answers["library_id"] for r in SAMPLES})
    outlying, zeroed, broken = libraries[0], libraries[1], libraries[2]
    lib = REFERENCE.libraries[outlying]

    # outlier: a second report of November 2025 with twenty times the month's visits
    post(intake, visit_answers(lib, date(2025, 11, 15), total=20 * int(_sample(outlying, "2025-11").answers[
        "visits_total"])), "uuid:quality-outlier")
    flag = by_key(flags(api, rule="outlier"))[(outlying, "2025-11", "outlier")]
    assert "uuid:quality-outlier" in flag["root_ids"] and flag["figures"]["z"] > 10
    assert flag["figures"]["history_months"] == 12
    post(intake, visit_answers(lib, date(2025, 11, 15), total=1), "uuid:quality-outlier-2",
         deprecated_id="uuid:quality-outlier")
    assert (outlying, "2025-11", "outlier") not in by_key(flags(api, rule="outlier"))

    # zero visits: the month's one report edited to nothing
    sample = _sample(zeroed, "2025-10")
    nothing = {k: ("0" if k.startswith(("visits_", "virtual_", "loans", "renewals", "new_")) else v)
               for k, v in sample.answers.items()}
    post(intake, nothing, "uuid:quality-zero", deprecated_id=sample.instance_id)
    flag = by_key(flags(api))[(zeroed, "2025-10", "zero_visits")]
    assert flag["root_ids"] == [sample.instance_id] and flag["instance_ids"] == ["uuid:quality-zero"]
    post(intake, sample.answers, "uuid:quality-zero-fixed", deprecated_id="uuid:quality-zero")
    assert not {k for k in by_key(flags(api)) if k[:2] == (zeroed, "2025-10") and k[2] != "late_report"}

    # a day the library was closed: LIB-HB-0004 opened on 2025-11-20
    opened = REFERENCE.libraries["LIB-HB-0004"]
    assert opened.opened_on == date(2025, 11, 20)
    post(intake, visit_answers(opened, date(2025, 11, 10)), "uuid:quality-closed")
    flag = by_key(flags(api, rule="closed_day"))[("LIB-HB-0004", "2025-11", "closed_day")]
    assert flag["root_ids"] == ["uuid:quality-closed"] and flag["figures"]["days"] == ["2025-11-10"]
    post(intake, visit_answers(opened, date(2025, 11, 25)), "uuid:quality-closed-2",
         deprecated_id="uuid:quality-closed")
    assert flags(api, rule="closed_day") == []
    post(intake, visit_answers(opened, date(2025, 11, 2)), "uuid:quality-closed-stays")  # left for the replay
    assert [f["root_ids"] for f in flags(api, rule="closed_day")] == [["uuid:quality-closed-stays"]]

    # breakdowns that do not add up: a version an older intake accepted (published as it would have),
    # then an edit accepted now that adds up
    published = [e for _, e in from_embedded_log(root / "state" / "bus.sqlite")
                 if e.event_type == "visit_logged" and e.library_id == broken and e.occurred_on.month == 9
                 and e.occurred_on.year == 2025]
    base = published[0]
    bad = base.model_copy(update={"event_id": "uuid:quality-old", "root_id": "uuid:quality-old",
                                  "payload": base.payload.model_copy(update={
                                      "visits_children": base.payload.visits_children + 7})})
    loaded.bus.publish(bad)
    flag = by_key(flags(api, rule="breakdown_mismatch"))[(broken, "2025-09", "breakdown_mismatch")]
    assert flag["root_ids"] == ["uuid:quality-old"] and "visits_children" in flag["figures"]["fields"]
    loaded.bus.publish(base.model_copy(update={"event_id": "uuid:quality-old-fixed", "root_id": "uuid:quality-old",
                                               "deprecated_id": "uuid:quality-old",
                                               "submitted_at": bad.submitted_at + timedelta(minutes=1)}))
    assert flags(api, rule="breakdown_mismatch") == []


def _stored(stack: EmbeddedStack) -> list[dict[str, Any]]:
    return stack.store.select("SELECT * EXCEPT (seq) FROM quality_flags FINAL WHERE holds "
                              "ORDER BY library_id, month, rule")


def test_a_replay_of_the_log_gives_the_same_flags(loaded: EmbeddedStack, root: Path, forms_dir: Path,
                                                  tmp_path: Path):
    assert loaded.processors.caught_up(120)
    live = _stored(loaded)
    assert {row["rule"] for row in live} == {"late_report", "closed_day"}  # the crafted cases but one were fixed
    loaded.close()
    CLOSED.append(loaded)
    replayed = _settings(tmp_path / "replay", forms_dir)
    replayed.state_dir.mkdir(parents=True)
    shutil.copy(root / "state" / "bus.sqlite", replayed.state_dir / "bus.sqlite")
    stack = embedded_stack(replayed)  # drains the log at start-up
    try:
        assert _stored(stack) == live
    finally:
        stack.close()
