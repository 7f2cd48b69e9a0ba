"""``GET /v1/dashboard``, the dashboard page's one request per view: each part equals what the
separate endpoints answer (for the region and a province under both schemes, with a read:all key
and with province keys), a province key reads no other province through it, and it is cached
like the other aggregates (ETag, 304).

Data: every form's samples posted through the intake, with edits and retractions (``_post_all`` of
tests/test_store_vs_oracle.py), rotation batches included; keys from a file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from services.bootstrap import EmbeddedStack
from services.query.access import add_key
from tests.compare import UNTIL
from tests.query_clients import as_, every, ok
from tests.test_store_vs_oracle import loaded_stack

YEAR = UNTIL.year


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard-keys") / "api-keys.json"


@pytest.fixture(scope="module")
def keys(keys_file: Path) -> dict[str, str]:
    return {"all": add_key(keys_file, "bo-vh", ["read:all"]),
            "hg": add_key(keys_file, "so-vh-ha-giang", ["read:province:legacy:02"]),
            "tq": add_key(keys_file, "so-vh-tuyen-quang", ["read:province:2025:08"])}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, forms_dir: Path, keys_file: Path,
           keys: dict[str, str]) -> Iterator[EmbeddedStack]:
    with loaded_stack(tmp_path_factory.mktemp("dashboard-api"), forms_dir, 13,
                      api_keys_file=str(keys_file)) as stack:
        yield stack


def separately(client: TestClient, scheme: str, province: str | None, year: int) -> dict[str, Any]:
    """The dashboard's figures as the page used to gather them: one request per endpoint, province
    by province where a key reads only some."""
    area = {"scheme": scheme, **({"province": province} if province else {})}
    reached = [p["code"] for p in every(client, "/v1/areas", {"scheme": scheme, "level": "province"})]
    rotation, in_transit, on_hand = [], Counter(), Counter()
    for code in reached:
        rotation += ok(client.get("/v1/rotation/provinces", params={"scheme": scheme, "province": code}))["items"]
        for batch in every(client, "/v1/rotation/batches", {"scheme": scheme, "province": code}):
            in_transit[code] += batch["in_transit"]
            on_hand[code] += batch["status"] == "received"
    in_model = {lib["areas"][scheme]["commune_code"] for lib in every(client, "/v1/libraries", {"scheme": scheme})
                if lib["in_model"]}
    communes, with_model = Counter(), Counter()
    for commune in every(client, "/v1/areas", {"scheme": scheme, "level": "commune"}):
        communes[commune["province_code"]] += 1
        with_model[commune["province_code"]] += commune["code"] in in_model
    return {
        "indicators": ok(client.get("/v1/indicators", params={**area, "year": year})),
        "visits": ok(client.get("/v1/visits", params={**area, "start": f"{year - 1}-01-01", "end": f"{year}-12-31",
                                                      "granularity": "month"})),
        "growth": ok(client.get("/v1/growth", params={**area, "year": year})),
        "provinces": [ok(client.get("/v1/indicators", params={"scheme": scheme, "province": code, "year": year}))
                      for code in reached],
        "rotation": [row | {"batches_in_transit": in_transit[row["province_code"]],
                            "batches_on_hand": on_hand[row["province_code"]]} for row in rotation],
        "communes": [{"province_code": code, "communes": communes[code], "with_model": with_model[code]}
                     for code in sorted(communes)],
    }


def together(client: TestClient, scheme: str, province: str | None, year: int) -> dict[str, Any]:
    body = ok(client.get("/v1/dashboard", params={"scheme": scheme, "year": year,
                                                 **({"province": province} if province else {})}))
    assert body["area"] == body["indicators"]["area"] and body["year"] == year
    return {name: body[name] for name in ("indicators", "visits", "growth", "provinces")} | {
        "rotation": body["rotation"]["items"], "communes": body["communes"]["items"]}


@pytest.mark.parametrize(("scheme", "province"), [("legacy", None), ("legacy", "02"), ("2025", None),
                                                  ("2025", "08")])
def test_the_one_answer_equals_the_separate_endpoints(loaded: EmbeddedStack, keys: dict[str, str], scheme: str,
                                                      province: str | None):
    client = as_(loaded, keys["all"])
    for year in (YEAR, YEAR - 1):
        expected = separately(client, scheme, province, year)
        assert together(client, scheme, province, year) == expected, (scheme, province, year)
    # The data is there to compare: visits in both years, rotation, communes with a model.
    assert expected["visits"]["series"] and expected["rotation"] and expected["provinces"]
    assert sum(row["with_model"] for row in expected["communes"]) > 0
    assert sum(row["batches_in_transit"] + row["batches_on_hand"] for row in expected["rotation"]) > 0


def test_a_province_key_reads_its_provinces_and_nothing_else_through_it(loaded: EmbeddedStack,
                                                                        keys: dict[str, str]):
    hg, tq = as_(loaded, keys["hg"]), as_(loaded, keys["tq"])
    for client, params, name in (
            (hg, {"scheme": "legacy"}, "province"),  # the whole region
            (hg, {"scheme": "legacy", "province": "04"}, "province"),
            (hg, {"scheme": "2025", "province": "08"}, "province"),  # today's Tuyên Quang also holds legacy 08
            (tq, {"scheme": "legacy", "province": "04"}, "province"),
            (tq, {"scheme": "2025"}, "province")):
        refused = client.get("/v1/dashboard", params=params)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json", params
        assert refused.json()["invalid_params"][0]["name"] == name

    mine = together(hg, "legacy", "02", YEAR)
    assert mine == separately(hg, "legacy", "02", YEAR)
    assert [b["area"]["code"] for b in mine["provinces"]] == ["02"]
    assert {r["province_code"] for r in mine["rotation"]} <= {"02"}
    assert [r["province_code"] for r in mine["communes"]] == ["02"]

    # A 2025 key reads the legacy provinces that lie wholly inside its province, and only those.
    theirs = together(tq, "legacy", "08", YEAR)
    assert theirs == separately(tq, "legacy", "08", YEAR)
    assert [b["area"]["code"] for b in theirs["provinces"]] == ["02", "08"]
    assert {r["province_code"] for r in theirs["rotation"]} <= {"02", "08"}
    assert [r["province_code"] for r in theirs["communes"]] == ["02", "08"]


def test_it_is_cached_like_the_other_aggregates(loaded: EmbeddedStack, keys: dict[str, str]):
    client = as_(loaded, keys["all"])
    params = {"scheme": "legacy", "province": "02", "year": YEAR}
    first = client.get("/v1/dashboard", params=params)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "private, max-age=60" and "Authorization" in first.headers["vary"]
    again = client.get("/v1/dashboard", params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get("/v1/dashboard", params={**params, "province": "04"},
                      headers={"If-None-Match": etag}).status_code == 200


def test_the_answer_matches_the_published_openapi_document(loaded: EmbeddedStack, keys: dict[str, str]):
    client = as_(loaded, keys["all"])
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/dashboard"]["get"]
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {"scheme", "province", "year"}
    assert "Bảng theo dõi" in operation["description"] and "text/csv" not in operation["responses"]["200"]["content"]
    schema = {**operation["responses"]["200"]["content"]["application/json"]["schema"],
              "components": document["components"]}
    for params in ({"scheme": "legacy"}, {"scheme": "2025", "province": "08", "year": YEAR - 1}):
        body = ok(client.get("/v1/dashboard", params=params))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(body)]
        assert not errors, (params, errors[:5])


@pytest.mark.parametrize(("params", "status", "name"), [
    ({"province": "99"}, 404, "province"),
    ({"year": str(UNTIL.year + 2)}, 400, "year"),
    ({"province": "2"}, 400, "province"),
    ({"scheme": "1990"}, 400, "scheme"),
    ({"format": "csv"}, 400, "format"),  # JSON only: an unknown parameter
])
def test_bad_parameters_are_problems_naming_them(loaded: EmbeddedStack, keys: dict[str, str],
                                                  params: dict[str, str], status: int, name: str):
    response = as_(loaded, keys["all"]).get("/v1/dashboard", params=params)
    assert response.status_code == status and response.headers["content-type"] == "application/problem+json"
    assert response.json()["invalid_params"][0]["name"] == name
