"""Property-based tests of the query API from its own OpenAPI document (schemathesis): whatever
values the document allows, or not, no request gets a 5xx, and every error is problem details.

Every operation of the document (each path and method: GET, POST, DELETE), in process (the ASGI app),
with the embedded stack's demo key (read:all, admin, approve every province, approve:region: so the
approval routes are exercised past their scope check), a few submissions in the store, an approved
month with a held change in its queue, late reports (data-quality flags to mark checked), and a bounded
number of examples per operation.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import Settings
from services.domain.reference import default_reference
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, visit_answers

EXAMPLES = 60  # per read operation and mode (valid, invalid)
# /v1/dashboard computes about fifteen indicators per request, and has three parameters: fewer suffice;
# so does /v1/reports/province, which computes as much and writes a workbook (its answers are binary: only
# their status and, for errors, their content type are checked, as for every route); so do the write
# routes (each publishes, folds and reads a province's chains).
FEWER = {("/v1/dashboard", "GET"): 15, ("/v1/reports/province", "GET"): 15}
WRITES = 15
METHODS = ("GET", "POST", "DELETE")  # the reads first: they then see the fixture's approval still active


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, forms_dir: Path) -> Iterator[EmbeddedStack]:
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(forms_dir, root / "forms")
    stack = embedded_stack(Settings.from_env(bus="embedded", store_dsn=f"chdb://{root / 'store'}",
                                             state_dir=root / "state", forms_dir=root / "forms", api_keys_file=""))
    try:
        intake = TestClient(stack.app, headers=OPENROSA)
        xform = intake.get("/forms/visit_log.xml").content
        libraries = sorted(default_reference().libraries.values(), key=lambda lib: lib.library_id)[:6]
        for n, library in enumerate(libraries):
            day = today_local() - timedelta(days=20 * n + 1)
            xml = fill_instance(xform, visit_answers(library, day, total=10 + n), f"uuid:fuzz-{n}")
            assert intake.post("/submission", files=multipart(xml)).status_code == 201
        # An approved month of the first library's 2025 province, and a late report held in its queue.
        first = libraries[0]
        last_month = (today_local().replace(day=1) - timedelta(days=1)).replace(day=1)
        api = TestClient(stack.app, headers={"Authorization": f"Bearer {stack.demo_api_key}"})
        approved = api.post("/v1/approvals", json={"scheme": "2025", "province": first.area("2025").province_code,
                                                   "period": f"{last_month:%Y-%m}"})
        assert approved.status_code == 202, approved.text
        late = fill_instance(xform, visit_answers(first, last_month + timedelta(days=4), total=7), "uuid:fuzz-late")
        assert intake.post("/submission", files=multipart(late)).status_code == 201
        stack.fuzz_approval = approved.json()["approval_id"]  # type: ignore[attr-defined]
        assert api.get(f"/v1/approvals/{stack.fuzz_approval}/queue").json()["items"]  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed: EmbeddedStack):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)


OPERATIONS = [
    ("/v1/me", "GET"), ("/v1/indicators", "GET"), ("/v1/visits", "GET"), ("/v1/growth", "GET"),
    ("/v1/mobile-sessions", "GET"), ("/v1/reading-promotion", "GET"), ("/v1/training", "GET"),
    ("/v1/donations", "GET"), ("/v1/rotation/batches", "GET"), ("/v1/rotation/libraries", "GET"),
    ("/v1/rotation/provinces", "GET"), ("/v1/libraries", "GET"), ("/v1/areas", "GET"), ("/v1/dashboard", "GET"),
    ("/v1/dead-letters", "GET"), ("/v1/dead-letters/{dead_letter_id}", "GET"), ("/v1/rejections", "GET"),
    ("/v1/central-pull", "GET"), ("/v1/lineage/visits", "GET"), ("/v1/lineage/growth", "GET"),
    ("/v1/lineage/k1", "GET"), ("/v1/reports/province", "GET"), ("/v1/data-quality", "GET"),
    ("/v1/approvals", "GET"), ("/v1/approvals/{approval_id}/queue", "GET"),
    ("/v1/approvals", "POST"), ("/v1/approvals/{approval_id}/region-acceptance", "POST"),
    ("/v1/approvals/{approval_id}/queue/{item_id}/apply", "POST"),
    ("/v1/approvals/{approval_id}/queue/{item_id}/decline", "POST"),
    ("/v1/approvals/{approval_id}", "DELETE"),
    ("/v1/data-quality/{library_id}/{month}/{rule}/check", "POST"),
    ("/v1/data-quality/{library_id}/{month}/{rule}/check", "DELETE"),
]
OPERATIONS.sort(key=lambda op: METHODS.index(op[1]))


def test_every_operation_is_fuzzed(api_schema):
    paths = {path: item for path, item in api_schema.raw_schema["paths"].items() if path.startswith("/v1/")}
    assert sorted(OPERATIONS) == sorted((path, method.upper()) for path, item in paths.items() for method in item)


# schemathesis's own pytest plugin (``from_fixture(...).parametrize()``) does not run on pytest 9.2 (it
# sets ``Function._nodeid``); its strategies under plain Hypothesis ``@given`` do the same work.
# /v1/me takes no parameters: there is nothing to make invalid, so it is fuzzed with valid requests only.
CASES = [(path, method, mode) for path, method in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if not (path == "/v1/me" and mode is GenerationMode.NEGATIVE)]


def _real_ids(fuzzed: EmbeddedStack, api: TestClient, case) -> None:
    """Point an approval route at the fixture's approval (and its first held change), and a flag's route
    at a flag (the fixture's reports of past months are late), so that valid requests reach them, not
    only a 404."""
    if "library_id" in case.path_parameters:
        flags = api.get("/v1/data-quality", params={"start": "2020-01-01", "end": today_local().isoformat()})
        if flags.status_code == 200 and flags.json()["items"]:
            flag = flags.json()["items"][0]
            case.path_parameters.update(library_id=flag["library_id"], month=flag["month"], rule=flag["rule"])
        return
    approval = fuzzed.fuzz_approval  # type: ignore[attr-defined]
    case.path_parameters["approval_id"] = approval
    if "item_id" in case.path_parameters:
        queued = api.get(f"/v1/approvals/{approval}/queue")
        items = queued.json()["items"] if queued.status_code == 200 else []
        if items:
            case.path_parameters["item_id"] = items[0]["item_id"]


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=[f"{m}-{p}-{g.value}" for p, m, g in CASES])
def test_no_request_gets_a_server_error(api_schema, fuzzed: EmbeddedStack, path: str, method: str,
                                        mode: GenerationMode):
    operation = api_schema[path][method]
    # Both headers: the generated ones (the document declares both schemes) are replaced by the real key.
    key = {"Authorization": f"Bearer {fuzzed.demo_api_key}", "X-API-Key": fuzzed.demo_api_key}
    api = TestClient(fuzzed.app, headers=key)
    examples = FEWER.get((path, method), EXAMPLES if method == "GET" else WRITES)

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    def no_server_error(case, real: bool) -> None:
        if real and mode is GenerationMode.POSITIVE and {"approval_id", "library_id"} & set(case.path_parameters or {}):
            _real_ids(fuzzed, api, case)
        response = case.call(headers=key)
        assert response.status_code < 500, \
            f"{case.method} {case.formatted_path} {case.query} {case.body!r}: {response.text[:500]}"
        if response.status_code >= 400:
            assert response.headers["content-type"] in (["application/problem+json"], "application/problem+json"), \
                response.text[:300]

    no_server_error()
