"""The query API (/v1) end to end on realistic data: every endpoint's answer equals the oracle's
(tests/oracle.py) for several areas under both schemes, CSV equals JSON row for row and is
streamed, pagination walks a list completely, ETags give 304, and every bad parameter is a
problem-details answer naming it.

Data: every form's samples posted through the intake in shuffled order, with edits and
retractions (``_post_all`` of tests/test_store_vs_oracle.py), into one embedded stack per module.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from services.bootstrap import EmbeddedStack
from services.config import TIMEZONE
from services.domain.reference import default_reference
from services.query.access import province_mapping
from services.store import rotation as rotation_store
from services.store.clickhouse import AreaFilter
from tests.compare import TODAY, UNTIL
from tests.oracle import Area, Oracle
from tests.published import from_embedded_log
from tests.test_store_vs_oracle import loaded_stack

REFERENCE = default_reference()
START = date(2024, 1, 1)
LIBRARY = REFERENCE.libraries[sorted(REFERENCE.libraries)[0]]
HA_GIANG = next(lib for lib in sorted(REFERENCE.libraries.values(), key=lambda lib: lib.library_id)
                if lib.area("legacy").province_code == "02")
AREAS = [
    Area("legacy"), Area("2025"), Area("legacy", "02"), Area("2025", "08"), Area("legacy", "24"), Area("2025", "24"),
    Area("legacy", HA_GIANG.area("legacy").province_code, HA_GIANG.area("legacy").commune_code),
    Area("2025", LIBRARY.area("2025").province_code, LIBRARY.area("2025").commune_code),
    Area("legacy", library_id=LIBRARY.library_id), Area("2025", library_id=HA_GIANG.library_id),
]
SERIES = {"/v1/visits": "visits", "/v1/mobile-sessions": "mobile_sessions",
          "/v1/reading-promotion": "reading_promotion", "/v1/training": "training", "/v1/donations": "donations"}


def params_of(area: Area) -> dict[str, str]:
    out = {"scheme": area.scheme}
    for name, value in (("province", area.province_code), ("commune", area.commune_code),
                        ("library", area.library_id)):
        if value:
            out[name] = value
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("query-v1")


@pytest.fixture(scope="module")
def loaded(root: Path, forms_dir: Path) -> Iterator[EmbeddedStack]:
    with loaded_stack(root, forms_dir, 4) as stack:
        yield stack


@pytest.fixture(scope="module")
def oracle(loaded: EmbeddedStack, root: Path) -> Oracle:
    """The oracle on exactly what the intake published (read from the embedded log)."""
    return Oracle(from_embedded_log(root / "state" / "bus.sqlite"), REFERENCE)


@pytest.fixture(scope="module")
def api(loaded: EmbeddedStack) -> TestClient:
    return TestClient(loaded.app, headers={"Authorization": f"Bearer {loaded.demo_api_key}"})


def ok(response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def walk(api: TestClient, path: str, params: dict[str, Any], page_size: int) -> tuple[list[dict], int]:
    """Every item of a paginated list, following next_page_token; and how many pages it took."""
    items, token, pages = [], None, 0
    while True:
        body = ok(api.get(path, params={**params, "page_size": page_size, **({"page_token": token} if token else {})}))
        items += body["items"]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            return items, pages
        assert pages < 10_000


def unmarked(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A series without its points' approval mark, every point provisional (nothing is approved here:
    approvals are tests/test_approvals.py's)."""
    assert all(row.get("status", "provisional") == "provisional" for row in series)
    return [{k: v for k, v in row.items() if k != "status"} for row in series]


def unmarked_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """Indicators (or a growth answer) without their approval marks, each provisional (as ``unmarked``)."""
    out = {}
    for name, value in figures.items():
        if name == "approvals":
            assert value == []
        elif name == "status":
            assert value == "provisional"
        else:
            out[name] = unmarked_figures(value) if isinstance(value, dict) else value
    return out


# --- every endpoint against the oracle -----------------------------------------------------------------

@pytest.mark.parametrize("path", list(SERIES))
def test_series_equal_the_oracle(api: TestClient, oracle: Oracle, path: str):
    for area in AREAS:
        for granularity in ("month", "quarter", "year") if path == "/v1/visits" else ("month", "year"):
            body = ok(api.get(path, params={**params_of(area), "start": START.isoformat(), "end": TODAY.isoformat(),
                                            "granularity": granularity}))
            expected = getattr(oracle, SERIES[path])(area, START, TODAY, granularity)
            assert unmarked(body["series"]) == expected, (path, area, granularity)
            assert (body["start"], body["end"], body["granularity"]) == (START.isoformat(), TODAY.isoformat(),
                                                                        granularity)
    days = ok(api.get("/v1/visits", params={"scheme": "legacy", "province": "02", "start": START.isoformat(),
                                            "granularity": "day"}))["series"]
    assert unmarked(days) == oracle.visits(Area("legacy", "02"), START, TODAY, "day") and days


def test_the_area_of_an_answer_has_names_in_both_languages_and_codes_with_their_scheme(api: TestClient):
    province = ok(api.get("/v1/visits", params={"scheme": "2025", "province": "24"}))["area"]
    assert province == {"scheme": "2025", "level": "province", "code": "24", "name_vi": "Bắc Ninh",
                        "name_en": "Bac Ninh"}
    lib = HA_GIANG.area("2025")
    commune = ok(api.get("/v1/visits", params={"scheme": "2025", "commune": lib.commune_code}))["area"]
    unit = REFERENCE.commune("2025", lib.commune_code)
    assert commune["level"] == "commune" and (commune["name_vi"], commune["name_en"]) == (unit.name_vi, unit.name_en)
    assert commune["province"] == {"scheme": "2025", "level": "province", "code": "08", "name_vi": "Tuyên Quang",
                                   "name_en": "Tuyen Quang"}
    library = ok(api.get("/v1/visits", params={"scheme": "legacy", "library": HA_GIANG.library_id}))["area"]
    assert (library["level"], library["code"], library["name_vi"], library["name_en"]) == (
        "library", HA_GIANG.library_id, HA_GIANG.name_vi, HA_GIANG.name_en)
    assert library["province"]["code"] == "02" and library["province"]["name_vi"] == "Hà Giang"
    assert library["commune"]["scheme"] == "legacy"
    region = ok(api.get("/v1/visits", params={"scheme": "2025"}))["area"]
    assert region["level"] == "region" and region["name_en"] == "the 10 current provinces"


def test_library_type_filters_like_the_oracle(api: TestClient, oracle: Oracle):
    kind = "commune_public_library"
    body = ok(api.get("/v1/visits", params={"scheme": "legacy", "library_type": kind, "start": START.isoformat(),
                                            "granularity": "year"}))
    assert unmarked(body["series"]) == oracle.visits(Area("legacy"), START, TODAY, "year", library_type=kind)
    assert body["library_type"] == kind and body["series"]
    # Mobile sessions of the libraries of a type: the oracle's per-library answers, summed.
    registry = oracle.registry(None)
    expected: dict[str, dict[str, int]] = {}
    for library_id, entry in sorted(registry.items()):
        if entry.library_type != kind:
            continue
        for row in oracle.mobile_sessions(Area("2025", library_id=library_id), START, TODAY, "year"):
            into = expected.setdefault(row["period"], {k: 0 for k in row if k != "period"})
            for k, v in row.items():
                if k != "period":
                    into[k] += v
    body = ok(api.get("/v1/mobile-sessions", params={"scheme": "2025", "library_type": kind,
                                                     "start": START.isoformat(), "granularity": "year"}))
    assert unmarked(body["series"]) == [{"period": p, **v} for p, v in sorted(expected.items())]


@pytest.mark.parametrize("year", [2025, TODAY.year])
def test_indicators_and_growth_equal_the_oracle(api: TestClient, oracle: Oracle, year: int):
    for area in AREAS:
        as_of = min(date(year, 12, 31), UNTIL)
        body = ok(api.get("/v1/indicators", params={**params_of(area), "year": year, "as_of": as_of.isoformat()}))
        assert unmarked_figures(body["indicators"]) == oracle.indicators(area, year, as_of), (area, year)
        assert (body["year"], body["as_of"]) == (year, as_of.isoformat())
        for name, indicator in body["indicators"].items():
            assert set(indicator) == {"value", "numerator", "denominator", "target", "on_track", "status"}, name
        growth = ok(api.get("/v1/growth", params={**params_of(area), "year": year}))
        assert unmarked_figures({k: v for k, v in growth.items() if k not in ("area", "library_type")}
                                ) == oracle.growth(area, year)
        growth = ok(api.get("/v1/growth", params={**params_of(area), "year": year, "baseline_year": 2024}))
        assert unmarked_figures(growth["cagr"]) == oracle.growth(area, year, 2024)["cagr"]
    default = ok(api.get("/v1/indicators", params={"scheme": "legacy", "province": "02", "year": 2025}))
    assert default["as_of"] == "2025-12-31"
    assert unmarked_figures(default["indicators"]) == oracle.indicators(Area("legacy", "02"), 2025, date(2025, 12, 31))


def test_the_registry_equals_the_oracle(api: TestClient, oracle: Oracle):
    for as_of in (date(2025, 6, 30), UNTIL):
        items, _ = walk(api, "/v1/libraries", {"as_of": as_of.isoformat()}, 1000)
        expected = oracle.registry(as_of)
        assert [i["library_id"] for i in items] == sorted(expected)
        for item in items:
            entry = expected[item["library_id"]]
            assert (item["library_type"], item["status"], item["model_joined_on"]) == (
                entry.library_type, entry.status, entry.model_joined_on and entry.model_joined_on.isoformat())
            assert item["operating"] == entry.operating(as_of)
            assert item["in_model"] == (entry.operating(as_of) and entry.model_joined_on is not None
                                        and entry.model_joined_on <= as_of)
            for scheme in ("legacy", "2025"):
                codes, here = item["areas"][scheme], entry.area(scheme)  # type: ignore[arg-type]
                assert (codes["province_code"], codes["commune_code"]) == (here.province_code, here.commune_code)
                assert codes["province_name_vi"] == REFERENCE.province(scheme, here.province_code).name_vi
                assert codes["commune_name_en"] == REFERENCE.commune(scheme, here.commune_code).name_en
            assert item["name_vi"] and item["name_en"]
    new = [i for i in items if i["library_id"].startswith("LIB-NEW-")]
    assert new, "the samples register new libraries"
    # Filters: an area, a type, membership of the model.
    ha_giang, _ = walk(api, "/v1/libraries", {"scheme": "legacy", "province": "02"}, 1000)
    assert ha_giang and all(i["areas"]["legacy"]["province_code"] == "02" for i in ha_giang)
    in_model, _ = walk(api, "/v1/libraries", {"in_model": "true", "library_type": "commune_public_library"}, 1000)
    assert all(i["in_model"] and i["library_type"] == "commune_public_library" for i in in_model)


def test_reference_areas_are_listed_with_both_names(api: TestClient):
    provinces = ok(api.get("/v1/areas", params={"scheme": "2025"}))["items"]
    assert [(p["code"], p["name_vi"]) for p in provinces] == [
        (p.code, p.name_vi) for p in REFERENCE.provinces_in("2025")] and len(provinces) == 10
    communes, pages = walk(api, "/v1/areas", {"scheme": "legacy", "level": "commune"}, 300)
    assert pages > 1 and [c["code"] for c in communes] == [c.code for c in REFERENCE.communes_in("legacy")]
    first = REFERENCE.communes_in("legacy")[0]
    assert communes[0] | {} == {
        "scheme": "legacy", "level": "commune", "code": first.code, "name_vi": first.name_vi,
        "name_en": first.name_en, "province_code": first.province_code,
        "province_name_vi": REFERENCE.province("legacy", first.province_code).name_vi,
        "province_name_en": REFERENCE.province("legacy", first.province_code).name_en,
        "district_name_vi": first.district_name_vi, "in_programme": True}
    tq = ok(api.get("/v1/areas", params={"scheme": "2025", "level": "commune", "province": "08",
                                         "in_programme": "true"}))["items"]
    assert tq and all(c["province_code"] == "08" and c["in_programme"] for c in tq)


def test_rotation_answers_agree_with_the_store_and_with_each_other(api: TestClient, loaded: EmbeddedStack):
    as_of, loan_days = UNTIL, 90
    batches, _ = walk(api, "/v1/rotation/batches", {"scheme": "2025", "as_of": as_of.isoformat()}, 1000)
    stored = rotation_store.batches(loaded.store, AreaFilter("2025"), as_of)
    assert [b["batch_id"] for b in batches] == [b["batch_id"] for b in stored] and len(batches) > 10
    for got, row in zip(batches, stored, strict=True):
        assert got["status"] == row["status"] and got["copies"] == row["copies"]
        assert got["holder"]["library_id"] == row["library_id"] and got["holder"]["name_vi"]
        assert got["areas"]["2025"]["province_code"] == row["province_2025"]
        assert got["in_transit"] == (row["status"] == "dispatched")
        assert got["overdue"] == (row["status"] != "returned" and (as_of - row["dispatched_on"]).days > loan_days)
        assert got["origin_province"]["scheme"] == "2025" and got["origin_province"]["name_vi"]
    assert {b["status"] for b in batches} >= {"received", "returned"}

    for flag in ("in_transit", "overdue"):
        chosen, _ = walk(api, "/v1/rotation/batches", {"scheme": "2025", "as_of": as_of.isoformat(), flag: "true"},
                         1000)
        assert [b["batch_id"] for b in chosen] == [b["batch_id"] for b in batches if b[flag]]
    received, _ = walk(api, "/v1/rotation/batches", {"as_of": as_of.isoformat(), "status": "received"}, 1000)
    assert [b["batch_id"] for b in received] == [b["batch_id"] for b in batches if b["status"] == "received"]

    provinces = ok(api.get("/v1/rotation/provinces", params={"scheme": "2025", "as_of": as_of.isoformat()}))["items"]
    for row in provinces:
        mine = [b for b in batches if b["areas"]["2025"]["province_code"] == row["province_code"]]
        assert row["batches_dispatched"] == len(mine) and row["copies_dispatched"] == sum(b["copies"] for b in mine)
        assert row["batches_overdue"] == sum(b["overdue"] for b in mine)
        assert row["copies_lost"] == sum(b["copies_lost"] for b in mine)
        assert row["loss_rate"] == (row["copies_lost"] / row["copies_dispatched"] if row["copies_dispatched"] else None)
        assert row["name_vi"] == REFERENCE.province("2025", row["province_code"]).name_vi
    assert sum(r["batches_dispatched"] for r in provinces) == len(batches)
    [one] = ok(api.get("/v1/rotation/provinces", params={"scheme": "2025", "province": "08",
                                                         "as_of": as_of.isoformat()}))["items"]
    assert one == next(r for r in provinces if r["province_code"] == "08")

    on_hand, _ = walk(api, "/v1/rotation/libraries", {"scheme": "2025", "as_of": as_of.isoformat()}, 1000)
    holding = sorted({b["holder"]["library_id"] for b in batches if b["status"] == "received"})
    assert [r["library_id"] for r in on_hand] == holding
    for row in on_hand:
        assert row["batches_on_hand"] == sum(1 for b in batches if b["status"] == "received"
                                             and b["holder"]["library_id"] == row["library_id"])
        assert row["name_vi"] and row["areas"]["legacy"]["province_name_vi"]


def test_rejections_newest_first(api: TestClient, loaded: EmbeddedStack):
    if "rejections" not in loaded.store.tables():
        pytest.skip("no rejections table (migration 008_rejections.sql)")
    now = datetime.now(TIMEZONE).replace(microsecond=0)
    rows = [[f"rej-test-{n}", form, f"uuid:rej-{n}", 400, "negative_count", "Số âm", "Negative count",
             "doi-hg-01", now - timedelta(minutes=n)] for n, form in enumerate(("visit_log", "donation", "visit_log"))]
    loaded.store.insert_rows("rejections", ["rejection_id", "form_id", "instance_id", "status", "reason_code",
                                            "reason_vi", "reason_en", "submitter", "received_at"], rows)
    every = ok(api.get("/v1/rejections", params={"limit": 10_000}))
    assert [r["received_at"] for r in every] == sorted((r["received_at"] for r in every), reverse=True)
    mine = [r for r in every if r["rejection_id"].startswith("rej-test-")]
    assert [r["rejection_id"] for r in mine] == ["rej-test-0", "rej-test-1", "rej-test-2"]
    assert mine[0] | {} == mine[0] and mine[0]["reason_vi"] == "Số âm" and mine[0]["status"] == 400
    assert ok(api.get("/v1/rejections", params={"limit": 1})) == every[:1]
    donations = ok(api.get("/v1/rejections", params={"form_id": "donation", "limit": 10_000}))
    assert "rej-test-1" in [r["rejection_id"] for r in donations] and {r["form_id"] for r in donations} == {
        "donation"}


def test_me_names_the_key(api: TestClient):
    me = ok(api.get("/v1/me"))
    assert (me["name"], me["read_all"], me["admin"]) == ("demo", True, True)
    # The demo key approves every programme province (2025 scheme, so the legacy ones inside too) and
    # accepts at the region level: the demo shows approval of periods.
    mapping = province_mapping()
    assert me["approves"] == {"2025": sorted(set(mapping.values())), "legacy": sorted(mapping)}
    assert me["approves_region"] is True
    assert [p["code"] for p in me["provinces"]["2025"]] == [p.code for p in REFERENCE.provinces_in("2025")]


# --- CSV ---------------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def _json_rows(api: TestClient, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    body = ok(api.get(path, params=params))
    if isinstance(body, list):
        return body
    if "next_page_token" in body:
        return walk(api, path, params, 7)[0]
    if "series" in body:
        return body["series"]
    if "items" in body:
        return body["items"]
    if "indicators" in body:
        return [{"indicator": name, **values} for name, values in body["indicators"].items()]
    # growth: one row (its approvals, a list, are JSON's; the CSV row carries the status)
    return [{k: v for k, v in body.items() if k not in ("area", "library_type", "approvals")}]


CSV_CASES = [
    ("/v1/visits", {"scheme": "legacy", "province": "02", "start": START.isoformat()}),
    ("/v1/indicators", {"scheme": "2025", "province": "08", "year": 2025}),
    ("/v1/growth", {"scheme": "legacy", "year": 2025}),
    ("/v1/mobile-sessions", {"scheme": "2025", "start": START.isoformat()}),
    ("/v1/reading-promotion", {"start": START.isoformat(), "granularity": "quarter"}),
    ("/v1/training", {"start": START.isoformat(), "granularity": "year"}),
    ("/v1/donations", {"start": START.isoformat()}),
    ("/v1/rotation/batches", {"scheme": "2025"}),
    ("/v1/rotation/libraries", {"scheme": "2025"}),
    ("/v1/rotation/provinces", {"scheme": "legacy"}),
    ("/v1/libraries", {"scheme": "legacy"}),
    ("/v1/areas", {"scheme": "legacy", "level": "commune", "province": "02"}),
    ("/v1/dead-letters", {"include_resolved": "true"}),
    ("/v1/rejections", {}),
]


@pytest.mark.parametrize(("path", "params"), CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_csv_equals_json_row_for_row_and_is_streamed(api: TestClient, path: str, params: dict[str, Any]):
    rows = _json_rows(api, path, params)
    for response in (api.get(path, params={**params, "format": "csv"}),
                     api.get(path, params=params, headers={"Accept": "text/csv"})):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert "content-length" not in response.headers  # streamed, not built then sent
        assert response.content.startswith("\ufeff".encode())  # Excel reads UTF-8 with a BOM
        text = response.content.decode("utf-8").removeprefix("\ufeff")
        header, *lines = list(csv.reader(io.StringIO(text)))
        assert len(lines) == len(rows), path
        if rows:
            assert header == list(_flat(rows[0])), path
        for line, row in zip(lines, rows, strict=True):
            assert dict(zip(header, line, strict=True)) == {k: _cell(v) for k, v in _flat(row).items()}
    if path == "/v1/areas":
        assert "Hà Giang" in text  # Vietnamese survives


def test_a_long_csv_has_every_row(api: TestClient):
    """No row cap, whatever the JSON page size: every legacy commune."""
    response = api.get("/v1/areas", params={"scheme": "legacy", "level": "commune", "format": "csv",
                                            "page_size": 5})
    lines = response.content.decode("utf-8").removeprefix("\ufeff").splitlines()
    assert len(lines) == 1 + len(REFERENCE.communes_in("legacy"))


def test_answers_match_the_published_openapi_document(api: TestClient):
    document = api.get("/openapi.json").json()
    cases = [*CSV_CASES, ("/v1/me", {}), ("/v1/libraries", {"scheme": "2025", "library": HA_GIANG.library_id}),
             ("/v1/visits", {"scheme": "legacy", "commune": HA_GIANG.area("legacy").commune_code})]
    for path, params in cases:
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        schema = {**content["application/json"]["schema"], "components": document["components"]}
        body = ok(api.get(path, params=params))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(body)]
        assert not errors, (path, errors[:5])
    problem = api.get("/v1/visits", params={"province": "99"})
    schema = document["paths"]["/v1/visits"]["get"]["responses"]["404"]["content"]["application/problem+json"]
    Draft202012Validator(schema["schema"]).validate(problem.json())


# --- pagination --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "params", "key"), [
    ("/v1/rotation/batches", {"scheme": "legacy"}, "batch_id"),
    ("/v1/libraries", {}, "library_id"),
    ("/v1/rotation/libraries", {}, "library_id"),
    ("/v1/areas", {"scheme": "2025", "level": "commune"}, "code"),
])
def test_pagination_walks_a_list_completely(api: TestClient, path: str, params: dict[str, Any], key: str):
    everything = ok(api.get(path, params={**params, "page_size": 1000}))
    if everything["next_page_token"]:
        everything["items"] = walk(api, path, params, 1000)[0]
    full = [item[key] for item in everything["items"]]
    size = max(1, len(full) // 4 - 1)
    seen, token, pages = [], None, 0
    while True:
        response = api.get(path, params={**params, "page_size": size, **({"page_token": token} if token else {})})
        body = ok(response)
        assert len(body["items"]) <= size
        seen += [item[key] for item in body["items"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            assert "link" not in response.headers
            break
        link = response.headers["link"]
        assert link.endswith('>; rel="next"') and f"page_token={token}" in link
        # The Link header is the next page as it stands.
        following = ok(api.get(link[1:link.index(">")]))
        assert following["items"] == ok(api.get(path, params={**params, "page_size": size,
                                                               "page_token": token}))["items"]
    assert seen == full and len(set(seen)) == len(seen) and pages >= min(4, len(full)) and full


def test_a_page_token_is_tied_to_its_query(api: TestClient):
    first = ok(api.get("/v1/libraries", params={"scheme": "legacy", "page_size": 3}))
    token = first["next_page_token"]
    # Another page size is fine; another filter or another list is not.
    assert ok(api.get("/v1/libraries", params={"scheme": "legacy", "page_size": 5, "page_token": token}))["items"]
    for path, params in (("/v1/libraries", {"scheme": "2025"}), ("/v1/rotation/batches", {"scheme": "legacy"})):
        refused = api.get(path, params={**params, "page_token": token})
        assert refused.status_code == 400 and refused.json()["invalid_params"][0]["name"] == "page_token"


# --- HTTP caching ------------------------------------------------------------------------------------

def test_etag_and_not_modified(api: TestClient):
    params = {"scheme": "legacy", "province": "02", "start": START.isoformat()}
    first = api.get("/v1/visits", params=params)
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "private, max-age=60"
    again = api.get("/v1/visits", params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert api.get("/v1/visits", params=params, headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    assert api.get("/v1/visits", params=params, headers={"If-None-Match": '"other"'}).status_code == 200
    other = api.get("/v1/visits", params={**params, "granularity": "year"})
    assert other.headers["etag"] != etag
    csv_etag = api.get("/v1/visits", params={**params, "format": "csv"}).headers["etag"]
    assert csv_etag != etag
    assert api.get("/v1/visits", params={**params, "format": "csv"},
                   headers={"If-None-Match": csv_etag}).status_code == 304
    for path in ("/v1/indicators", "/v1/rotation/batches", "/v1/libraries", "/v1/areas"):
        response = api.get(path)
        assert response.status_code == 200 and response.headers["etag"], path
        assert api.get(path, headers={"If-None-Match": response.headers["etag"]}).status_code == 304, path
    assert api.get("/v1/dead-letters").headers["cache-control"] == "no-store"


def test_an_etag_changes_when_the_data_does(api: TestClient, loaded: EmbeddedStack):
    params = {"scheme": "legacy", "library": HA_GIANG.library_id, "granularity": "day",
              "start": (TODAY - timedelta(days=3)).isoformat()}
    before = api.get("/v1/visits", params=params).headers["etag"]
    from services.tools.submissions import fill_instance, multipart
    from tests.conftest import OPENROSA, visit_answers

    intake = TestClient(loaded.app, headers=OPENROSA)
    xml = fill_instance(intake.get("/forms/visit_log.xml").content,
                        visit_answers(HA_GIANG, TODAY - timedelta(days=1), total=8), "uuid:etag-changes")
    assert intake.post("/submission", files=multipart(xml)).status_code == 201
    after = api.get("/v1/visits", params=params, headers={"If-None-Match": before})
    assert after.status_code == 200 and after.headers["etag"] != before


# --- problem details ---------------------------------------------------------------------------------

OTHER_COMMUNE = REFERENCE.communes_in("legacy", "04")[0].code
PROBLEMS = [
    ("/v1/visits", {"granularity": "week"}, 400, "granularity"),
    ("/v1/visits", {"scheme": "1999"}, 400, "scheme"),
    ("/v1/visits", {"province": "2"}, 400, "province"),
    ("/v1/visits", {"scheme": "2025", "province": "02"}, 404, "province"),  # Hà Giang is no more
    ("/v1/visits", {"scheme": "legacy", "commune": "99999"}, 404, "commune"),
    ("/v1/visits", {"scheme": "legacy", "province": "02", "commune": OTHER_COMMUNE}, 400, "commune"),
    ("/v1/visits", {"start": "2026-05-01", "end": "2026-04-01"}, 400, "start"),
    ("/v1/visits", {"start": "1900-01-01"}, 400, "start"),
    ("/v1/visits", {"end": "2025-02-30"}, 400, "end"),
    ("/v1/visits", {"library": "LIB-XX-9999"}, 404, "library"),
    ("/v1/visits", {"library": HA_GIANG.library_id, "province": "04"}, 400, "library"),
    ("/v1/visits", {"library_type": "palace"}, 400, "library_type"),
    ("/v1/visits", {"provnce": "02"}, 400, "provnce"),
    ("/v1/visits", {"format": "xml"}, 400, "format"),
    ("/v1/indicators", {"year": "1999"}, 400, "year"),
    ("/v1/indicators", {"year": str(TODAY.year + 1)}, 400, "year"),
    ("/v1/indicators", {"year": "2025", "as_of": "2024-05-01"}, 400, "as_of"),
    ("/v1/growth", {"year": "2025", "baseline_year": "2025"}, 400, "baseline_year"),
    ("/v1/reading-promotion", {"occasion": "christmas"}, 400, "occasion"),
    ("/v1/donations", {"donor_kind": "government"}, 400, "donor_kind"),
    ("/v1/rotation/batches", {"page_token": "not-a-token"}, 400, "page_token"),
    ("/v1/rotation/batches", {"page_size": "0"}, 400, "page_size"),
    ("/v1/rotation/batches", {"status": "lost"}, 400, "status"),
    ("/v1/rotation/batches", {"as_of": "yesterday"}, 400, "as_of"),
    ("/v1/rotation/provinces", {"commune": "00688"}, 400, "commune"),  # not a filter of that list
    ("/v1/areas", {"level": "district"}, 400, "level"),
    ("/v1/libraries", {"status": "open"}, 400, "status"),
    ("/v1/dead-letters", {"limit": "0"}, 400, "limit"),
    ("/v1/dead-letters/no-such-letter", {}, 404, "dead_letter_id"),
]


@pytest.mark.parametrize(("path", "params", "status", "name"), PROBLEMS,
                         ids=[f"{p}-{n}-{s}" for p, _, s, n in PROBLEMS])
def test_each_bad_parameter_is_a_problem_naming_it(api: TestClient, path, params, status, name):
    response = api.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["instance"] == path
    assert body["invalid_params"][0]["name"] == name and body["invalid_params"][0]["reason"]


def test_unknown_paths_are_problems_too(api: TestClient):
    response = api.get("/v1/no-such-thing")
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
