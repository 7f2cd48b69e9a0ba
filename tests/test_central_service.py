"""The ODK Central pull as a service: a running embedded stack (uvicorn, a real port) with CENTRAL_CONFIG
set pulls from the served fake Central (``tests/fake_central.py``) while it serves, and reports the pull
(``/v1/central-pull``, ``/metrics``, ``thuvien doctor``); ``thuvien central pull`` beside it refuses in
one sentence; a Central that does not answer at start does not stop the stack from serving."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import Settings
from services.domain.reference import Library
from services.embedded.__main__ import _ready_message
from services.tools.submissions import fill_instance
from tests.conftest import visit_answers
from tests.fake_central import FakeCentral, iso, served
from tests.kafka.broker import free_port
from tests.serving import serving
from tests.test_ops_cli import thuvien

FORM = "visit_log"
PROJECT = 7
T0 = datetime(2026, 1, 5, 3, 0, 0, tzinfo=UTC)


def _config(path: Path, base_url: str, email: str = "pull@example.org", password: str = "mật-khẩu-bí-mật") -> Path:
    path.write_text(f'[central]\nbase_url = "{base_url}"\nusername = "{email}"\npassword = "{password}"\n'
                    f"default_project_id = {PROJECT}\n", "utf-8")
    return path


@pytest.fixture
def xform(settings: Settings) -> bytes:
    return (settings.forms_dir / f"{FORM}.xml").read_bytes()


@pytest.fixture
def central(xform: bytes) -> Iterator[FakeCentral]:
    version = xform.split(b'version="', 1)[1].split(b'"', 1)[0].decode()
    with served(FakeCentral(project_id=PROJECT, forms={FORM: version})) as fake:
        yield fake


@pytest.fixture
def running(settings: Settings) -> Iterator[Callable[[Path], tuple[EmbeddedStack, httpx.Client]]]:
    """Starts the embedded stack as `make run` does, CENTRAL_CONFIG set, served by uvicorn; stopped after."""
    started: list[tuple[EmbeddedStack, object]] = []

    def start(config: Path) -> tuple[EmbeddedStack, httpx.Client]:
        configured = settings.model_copy(update={"central_config": str(config), "central_poll_interval_s": 0.2})
        stack = embedded_stack(configured)
        serve = serving(stack.app, configured)
        started.append((stack, serve))
        base_url = serve.__enter__()
        return stack, httpx.Client(base_url=base_url, headers={"X-API-Key": stack.demo_api_key or ""}, timeout=30)

    try:
        yield start
    finally:
        for stack, serve in reversed(started):
            serve.__exit__(None, None, None)  # type: ignore[attr-defined]
            stack.close()


def pull_state(api: httpx.Client) -> dict:
    response = api.get("/v1/central-pull")
    assert response.status_code == 200, response.text
    [form] = response.json()["forms"]
    return form


def after_polls(api: httpx.Client, polls: int) -> dict:
    """The pull's state once ``polls`` more polls have ended: the last of them began after this call."""
    target = (pull_state(api)["polls"] if api.get("/v1/central-pull").json()["forms"] else 0) + polls
    deadline = time.monotonic() + 120  # a bound for a stuck pull, not a measure of speed
    while time.monotonic() < deadline:
        forms = api.get("/v1/central-pull").json()["forms"]
        if forms and forms[0]["polls"] >= target:
            return forms[0]
        time.sleep(0.05)
    raise AssertionError(f"the pull did not poll {polls} more times: {api.get('/v1/central-pull').text}")


def report(xform: bytes, library: Library, instance_id: str, days_ago: int, total: int) -> bytes:
    return fill_instance(xform, visit_answers(library, today_local() - timedelta(days=days_ago), total=total),
                         instance_id)


def visits(api: httpx.Client, library: Library) -> tuple[int, int]:
    end = today_local()
    response = api.get("/v1/visits", params={
        "scheme": "legacy", "province": library.area("legacy").province_code,
        "start": (end - timedelta(days=60)).isoformat(), "end": end.isoformat(), "granularity": "day"})
    assert response.status_code == 200, response.text
    series = response.json()["series"]
    return sum(s["visits_total"] for s in series), sum(s["reports"] for s in series)


def metric(api: httpx.Client, series: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} is not on /metrics")


# ---------------------------------------------------------------------------------------


def test_the_running_stack_pulls_what_reaches_central_while_it_serves(
        central: FakeCentral, running, xform: bytes, library: Library, tmp_path: Path):
    stack, api = running(_config(tmp_path / "pyodk.toml", central.base_url, central.email, central.password))
    assert stack.central is not None
    line = stack.central.describe()
    assert line == f"ODK Central pull: {central.base_url} project {PROJECT}, forms {FORM}, every 0.2 s"
    ready = _ready_message("http://127.0.0.1:8000", stack.demo_api_key, line)
    assert line in ready and central.password not in ready
    assert after_polls(api, 1)["ok"]  # an empty Central: polled, nothing to do
    assert visits(api, library) == (0, 0)

    # Phones send to Central while the stack serves: the next polls bring them in.
    accepted = 'central_rows_total{form_id="visit_log",outcome="accepted"}'
    accepted_before = metric(api, accepted) if accepted in api.get("/metrics").text else 0.0  # one registry per process
    central.add(FORM, report(xform, library, "uuid:live-1", 1, 30), T0)
    central.add(FORM, report(xform, library, "uuid:live-2", 2, 12), T0 + timedelta(seconds=1))
    state = after_polls(api, 2)

    assert visits(api, library) == (42, 2)
    assert state["ok"] and state["last_error"] is None and state["rows"]["accepted"] == 2, state
    assert state["central_url"] == central.base_url and state["project_id"] == PROJECT
    assert state["cursors"]["submissionDate"] == iso(T0 + timedelta(seconds=1))
    assert state["backlog"]["submissionDate"] >= 0 and 0 <= state["lag_seconds"] < 600
    assert datetime.fromisoformat(state["last_poll_ended"]).utcoffset() == timedelta(hours=7)
    assert metric(api, accepted) - accepted_before == 2
    assert metric(api, 'central_cursor_timestamp_seconds{form_id="visit_log",stream="submissionDate"}') == \
        (T0 + timedelta(seconds=1)).timestamp()
    # The pull goes on polling meanwhile: /metrics shows that poll or a later one.
    assert metric(api, 'central_last_poll_timestamp_seconds{form_id="visit_log"}') >= \
        datetime.fromisoformat(state["last_poll_ended"]).timestamp()

    # An edit-free review in Central: rejected, so withdrawn from the counts by the running pull.
    central.review(FORM, "uuid:live-2", "rejected", T0 + timedelta(hours=1))
    state = after_polls(api, 2)
    assert visits(api, library) == (30, 1) and state["rows"]["retracted"] == 1
    # Only an admin key reads the pull's state.
    assert httpx.get(f"{api.base_url}/v1/central-pull").status_code == 401


def test_a_central_down_at_start_does_not_stop_serving_and_every_reader_says_so(
        running, settings: Settings, library: Library, tmp_path: Path):
    config = _config(tmp_path / "pyodk.toml", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    stack, api = running(config)

    state = after_polls(api, 2)  # it keeps trying, each interval

    assert api.get("/health").status_code == 200 and visits(api, library) == (0, 0)  # serving all along
    assert not state["ok"] and state["failed_polls"] >= 2 and state["polls"] == state["failed_polls"]
    assert "ODK Central (submissionDate)" in state["last_error"] and state["lag_seconds"] is None
    assert "stopped" in state["summary"]
    assert metric(api, 'central_poll_errors_total{form_id="visit_log"}') >= 2
    assert math.isnan(metric(api, 'central_last_complete_poll_timestamp_seconds{form_id="visit_log"}'))
    assert "mật-khẩu" not in api.get("/v1/central-pull").text

    configured = settings.model_copy(update={"central_config": str(config)})
    doctor = thuvien(configured, "doctor")
    central_lines = [line for line in doctor.stdout.splitlines() if line.split()[1:2] == ["central"]]
    assert central_lines[0].startswith("OK") and "pyodk config" in central_lines[0], doctor.stdout
    assert central_lines[1].startswith(f"WARN  central     project {PROJECT} form {FORM}: the last poll"), doctor.stdout
    assert "ODK Central (submissionDate)" in central_lines[1] and "retries every CENTRAL_POLL_INTERVAL_S" \
        in central_lines[1]

    # The command-line pull beside the running stack (same STATE_DIR): one sentence saying what to do.
    refused = thuvien(configured, "central", "pull", "--once")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    sentence = refused.stderr.strip().splitlines()[-1]
    assert sentence.startswith(f"Refused: a running embedded stack (process {os.getpid()}) holds "
                               f"STATE_DIR={settings.state_dir}")
    assert "restart `make run` with CENTRAL_CONFIG" in sentence and sentence.count(". ") == 0
    assert stack.central is not None  # still pulling: the refusal took nothing from it
