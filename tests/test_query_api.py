"""The query API's contract: areas under either scheme, granularity, and problem-details errors."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient

from services.clock import today_local
from services.domain.reference import Library
from services.tools.submissions import fill_instance, multipart
from tests.conftest import visit_answers


def _submit(client: TestClient, library: Library, day: date, total: int, instance_id: str) -> None:
    xml = fill_instance(client.get("/forms/visit_log.xml").content, visit_answers(library, day, total), instance_id)
    assert client.post("/submission", files=multipart(xml)).status_code == 201


def test_day_month_year_and_commune_views_agree(client: TestClient, library: Library):
    last_month = today_local().replace(day=1) - timedelta(days=1)
    first, second = last_month.replace(day=3), last_month.replace(day=17)
    _submit(client, library, first, 10, "uuid:q-1")
    _submit(client, library, second, 15, "uuid:q-2")
    area = library.area("legacy")
    base = {"scheme": "legacy", "province": area.province_code, "start": first.isoformat(),
            "end": second.isoformat()}

    days = client.get("/v1/visits", params={**base, "granularity": "day"}).json()["series"]
    months = client.get("/v1/visits", params={**base, "granularity": "month"}).json()["series"]
    years = client.get("/v1/visits", params={**base, "granularity": "year"}).json()["series"]
    commune = client.get("/v1/visits", params={**base, "commune": area.commune_code}).json()

    assert [(d["period"], d["visits_total"]) for d in days] == [(first.isoformat(), 10), (second.isoformat(), 15)]
    assert [(m["period"], m["visits_total"]) for m in months] == [(last_month.strftime("%Y-%m"), 25)]
    assert [(y["period"], y["visits_total"]) for y in years] == [(str(last_month.year), 25)]
    assert commune["area"]["level"] == "commune" and commune["series"][0]["visits_total"] == 25


def test_a_code_is_read_under_its_scheme(client: TestClient, library: Library):
    # 24 was Bắc Giang before the reform and is Bắc Ninh since: the same code, two provinces.
    legacy = client.get("/v1/visits", params={"scheme": "legacy", "province": "24"}).json()["area"]
    current = client.get("/v1/visits", params={"scheme": "2025", "province": "24"}).json()["area"]
    assert (legacy["name_vi"], current["name_vi"]) == ("Bắc Giang", "Bắc Ninh")


def test_errors_are_problem_details_naming_the_parameter(client: TestClient):
    bad = client.get("/v1/visits", params={"granularity": "week"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["invalid_params"][0]["name"] == "granularity"

    unknown = client.get("/v1/visits", params={"scheme": "2025", "province": "02"})  # Hà Giang no longer exists
    assert unknown.status_code == 404 and unknown.json()["invalid_params"][0]["name"] == "province"

    backwards = client.get("/v1/visits", params={"start": "2026-05-01", "end": "2026-04-01"})
    assert backwards.status_code == 400 and "after" in backwards.json()["detail"]
