"""Shared fixtures: built forms, a fresh embedded stack, a real Kafka broker, a real PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from urllib.request import parse_http_list, parse_keqv_list

import pytest
from fastapi.testclient import TestClient

from services import logs
from services.bootstrap import EmbeddedStack, embedded_stack
from services.clock import today_local
from services.config import REPO_ROOT, Settings
from services.domain.reference import Library, default_reference
from services.intake.forms import build_all
from services.tools.samples import all_sample_reports
from tests import postgres
from tests.caddy import Caddy
from tests.clickhouse_http import ClickHouseServer
from tests.kafka.broker import kafka_bootstrap

OPENROSA = {"X-OpenRosa-Version": "1.0"}


# `make check` runs the tests marked `unit`. They must stay fast: a unit test that asks for a fixture
# starting a server or Java, or that opens ClickHouse, fails instead of quietly slowing the inner loop.
SERVER_FIXTURES = frozenset({"forms_dir", "settings", "stack", "client", "clickhouse_server",
                             "kafka_bootstrap_servers", "postgres_server", "ledger_dsn", "caddy_proxy"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("unit") and used:
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses {sorted(used)}: drop the mark or the "
                                    "fixture (unit tests use the fakes in tests/fakes.py)")


@pytest.fixture(autouse=True)
def _unit_tests_open_no_clickhouse(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit"):
        def refuse(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("a unit test opened ClickHouse: use the fakes in tests/fakes.py, or drop the mark")
        monkeypatch.setattr("clickhouse_connect.get_client", refuse)


@pytest.fixture(scope="session")
def forms_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's XLSForms built once per session, with ODK Validate, as `make run` builds them."""
    out = tmp_path_factory.mktemp("forms")
    build_all(REPO_ROOT / "odk-forms", out)
    return out


@pytest.fixture
def settings(tmp_path: Path, forms_dir: Path) -> Settings:
    forms = tmp_path / "forms"
    shutil.copytree(forms_dir, forms)
    return Settings.from_env(bus="embedded", store_dsn=f"chdb://{tmp_path / 'store'}",
                             state_dir=tmp_path / "state", forms_dir=forms)


@pytest.fixture
def stack(settings: Settings) -> Iterator[EmbeddedStack]:
    # chDB allows one data directory per process at a time: each test closes its own.
    built = embedded_stack(settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def client(stack: EmbeddedStack) -> TestClient:
    # X-API-Key (not Authorization, which OpenRosa's Digest uses): the query API's demo key.
    return TestClient(stack.app, headers={**OPENROSA, "X-API-Key": stack.demo_api_key or ""})


@pytest.fixture
def library() -> Library:
    """A sample library in Hà Giang (legacy 02), now in Tuyên Quang (2025 08)."""
    return next(lib for lib in default_reference().libraries.values() if lib.area("legacy").province_code == "02")


def library_of(legacy_province: str) -> Library:
    """The first library (by id) of a legacy province: a test's stable pick."""
    return min((lib for lib in default_reference().libraries.values()
                if lib.area("legacy").province_code == legacy_province), key=lambda lib: lib.library_id)


def visit_answers(library: Library, day: date, total: int = 40, loans: int = 25) -> dict[str, str]:
    """A consistent visit log: the breakdowns add up to ``total``."""
    children = total // 2
    female = total - total // 3
    learning, information, events = total // 4, total // 5, total // 10
    values = {
        "province": library.area("2025").province_code, "library_id": library.library_id,
        "report_date": day.isoformat(),
        "visits_total": total, "visits_children": children, "visits_adults": total - children,
        "visits_female": female, "visits_male": total - female, "visits_ethnic_minority": total // 2,
        "visits_learning": learning, "visits_information": information, "visits_events": events,
        "visits_reading": total - learning - information - events,
        "virtual_visits": 3, "loans": loans, "renewals": 2, "new_registrations": 1,
    }
    return {k: str(v) for k, v in values.items()}


# the answer holding each form's event date
DATE_FIELD = {"visit_log": "report_date", "library_registry": "effective_date", "rotation_movement": "movement_date",
              "mobile_session": "session_date", "reading_promotion": "event_date", "staff_training": "completed_on",
              "donation": "received_on"}


def sample_answers(form_id: str, legacy_province: str, day: date, **changes: str) -> dict[str, str]:
    """The answers of the first sample report of ``form_id`` by a library of ``legacy_province``,
    dated ``day`` (and ``changes``)."""
    until = today_local().replace(day=1) - timedelta(days=1)
    reference = default_reference()
    report = next(r for f, r in all_sample_reports(reference, until) if f == form_id
                  and reference.libraries[r.answers["library_id"]].area("legacy").province_code == legacy_province)
    return {**report.answers, DATE_FIELD[form_id]: day.isoformat(), **changes}


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The process's logging as an entry point configures it (JSON, INFO), into a buffer."""
    root = logging.getLogger()
    level, stream = root.level, io.StringIO()
    handler = logs.configure(level="INFO", log_format="json", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def clickhouse_server(tmp_path: Path) -> Iterator[str]:
    """The DSN of a ClickHouse server (chDB behind ClickHouse's HTTP interface) that several worker
    processes can share, as they share one in production."""
    server = ClickHouseServer(str(tmp_path / "clickhouse")).start()
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """A real single-node KRaft broker for the session; $KAFKA_BOOTSTRAP_SERVERS, if set, is used instead."""
    with kafka_bootstrap() as servers:
        yield servers


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """An administrator's DSN of a real PostgreSQL for the session (``tests/postgres.py``: a throw-away
    cluster; $LEDGER_DSN, if set, is used instead)."""
    with postgres.postgres_server() as dsn:
        yield dsn


@pytest.fixture
def ledger_dsn(postgres_server: str) -> Iterator[str]:
    """A database of the test's own on that server (empty: each intake migrates it), dropped after."""
    dsn = postgres.create_database(postgres_server)
    try:
        yield dsn
    finally:
        postgres.drop_database(postgres_server, dsn)


@pytest.fixture
def caddy_proxy() -> Iterator[Callable[..., Caddy]]:
    """Starts a real Caddy (the repo's Caddyfile, tests/caddy.py) in front of the given upstreams:
    ``caddy_proxy(intake=["127.0.0.1:P", …], query=[…], env={"MAX_REQUEST_BODY": "128KiB"})``.
    Every Caddy it started is stopped after the test."""
    started: list[Caddy] = []

    def start(intake: Sequence[str], query: Sequence[str], env: Mapping[str, str] | None = None) -> Caddy:
        caddy = Caddy(intake, query, env)
        started.append(caddy)
        return caddy.start()

    try:
        yield start
    finally:
        for caddy in started:
            caddy.stop()


def digest_header(user: str, password: str, method: str, uri: str, challenge: str, nc: int = 1) -> str:
    """An Authorization header as RFC 7616 clients compute it (MD5, qop=auth), for nonce count ``nc``."""
    params = parse_keqv_list(parse_http_list(challenge.removeprefix("Digest ")))

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1_, ha2 = md5(f"{user}:{params['realm']}:{password}"), md5(f"{method}:{uri}")
    response = md5(f"{ha1_}:{params['nonce']}:{nc:08x}:abc:auth:{ha2}")
    return (f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
            f'qop=auth, nc={nc:08x}, cnonce="abc", response="{response}"')
