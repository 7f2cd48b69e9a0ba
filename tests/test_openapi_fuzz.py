"""Property-based tests of the query API from its own OpenAPI document (schemathesis): whatever
values the document allows, or not, no request gets a 5xx, and every error is problem details.

In process (the ASGI app), with a read:all + admin key (the embedded stack's demo key), a few
submissions in the store, and a bounded number of examples per operation.
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
from schemathesis import GenerationMode

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import Settings
from services.domain.reference import default_reference
from services.tools.submissions import fill_instance, multipart
from tests.conftest import OPENROSA, visit_answers

EXAMPLES = 60  # per operation and mode (valid, invalid): 16 operations, about 30 s in all
# /v1/dashboard computes about fifteen indicators per request, and has three parameters: fewer suffice.
# /v1/reports/province computes as much and writes a workbook (its answers are binary: only their status
# and, for errors, their content type are checked, as for every route).
FEWER = {"/v1/dashboard": 15, "/v1/reports/province": 15}


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
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed: EmbeddedStack):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)


PATHS = ["/v1/me", "/v1/indicators", "/v1/visits", "/v1/growth", "/v1/mobile-sessions", "/v1/reading-promotion",
         "/v1/training", "/v1/donations", "/v1/rotation/batches", "/v1/rotation/libraries", "/v1/rotation/provinces",
         "/v1/libraries", "/v1/areas", "/v1/dashboard", "/v1/dead-letters", "/v1/dead-letters/{dead_letter_id}",
         "/v1/rejections", "/v1/central-pull", "/v1/lineage/visits", "/v1/lineage/growth", "/v1/lineage/k1",
         "/v1/reports/province", "/v1/data-quality"]


def test_every_operation_is_fuzzed(api_schema):
    assert sorted(PATHS) == sorted(p for p in api_schema.raw_schema["paths"] if p.startswith("/v1/"))


# schemathesis's own pytest plugin (``from_fixture(...).parametrize()``) does not run on pytest 9.2 (it
# sets ``Function._nodeid``); its strategies under plain Hypothesis ``@given`` do the same work.
# /v1/me takes no parameters: there is nothing to make invalid, so it is fuzzed with valid requests only.
CASES = [(path, mode) for path in PATHS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if not (path == "/v1/me" and mode is GenerationMode.NEGATIVE)]


@pytest.mark.parametrize(("path", "mode"), CASES, ids=[f"{p}-{m.value}" for p, m in CASES])
def test_no_request_gets_a_server_error(api_schema, fuzzed: EmbeddedStack, path: str, mode: GenerationMode):
    operation = api_schema[path]["GET"]
    # Both headers: the generated ones (the document declares both schemes) are replaced by the real key.
    key = {"Authorization": f"Bearer {fuzzed.demo_api_key}", "X-API-Key": fuzzed.demo_api_key}

    @settings(max_examples=FEWER.get(path, EXAMPLES), deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def no_server_error(case) -> None:
        response = case.call(headers=key)
        assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.query}: {response.text[:500]}"
        if response.status_code >= 400:
            assert response.headers["content-type"] in (["application/problem+json"], "application/problem+json"), \
                response.text[:300]

    no_server_error()
