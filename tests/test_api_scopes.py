"""API keys and scopes of the query API: a province key reads its province and nothing else, by
any endpoint and any filter (every /v1 path of the OpenAPI document is tried); admin endpoints
refuse read keys; keys live in a file as hashes and take effect without a restart."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, embedded_stack, query_app
from services.clock import today_local
from services.config import Settings
from services.domain.reference import default_reference
from services.query.access import add_key, hash_key, main, revoke_key
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, library_of, visit_answers

REFERENCE = default_reference()
ADMIN_PATHS = {"/v1/dead-letters", "/v1/dead-letters/{dead_letter_id}", "/v1/rejections", "/v1/central-pull"}
LISTS = {"/v1/areas", "/v1/libraries"}  # filtered to the key's reach rather than refused
# Scopes approve:… (tests/test_approvals.py): the list is filtered to the key, the queue needs the province's.
APPROVAL_PATHS = {"/v1/approvals", "/v1/approvals/{approval_id}/queue"}
# Parts of an answer listing the provinces of the scheme, filtered to the key's reach (tests/test_dashboard_api.py).
SCHEME_WIDE = {"/v1/dashboard": ("provinces", "rotation", "communes")}
# What a path requires besides the area (a report is for a month), and the paths answering a file, not JSON.
REQUIRED = {"/v1/reports/province": {"period": f"{today_local():%Y-%m}"}}
FILES = {"/v1/reports/province"}


HG, CB = library_of("02"), library_of("04")  # Hà Giang (now in Tuyên Quang 08), Cao Bằng
# 2025 communes of Tuyên Quang (08): one made only of former Hà Giang communes, one holding former Tuyên Quang.
_TQ = [(c.code, {p.province_code for p in REFERENCE.legacy_communes_of(c.code)})
       for c in REFERENCE.communes_in("2025", "08")]
ONLY_HA_GIANG = next(code for code, olds in _TQ if olds == {"02"})
WITH_TUYEN_QUANG = next(code for code, olds in _TQ if "08" in olds)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "api-keys.json"


@pytest.fixture(scope="module")
def keys(keys_file: Path) -> dict[str, str]:
    return {
        "hg": add_key(keys_file, "so-vh-ha-giang", ["read:province:legacy:02"]),
        "tq": add_key(keys_file, "so-vh-tuyen-quang", ["read:province:2025:08"]),
        "two": add_key(keys_file, "hai-tinh", ["read:province:legacy:12", "read:province:2025:24"]),
        "all": add_key(keys_file, "bo-vh", ["read:all"]),
        "ops": add_key(keys_file, "dieu-hanh", ["admin"]),
    }


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, forms_dir: Path, keys_file: Path,
            keys: dict[str, str]) -> Iterator[EmbeddedStack]:
    root = tmp_path_factory.mktemp("scopes")
    shutil.copytree(forms_dir, root / "forms")
    stack = embedded_stack(Settings.from_env(bus="embedded", store_dsn=f"chdb://{root / 'store'}",
                                             state_dir=root / "state", forms_dir=root / "forms",
                                             api_keys_file=str(keys_file)))
    try:
        intake = TestClient(stack.app, headers=OPENROSA)
        xform = intake.get("/forms/visit_log.xml").content
        for n, library in enumerate((HG, CB, HG)):
            xml = fill_instance(xform, visit_answers(library, today_local() - timedelta(days=n + 1), total=10 + n),
                                f"uuid:scope-{n}")
            assert intake.post("/submission", files=multipart(xml)).status_code == 201
        yield stack
    finally:
        stack.close()


def as_(stack: EmbeddedStack, key: str | None, header: str = "bearer", address: str = "testclient") -> TestClient:
    if key is None:
        return TestClient(stack.app, client=(address, 50000))
    return TestClient(stack.app, headers={"Authorization": f"Bearer {key}"} if header == "bearer"
                      else {"X-API-Key": key}, client=(address, 50000))


def v1_paths(stack: EmbeddedStack) -> dict[str, set[str]]:
    """Every GET path under /v1 in the published OpenAPI document, with its query parameters."""
    document = TestClient(stack.app).get("/openapi.json").json()
    return {path: {p["name"] for p in ops["get"].get("parameters", []) if p["in"] == "query"}
            for path, ops in document["paths"].items() if path.startswith("/v1/") and "get" in ops}


def url(path: str) -> str:
    return path.replace("{dead_letter_id}", "no-such-letter").replace("{approval_id}", "no-such-approval")


def refused(response, status: int = 403, name: str | None = None) -> bool:
    assert response.status_code == status, (response.request.url, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    if name:
        assert response.json()["invalid_params"][0]["name"] == name, response.text
    return True


def test_the_loop_below_covers_every_endpoint(secured: EmbeddedStack):
    assert set(v1_paths(secured)) == {
        "/v1/me", "/v1/indicators", "/v1/visits", "/v1/growth", "/v1/mobile-sessions", "/v1/reading-promotion",
        "/v1/training", "/v1/donations", "/v1/rotation/batches", "/v1/rotation/libraries", "/v1/rotation/provinces",
        "/v1/libraries", "/v1/areas", "/v1/dashboard", "/v1/dead-letters", "/v1/dead-letters/{dead_letter_id}",
        "/v1/rejections", "/v1/central-pull", "/v1/lineage/visits", "/v1/lineage/growth", "/v1/lineage/k1",
        *APPROVAL_PATHS, "/v1/reports/province", "/v1/data-quality"}


def test_no_key_or_an_unknown_key_gets_401_everywhere(secured: EmbeddedStack):
    for n, path in enumerate(v1_paths(secured)):
        address = f"10.0.0.{n}"  # one address per path: more wrong keys from one address are braked (429)
        for client in (as_(secured, None, address=address), as_(secured, "tvk_not-a-key", address=address),
                       as_(secured, "tvk_not-a-key", "header", address=address)):
            response = client.get(url(path))
            assert refused(response, 401, "Authorization") and response.headers["www-authenticate"].startswith(
                "Bearer")
    basic = TestClient(secured.app, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert refused(basic.get("/v1/visits"), 401)


def test_operations_and_documents_stay_open(secured: EmbeddedStack):
    bare = TestClient(secured.app)
    for path in ("/health", "/metrics", "/openapi.json", "/docs"):
        assert bare.get(path).status_code == 200, path
    schemes = bare.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["bearerKey"]["scheme"] == "bearer" and schemes["apiKeyHeader"]["name"] == "X-API-Key"


def test_a_province_key_reads_nothing_outside_its_province_by_any_endpoint_or_filter(
        secured: EmbeddedStack, keys: dict[str, str]):
    hg, everyone = as_(secured, keys["hg"]), as_(secured, keys["all"], "header")
    outside: list[tuple[dict[str, str], str]] = [
        ({"scheme": "legacy", "province": "04"}, "province"),
        ({"scheme": "2025", "province": "08"}, "province"),  # today's Tuyên Quang also holds legacy 08
        ({"scheme": "legacy", "commune": REFERENCE.communes_in("legacy", "04")[0].code}, "commune"),
        ({"scheme": "legacy", "commune": REFERENCE.communes_in("legacy", "08")[0].code}, "commune"),
        ({"scheme": "2025", "commune": WITH_TUYEN_QUANG}, "commune"),
        ({"scheme": "legacy", "library": CB.library_id}, "library"),
        ({"scheme": "2025", "library": CB.library_id}, "library"),
    ]
    inside = [{"scheme": "legacy", "province": "02"},
              {"scheme": "legacy", "commune": HG.area("legacy").commune_code},
              {"scheme": "2025", "commune": ONLY_HA_GIANG},
              {"scheme": "legacy", "library": HG.library_id}, {"scheme": "2025", "library": HG.library_id}]
    tried = 0
    for path, names in v1_paths(secured).items():
        if path == "/v1/me":
            continue
        if path in APPROVAL_PATHS:
            assert hg.get(url(path)).status_code in (200, 404)  # its list (empty here), or no such approval
            continue
        if path in ADMIN_PATHS:
            assert refused(hg.get(url(path)), 403)
            continue
        required = REQUIRED.get(path, {})
        region = hg.get(url(path), params=required)
        if path in LISTS:
            assert region.status_code == 200, region.text
        else:
            assert refused(region, 403, "province")  # the whole region
            assert refused(hg.get(url(path), params={**required, "scheme": "2025"}), 403, "province")
        for params, name in outside:
            if set(params) - {"scheme"} <= names:
                assert refused(hg.get(url(path), params={**required, **params}), 403, name)
                tried += 1
        for params in inside:
            if set(params) - {"scheme"} <= names:
                mine = hg.get(url(path), params={**required, **params})
                assert mine.status_code == 200, (path, params, mine.text)
                tried += 1
                if path in FILES:  # made for its reader (the key's name is in it): the same kind of file
                    theirs = everyone.get(url(path), params={**required, **params})
                    assert theirs.headers["content-type"] == mine.headers["content-type"], (path, params)
                    continue
                # What it reads is exactly what a read:all key reads there.
                ours, theirs = mine.json(), everyone.get(url(path), params=params).json()
                for part in SCHEME_WIDE.get(path, ()):
                    del ours[part], theirs[part]
                assert ours == theirs, (path, params)
    assert tried > 80


def test_lists_are_filtered_to_the_key(secured: EmbeddedStack, keys: dict[str, str]):
    hg, tq, two = as_(secured, keys["hg"]), as_(secured, keys["tq"]), as_(secured, keys["two"])

    def codes(client: TestClient, **params: Any) -> list[str]:
        response = client.get("/v1/areas", params=params)
        assert response.status_code == 200, response.text
        return [item["code"] for item in response.json()["items"]]

    assert codes(hg, scheme="legacy") == ["02"] and codes(hg, scheme="2025") == []
    assert codes(tq, scheme="legacy") == ["02", "08"] and codes(tq, scheme="2025") == ["08"]
    assert codes(two, scheme="legacy") == ["12", "24"] and codes(two, scheme="2025") == ["12", "24"]
    hg_communes = codes(hg, scheme="2025", level="commune")
    assert ONLY_HA_GIANG in hg_communes and WITH_TUYEN_QUANG not in hg_communes
    assert set(codes(hg, scheme="legacy", level="commune")) == {c.code for c in REFERENCE.communes_in("legacy", "02")}
    assert refused(hg.get("/v1/areas", params={"scheme": "legacy", "level": "commune", "province": "04"}), 403,
                   "province")

    for client, reach in ((hg, {("legacy", "02")}), (tq, {("2025", "08")}), (two, {("legacy", "12"), ("2025", "24")})):
        items = client.get("/v1/libraries").json()["items"]
        assert items and all(any(i["areas"][s]["province_code"] == p for s, p in reach) for i in items)
        assert client.get("/v1/libraries", params={"scheme": "2025"}).json()["items"] == items
    assert {i["library_id"] for i in hg.get("/v1/libraries").json()["items"]} == {
        lib.library_id for lib in REFERENCE.libraries.values() if lib.area("legacy").province_code == "02"}


def test_a_key_scoped_under_one_scheme_reads_what_lies_wholly_inside_under_the_other(
        secured: EmbeddedStack, keys: dict[str, str]):
    tq, two = as_(secured, keys["tq"]), as_(secured, keys["two"])
    for params in ({"scheme": "legacy", "province": "02"}, {"scheme": "legacy", "province": "08"},
                   {"scheme": "2025", "province": "08"}, {"scheme": "2025", "commune": WITH_TUYEN_QUANG}):
        assert tq.get("/v1/visits", params=params).status_code == 200, params
    assert refused(tq.get("/v1/visits", params={"scheme": "legacy", "province": "04"}), 403, "province")
    for params in ({"scheme": "legacy", "province": "12"}, {"scheme": "2025", "province": "12"},
                   {"scheme": "legacy", "province": "24"}, {"scheme": "2025", "province": "24"}):
        assert two.get("/v1/visits", params=params).status_code == 200, params
    assert refused(two.get("/v1/indicators", params={"scheme": "legacy", "province": "02"}), 403, "province")


def test_admin_endpoints_refuse_read_keys_and_read_endpoints_refuse_admin_only_keys(
        secured: EmbeddedStack, keys: dict[str, str]):
    ops, everyone = as_(secured, keys["ops"]), as_(secured, keys["all"])
    for path in ("/v1/dead-letters", "/v1/rejections", "/v1/central-pull"):
        assert ops.get(path).status_code == 200
        assert refused(everyone.get(path), 403, "Authorization")
    assert refused(everyone.get("/v1/dead-letters/some-id"), 403)
    assert ops.get("/v1/dead-letters/some-id").status_code == 404
    assert refused(ops.get("/v1/visits", params={"scheme": "legacy", "province": "02"}), 403, "Authorization")


def test_me_tells_the_key_its_name_and_reach(secured: EmbeddedStack, keys: dict[str, str]):
    me = as_(secured, keys["tq"]).get("/v1/me").json()
    assert (me["name"], me["scopes"], me["admin"], me["read_all"]) == (
        "so-vh-tuyen-quang", ["read:province:2025:08"], False, False)
    assert [p["code"] for p in me["provinces"]["legacy"]] == ["02", "08"]
    assert me["provinces"]["2025"] == [{"scheme": "2025", "code": "08", "name_vi": "Tuyên Quang",
                                        "name_en": "Tuyen Quang"}]


def test_the_file_holds_hashes_and_changes_apply_without_a_restart(secured: EmbeddedStack, keys_file: Path,
                                                                    keys: dict[str, str]):
    text = keys_file.read_text("utf-8")
    assert all(key not in text for key in keys.values())
    assert hash_key(keys["hg"]) in json.loads(text)
    assert secured.demo_api_key is None  # keys come from the file: no demo key
    late = add_key(keys_file, "den-sau", ["read:province:legacy:04"])
    assert as_(secured, late).get("/v1/visits", params={"scheme": "legacy", "province": "04"}).status_code == 200
    assert revoke_key(keys_file, "den-sau") == 1
    assert refused(as_(secured, late).get("/v1/me"), 401)


def test_the_command_line_prints_a_new_key_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "keys.json"
    assert main(["add", str(path), "so-vh-lao-cai", "read:province:2025:15", "read:province:legacy:10"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("tvk_") and len(key) > 40
    assert json.loads(path.read_text("utf-8")) == {
        hash_key(key): {"name": "so-vh-lao-cai", "scopes": ["read:province:2025:15", "read:province:legacy:10"]}}
    assert main(["list", str(path)]) == 0 and "so-vh-lao-cai" in capsys.readouterr().out
    assert main(["add", str(path), "x", "read:province:2025:02"]) == 2  # no 2025 province 02
    assert main(["add", str(path), "x", "write:all"]) == 2
    assert "unknown scope" in capsys.readouterr().err


def test_the_query_service_refuses_to_start_without_keys(settings: Settings, tmp_path: Path):
    with pytest.raises(RuntimeError, match="API_KEYS_FILE"):
        query_app(settings)
    with pytest.raises(FileNotFoundError):
        query_app(settings.model_copy(update={"api_keys_file": str(tmp_path / "missing.json")}))


def test_the_embedded_stack_prints_its_demo_key_when_ready():
    from services.embedded.__main__ import _ready_message

    message = _ready_message("http://127.0.0.1:8000", "tvk_demo")
    assert "Ready" in message and "Authorization: Bearer tvk_demo" in message and "read:all + admin" in message
    assert "tvk_" not in _ready_message("http://127.0.0.1:8000", None)


# The write routes of data quality (tests/test_flag_checks.py): the approve scope of the flag's province.
CHECK_ROUTES = {("/v1/data-quality/{library_id}/{month}/{rule}/check", "POST"),
                ("/v1/data-quality/{library_id}/{month}/{rule}/check", "DELETE")}


def test_a_flag_is_marked_checked_only_with_the_approve_scope_of_its_province(
        secured: EmbeddedStack, keys: dict[str, str], keys_file: Path):
    document = TestClient(secured.app).get("/openapi.json").json()
    assert {(path, method.upper()) for path, item in document["paths"].items() for method in item
            if path.startswith("/v1/data-quality/")} == CHECK_ROUTES
    month = (today_local().replace(day=1) - timedelta(days=70)).replace(day=1)  # past its deadline: a late report
    intake = TestClient(secured.app, headers=OPENROSA)
    xml = fill_instance(intake.get("/forms/visit_log.xml").content, visit_answers(CB, month + timedelta(days=3)),
                        "uuid:scope-late")
    assert intake.post("/submission", files=multipart(xml)).status_code == 201
    path = f"/v1/data-quality/{CB.library_id}/{month:%Y-%m}/late_report/check"
    approve_hg = add_key(keys_file, "duyet-ha-giang", ["approve:province:legacy:02"])
    approve_cb = add_key(keys_file, "duyet-cao-bang-2025", [f"approve:province:2025:{CB.area('2025').province_code}"])
    for key in (keys["hg"], keys["all"], keys["ops"], approve_hg):  # read keys, admin, another province's officer
        for method in ("POST", "DELETE"):
            assert refused(as_(secured, key).request(method, path), 403, "Authorization")
    assert as_(secured, approve_cb).post(path).status_code == 202
    assert as_(secured, approve_cb).delete(path).status_code == 202
