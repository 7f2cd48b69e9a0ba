"""Every figure traced to its submissions (/v1/lineage/…), end to end on the samples of
tests/test_query_v1.py (every form posted through the intake, shuffled, with edits, retractions
and reinstatements) in one embedded stack: for random figures the listed chains' contributions sum
to the figure the API serves, and they are the chains the oracle (tests/oracle.py) counts; an
edited chain shows its edits and counts once, with its current version; a retracted chain is not
listed; pages cover every chain once; CSV has every row.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.reference import default_reference
from services.tools.submissions import fill_instance, multipart
from tests.compare import TODAY, UNTIL
from tests.conftest import OPENROSA, library_of, visit_answers
from tests.oracle import RETRACTED, Area, Oracle, _payload
from tests.published import from_embedded_log
from tests.test_query_v1 import AREAS, ok, params_of
from tests.test_store_vs_oracle import loaded_stack

REFERENCE = default_reference()
VALUES = (*COUNT_FIELDS, "reports")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lineage")


@pytest.fixture(scope="module")
def loaded(root: Path, forms_dir: Path) -> Iterator[EmbeddedStack]:
    with loaded_stack(root, forms_dir, 4) as stack:
        yield stack


@pytest.fixture(scope="module")
def oracle(loaded: EmbeddedStack, root: Path) -> Oracle:
    return Oracle(from_embedded_log(root / "state" / "bus.sqlite"), REFERENCE)


@pytest.fixture(scope="module")
def api(loaded: EmbeddedStack) -> TestClient:
    return TestClient(loaded.app, headers={"Authorization": f"Bearer {loaded.demo_api_key}"})


def walk(api: TestClient, path: str, params: dict[str, Any], page_size: int) -> tuple[dict[str, Any], list[dict]]:
    """The first page's body and every item, following next_page_token (and checking its Link)."""
    first, items, token = None, [], None
    while True:
        response = api.get(path, params={**params, "page_size": page_size, **({"page_token": token} if token else {})})
        body = ok(response)
        first = first or body
        items += body["items"]
        assert len(body["items"]) <= page_size
        token = body["next_page_token"]
        if token is None:
            assert "link" not in response.headers
            return first, items
        assert response.headers["link"].endswith('>; rel="next"') and len(body["items"]) == page_size


def sums(items: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Period → the contributions of its chains, summed."""
    out: dict[str, dict[str, int]] = {}
    for item in items:
        into = out.setdefault(item["period"], dict.fromkeys(VALUES, 0))
        for name in VALUES:
            into[name] += item["contribution"][name]
    return out


def month_of(day: date) -> tuple[date, date]:
    nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day.replace(day=1), nxt - timedelta(days=1)


def oracle_roots(oracle: Oracle, area: Area, start: date, end: date) -> set[str]:
    return {e.root_id for e in oracle._selected("visit_logged", area, start, end)}


def test_the_chains_of_random_visits_figures_sum_to_them(api: TestClient, oracle: Oracle):
    rng = random.Random(17)
    days = [e.occurred_on for e in oracle._of("visit_logged")]
    for _ in range(8):
        area = rng.choice(AREAS)
        start, end = month_of(rng.choice(days))
        if rng.random() < 0.3:  # a quarter or a year now and then
            start, end = date(start.year, 1, 1), date(start.year, 12, 31)
        granularity = rng.choice(["month", "quarter", "year"])
        params = {**params_of(area), "start": start.isoformat(), "end": end.isoformat(), "granularity": granularity}
        figure = ok(api.get("/v1/visits", params=params))["series"]
        body, items = walk(api, "/v1/lineage/visits", params, page_size=rng.choice([7, 50, 1000]))
        # Lineage traces the live figure; /v1/visits marks each point (no approval here: all provisional).
        assert [{**row, "status": "provisional"} for row in body["series"]] == figure
        assert sums(items) == {row["period"]: {name: row[name] for name in VALUES} for row in figure}, params
        roots = [item["root_id"] for item in items]
        assert len(roots) == len(set(roots)) == body["chains"] == sum(row["reports"] for row in figure)
        assert set(roots) == oracle_roots(oracle, area, start, end), params  # the chains the oracle counts
        assert figure or not items


def test_a_library_type_figure_is_traced_as_the_figure_reads_it(api: TestClient):
    params = {"scheme": "2025", "library_type": "commune_public_library", "start": "2024-01-01",
              "end": UNTIL.isoformat(), "granularity": "year"}
    figure = ok(api.get("/v1/visits", params=params))["series"]
    _, items = walk(api, "/v1/lineage/visits", params, page_size=1000)
    assert figure and sums(items) == {row["period"]: {name: row[name] for name in VALUES} for row in figure}


@pytest.mark.parametrize("year", [2025, TODAY.year])
def test_the_chains_of_a_growth_rate_sum_to_its_two_years(api: TestClient, oracle: Oracle, year: int):
    for area in random.Random(year).sample(AREAS, 4):
        growth = ok(api.get("/v1/growth", params={**params_of(area), "year": year}))
        body, items = walk(api, "/v1/lineage/growth", {**params_of(area), "year": year}, page_size=200)
        assert body["all"] == growth["all"]
        by_year = sums(items)
        assert by_year.get(str(year), {}).get("visits_total", 0) == growth["all"]["visits"], area
        assert by_year.get(str(year - 1), {}).get("visits_total", 0) == growth["all"]["previous"], area
        assert {item["root_id"] for item in items} == oracle_roots(oracle, area, date(year - 1, 1, 1),
                                                                   date(year, 12, 31))


def test_the_communes_of_k1_are_its_numerator(api: TestClient, oracle: Oracle):
    rng = random.Random(1)
    for area in rng.sample(AREAS, 5):
        year = rng.choice([2025, TODAY.year])
        as_of = min(date(year, 12, 31), UNTIL)
        params = {**params_of(area), "year": year, "as_of": as_of.isoformat()}
        k1 = ok(api.get("/v1/indicators", params=params))["indicators"]["K1"]
        body, items = walk(api, "/v1/lineage/k1", params, page_size=5)
        assert body["indicator"] == k1 and k1["numerator"] == oracle.k1(area, as_of)[0]
        assert sum(item["contribution"] for item in items) == k1["numerator"], area
        registry = oracle.registry(as_of)
        for item in items:
            assert item["libraries"], item
            for library in item["libraries"]:
                entry = registry[library["library_id"]]
                assert entry.area(area.scheme).commune_code == item["commune_code"]
                assert entry.operating(as_of) and entry.model_joined_on is not None
                assert all(chain["occurred_on"] <= as_of.isoformat() for chain in library["chains"])


def _chain_with(oracle: Oracle, wanted) -> tuple[str, list]:
    for root_id, versions in sorted(oracle._chains.items()):
        events = [e for _, e in versions]
        if events[0].event_type == "visit_logged" and wanted(events):
            return root_id, events
    raise AssertionError("no such chain in the samples")


def _listing(api: TestClient, event) -> list[dict[str, Any]]:
    params = {"scheme": "legacy", "library": event.library_id, "start": event.occurred_on.isoformat(),
              "end": event.occurred_on.isoformat(), "granularity": "day"}
    return walk(api, "/v1/lineage/visits", params, page_size=1000)[1]


def _local(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(hours=7), text  # Asia/Ho_Chi_Minh
    return value


def _ms(value: datetime) -> datetime:
    """As the store keeps acceptance times: to the millisecond."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def test_an_edited_chain_shows_its_edits_and_counts_once_with_its_current_version(api: TestClient,
                                                                                   oracle: Oracle):
    root_id, events = _chain_with(oracle, lambda es: len(es) > 1 and all(e.event_type == "visit_logged" for e in es))
    current = events[-1]
    listed = [item for item in _listing(api, current) if item["root_id"] == root_id]
    assert len(listed) == 1
    item = listed[0]
    assert item["instance_id"] == current.event_id != root_id
    assert item["versions"] == len(events)
    assert [edit["instance_id"] for edit in item["edits"]] == [e.event_id for e in events[1:]]
    assert [_local(edit["accepted_at"]) for edit in item["edits"]] == [_ms(e.submitted_at) for e in events[1:]]
    assert item["contribution"]["visits_total"] == _payload(current)["visits_total"]
    assert item["contribution"]["reports"] == 1 and item["retractions"] == []
    assert _local(item["first_accepted_at"]) == _ms(events[0].submitted_at)
    assert _local(item["last_accepted_at"]) == _ms(current.submitted_at)
    assert (item["submitter"], item["source"], item["library_id"], item["occurred_on"]) == (
        current.submitter, current.source, current.library_id, current.occurred_on.isoformat())


def test_a_chain_of_one_version_is_told_by_its_chain_row_as_the_archive_has_it(api: TestClient, oracle: Oracle):
    """The same sender, channel and acceptance time as its event."""
    root_id, (event,) = _chain_with(oracle, lambda es: len(es) == 1 and es[0].event_type == "visit_logged")
    (item,) = [item for item in _listing(api, event) if item["root_id"] == root_id]
    assert (item["instance_id"], item["versions"], item["edits"], item["retractions"]) == (root_id, 1, [], [])
    assert (item["submitter"], item["source"]) == (event.submitter, event.source)
    assert _local(item["first_accepted_at"]) == _local(item["last_accepted_at"]) == _ms(event.submitted_at)


def test_a_retracted_chain_does_not_contribute_and_a_reinstated_one_shows_its_retraction(api: TestClient,
                                                                                        oracle: Oracle):
    root_id, events = _chain_with(oracle, lambda es: es[-1].event_type == RETRACTED)
    assert root_id not in {item["root_id"] for item in _listing(api, events[0])}
    root_id, events = _chain_with(oracle, lambda es: es[-1].event_type != RETRACTED
                                  and any(e.event_type == RETRACTED for e in es))
    current = events[-1]
    item = next(item for item in _listing(api, current) if item["root_id"] == root_id)
    retractions = [e for e in events if e.event_type == RETRACTED]
    assert [(r["instance_id"], r["reason_code"], r["reason"]) for r in item["retractions"]] == [
        (e.event_id, e.payload.reason_code, e.payload.reason) for e in retractions]
    assert item["contribution"]["visits_total"] == _payload(current)["visits_total"]


def test_pages_cover_every_chain_once_and_csv_has_every_row(api: TestClient):
    params = {"scheme": "legacy", "province": "02", "start": "2024-01-01", "end": UNTIL.isoformat(),
              "granularity": "year"}
    body, small = walk(api, "/v1/lineage/visits", params, page_size=3)
    _, whole = walk(api, "/v1/lineage/visits", params, page_size=1000)
    assert len(small) > 3 and small == whole
    assert Counter(item["root_id"] for item in small).most_common(1)[0][1] == 1
    assert [item["root_id"] for item in small] == sorted(item["root_id"] for item in small)
    response = api.get("/v1/lineage/visits", params={**params, "format": "csv", "page_size": 2})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row["root_id"] for row in rows] == [item["root_id"] for item in whole]
    assert sum(int(row["contribution.visits_total"]) for row in rows) == sum(
        item["contribution"]["visits_total"] for item in whole)
    assert body["chains"] == len(rows)


def test_a_page_token_belongs_to_its_figure(api: TestClient):
    params = {"scheme": "legacy", "province": "02", "start": "2024-01-01", "granularity": "year"}
    token = ok(api.get("/v1/lineage/visits", params={**params, "page_size": 1}))["next_page_token"]
    response = api.get("/v1/lineage/visits", params={**params, "province": "04", "page_token": token})
    assert response.status_code == 400 and response.json()["invalid_params"][0]["name"] == "page_token"
    response = api.get("/v1/lineage/growth", params={"scheme": "legacy", "granularity": "year"})
    assert response.status_code == 400 and response.json()["invalid_params"][0]["name"] == "granularity"


def test_a_report_moved_to_another_year_by_its_edit_shows_every_version(loaded: EmbeddedStack, api: TestClient):
    """The archive is read by the years of the listed reports' days first (its partitions); a report
    whose edit moved it from December 2020 to January 2021 still shows its first version and edit."""
    phone = TestClient(loaded.app, headers=OPENROSA)
    xform = phone.get("/forms/visit_log.xml").content
    hg = library_of("02")
    for day, total, instance, edits in ((date(2020, 12, 30), 5, "uuid:lineage-year-0", None),
                                        (date(2021, 1, 2), 6, "uuid:lineage-year-1", "uuid:lineage-year-0")):
        xml = fill_instance(xform, visit_answers(hg, day, total=total), instance, deprecated_id=edits)
        assert phone.post("/submission", files=multipart(xml)).status_code == 201
    params = {"scheme": "legacy", "province": "02", "start": "2021-01-01", "end": "2021-01-31", "granularity": "month"}
    _, items = walk(api, "/v1/lineage/visits", params, page_size=50)
    (item,) = [i for i in items if i["root_id"] == "uuid:lineage-year-0"]
    assert (item["instance_id"], item["versions"], item["contribution"]["visits_total"]) == (
        "uuid:lineage-year-1", 2, 6)
    assert [edit["instance_id"] for edit in item["edits"]] == ["uuid:lineage-year-1"]
    assert item["first_accepted_at"] < item["last_accepted_at"]


def test_the_chains_of_an_approved_figure_are_the_approved_ones_and_sum_to_it(loaded: EmbeddedStack, api: TestClient):
    """A quarter of Hà Giang approved, then a late report and an edit of one of its reports arrive (held):
    the approved figure's lineage lists the approved versions (not the edit, not the late report) and
    sums to the figure /v1/visits serves; once the late report is applied, it is listed and counted.
    In 2021, before the samples (and every other test's figures), in the samples' stack (chDB: one
    store a process); un-approved at the end."""
    phone = TestClient(loaded.app, headers=OPENROSA)
    xform = phone.get("/forms/visit_log.xml").content
    hg = sorted((lib for lib in REFERENCE.libraries.values() if lib.area("legacy").province_code == "02"),
                key=lambda lib: lib.library_id)[:2]
    start, end, period = date(2021, 4, 1), date(2021, 6, 30), "2021-Q2"

    def send(library, day: date, total: int, instance: str, edits: str | None = None) -> None:
        xml = fill_instance(xform, visit_answers(library, day, total=total), instance, deprecated_id=edits)
        assert phone.post("/submission", files=multipart(xml)).status_code == 201

    approved = [(hg[n % 2], start + timedelta(days=9 * n), 10 + n, f"uuid:lineage-{n}") for n in range(10)]
    for library, day, total, instance in approved:
        send(library, day, total, instance)
    response = api.post("/v1/approvals", json={"scheme": "legacy", "province": "02", "period": period})
    assert response.status_code == 202, response.text
    approval = response.json()["approval_id"]
    try:
        _held_then_applied(api, approval, approved, start, end, send)
    finally:
        assert api.delete(f"/v1/approvals/{approval}").status_code == 202


def _held_then_applied(api: TestClient, approval: str, approved: list[tuple[Any, date, int, str]], start: date,
                       end: date, send: Any) -> None:
    hg = approved[0][0]
    send(hg, start + timedelta(days=4), 41, "uuid:lineage-late")
    send(hg, start, 77, "uuid:lineage-0-edited", edits="uuid:lineage-0")
    # (an edit moving a report out of the quarter: its chain's row now lies in July, outside the page's days)
    send(approved[1][0], end + timedelta(days=5), 5, "uuid:lineage-1-moved", edits="uuid:lineage-1")

    def listed(granularity: str) -> dict[str, str]:
        params = {"scheme": "legacy", "province": "02", "start": start.isoformat(), "end": end.isoformat(),
                  "granularity": granularity}
        figure = ok(api.get("/v1/visits", params=params))["series"]
        assert {row["status"] for row in figure} == {"approved"}
        body, items = walk(api, "/v1/lineage/visits", params, page_size=3)
        assert body["series"] == figure and body["approvals"][0]["approval_id"] == approval
        assert sums(items) == {row["period"]: {name: row[name] for name in VALUES} for row in figure}
        # An approved version no longer its chain's current one: listed with its own acceptance, beside
        # every version its chain has seen since (the held edit among them).
        for item in (i for i in items if i["root_id"] in ("uuid:lineage-0", "uuid:lineage-1")):
            edit = "uuid:lineage-0-edited" if item["root_id"] == "uuid:lineage-0" else "uuid:lineage-1-moved"
            assert (item["versions"], [e["instance_id"] for e in item["edits"]]) == (2, [edit])
            assert item["last_accepted_at"] == item["first_accepted_at"] < item["edits"][0]["accepted_at"]
        return {item["root_id"]: item["instance_id"] for item in items}

    for granularity in ("day", "month", "quarter"):
        # held: the late report is not listed, the edited report is listed as approved (its first version)
        assert listed(granularity) == {instance: instance for *_, instance in approved}
    queue = ok(api.get(f"/v1/approvals/{approval}/queue"))["items"]
    late = next(item for item in queue if item["root_id"] == "uuid:lineage-late")
    assert api.post(f"/v1/approvals/{approval}/queue/{late['item_id']}/apply").status_code == 202
    for granularity in ("month", "quarter"):
        assert listed(granularity) == {**{instance: instance for *_, instance in approved},
                                       "uuid:lineage-late": "uuid:lineage-late"}


def test_chain_rows_written_before_their_history_was_kept_are_told_from_the_archive_the_same(
        loaded: EmbeddedStack, api: TestClient):
    """A store migrated from before migration 018 has chain rows without a history: lineage reads
    those chains' versions and retractions from the archive, and lists exactly what the history
    does. (Last in the module: it empties the history of a province's rows; the answers are the same.)"""
    params = {"scheme": "legacy", "province": "02", "start": "2021-01-01", "end": UNTIL.isoformat(),
              "granularity": "year"}
    _, told = walk(api, "/v1/lineage/visits", params, page_size=40)
    assert any(item["edits"] for item in told) and any(item["retractions"] for item in told)
    loaded.store._client.command("ALTER TABLE visit_chain_rows UPDATE history = [] WHERE province_legacy = '02' "
                                 "SETTINGS mutations_sync = 2")
    assert loaded.store.select("SELECT count() AS n FROM visit_chain_rows WHERE province_legacy = '02' "
                               "AND notEmpty(history)")[0]["n"] == 0
    _, from_archive = walk(api, "/v1/lineage/visits", params, page_size=40)
    assert from_archive == told
