"""Query API latency over millions of visit facts, against the same SQL run directly on the store.

The store (chDB, migrated as the services migrate it) is filled inside ClickHouse: ``INSERT …
SELECT … FROM numbers(N)`` generates the rows the processors would write — one
``visits_library_daily`` row per library and open day, and its ``visit_logged`` event in ``events``
(1 % of them edited once, so ``current_facts`` has chains to resolve) — for the libraries of the
generated registry, over about 6.4 years (2,000 open days) with seasonality and yearly growth
(``bench.generate.visit_facts_sql``). Stages grow the same store by adding libraries: 1 million
facts are 500 libraries, 10 million the registry's 5,000, 50 million 25,000 (the registry's
communes, more libraries: the country growing).

At each stage the query service's own routes (the query API's ``router`` over the same ``Store``, as
``services.bootstrap.query_app`` builds them) run under uvicorn in a thread, and a mix of
``/v1/indicators``, ``/v1/visits`` and ``/v1/growth`` requests (whole programme, provinces and
communes under both schemes, every granularity, several year ranges, some by library type) goes
over real HTTP with keep-alive and no ``If-None-Match`` (the API has no server-side cache: every
answer is computed). Every ``Store.select`` a request issues is recorded; right after the request
the same SQL strings with the same parameters are run again directly on the store, in process,
and their summed time is that request's upper bound.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import uvicorn

from bench.context import Context
from bench.dashboard import measure as measure_dashboard
from bench.generate import FACT_LIBRARIES_TABLE, fact_libraries, fact_libraries_ddl, load_reference, visit_facts_sql
from bench.measure import percentile, profile_pid
from bench.results import Figure
from services.bus.base import Publisher
from services.domain.forms.library_registry import LibraryType
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.reference import Reference
from services.login_throttle import LoginThrottle
from services.query import api as query_api
from services.query.access import ApiKeys, add_key
from services.query.dashboard import dashboard_router
from services.query.deps import QueryServices
from services.store.clickhouse import Store
from services.web import create_app

ENDPOINTS = ("indicators", "visits", "growth", "mobile-sessions", "reading-promotion", "training", "donations")
ACTIVITY_ENDPOINTS = ENDPOINTS[3:]
# One activity report per library every so many open days (≈ monthly sessions, quarterly training).
ACTIVITY_EVERY = {"mobile_session_held": 26, "reading_promotion_held": 52, "staff_trained": 78,
                  "donation_received": 39}
OPEN_DAYS = 2000  # per library: 333 weeks of six open days, about 6.4 years
LAST_DAY = date(2026, 10, 31)
GOAL_MS = 100.0  # p99 of every endpoint at 10 M facts
GOAL_MS_LARGEST = 300.0  # … and at 50 M
GOAL_OVERHEAD = 1.3
STORAGE_TABLES = ("visit_chain_rows", "visits_library_month", "visits_area_day", "visits_area_month",
                  "visits_library_day", "events", "activity_chain_rows", "activity_library_month",
                  "activity_area_day", "activity_area_month")
_LIB_COLUMNS = ["idx", "library_id", "province_legacy", "commune_legacy", "province_2025", "commune_2025", "level",
                "growth"]


def _first_monday() -> date:
    start = LAST_DAY - timedelta(days=OPEN_DAYS // 6 * 7 + 7)
    return start - timedelta(days=start.weekday())


START = _first_monday()


# --- filling the store --------------------------------------------------------------------------------

def _payload(plus: str = "") -> str:
    """The event payload JSON, as ``Store.insert_events`` writes it (``json.dumps`` of the counts)."""
    parts = []
    for i, name in enumerate(COUNT_FIELDS):
        value = f"toString({name}{plus if name == 'visits_total' else ''})"
        parts.append(f"'{', ' if i else '{'}\"{name}\": ', {value}")
    return f"concat({', '.join(parts)}, '}}')"


def command(store: Store, sql: str) -> None:
    """A statement without rows (DDL, ``INSERT … SELECT``) on the store's client."""
    with store._lock:
        store._client.command(sql)


def open_store(path: Path, reference: Reference, libraries: int, seed: int) -> tuple[Store, list[list[object]]]:
    """A migrated chDB store at ``path`` with ``libraries`` rows of ``FACT_LIBRARIES_TABLE`` (what
    ``fill`` draws the facts' libraries from), and those rows."""
    store = Store(f"chdb://{path}")
    store.migrate()
    rows = fact_libraries(reference, libraries, seed)
    command(store, fact_libraries_ddl())
    store.insert_rows(FACT_LIBRARIES_TABLE, _LIB_COLUMNS, rows)
    return store, rows


def fill(store: Store, first: int, count: int, seed: int) -> dict[str, float]:
    """Facts ``first`` … ``first + count - 1`` into ``visit_chain_rows`` (and through its views into the
    rollups, as the processor's inserts go) and ``events``."""
    facts = visit_facts_sql(first, count, OPEN_DAYS, START, seed)
    edited = "bitShiftRight(h, 40) % 100 = 0"
    edit_id = f"concat('uuid:', toString(reinterpretAsUUID(sipHash128({seed}, library_id, day, 1))))"
    settings = ("SETTINGS min_insert_block_size_rows = 4000000, min_insert_block_size_bytes = 1000000000, "
                "max_insert_threads = 2")
    t0 = time.perf_counter()
    # Each fact is one visit-log chain, as the daily-visits processor keeps it (the current version's counts).
    counts = ", ".join(COUNT_FIELDS)
    edit = f"if({edited}, {edit_id}, event_id)"
    command(store, "INSERT INTO visit_chain_rows (root_id, event_id, submitted_at, position, counted, library_id, "
                   f"day, province_legacy, commune_legacy, province_2025, commune_2025, {counts}, first_reported_at, "
                   "version_ids, version_hashes, seq, history, sign) "
                   f"SELECT event_id, {edit}, if({edited}, submitted_at + toIntervalDay(3), submitted_at), "
                   "2 * n + 1, 1, "
                   f"library_id, day, province_legacy, commune_legacy, province_2025, commune_2025, {counts}, "
                   f"submitted_at, if({edited}, [event_id, {edit}], [event_id]), "
                   f"if({edited}, ['a', 'b'], ['a']), if({edited}, 2, 1), "
                   # (the versions' history, as the processor keeps it: who sent each, through what, when)
                   "arrayConcat([(event_id, 0, submitted_at, 'bench', 'openrosa', '', '')], "
                   f"if({edited}, [({edit}, 0, submitted_at + toIntervalDay(3), 'bench', 'openrosa', '', '')], [])), 1 "
                   f"FROM ({facts}) {settings}")
    t1 = time.perf_counter()
    # Every fact's current version: the edit (accepted 3 days later) for 1 % of them, else the original.
    command(
        store, "INSERT INTO events (event_id, root_id, deprecated_id, event_type, form_id, form_version, library_id, "
        "occurred_on, submitted_at, source, submitter, content_hash, province_legacy, commune_legacy, province_2025, "
        "commune_2025, payload, version) "
        f"SELECT if({edited}, {edit_id}, event_id), event_id, if({edited}, event_id, ''), 'visit_logged', "
        "'visit_log', 'bench', library_id, day, "
        f"if({edited}, submitted_at + toIntervalDay(3), submitted_at), 'openrosa', 'bench', "
        f"concat(hex(sipHash128({seed}, n, 'a')), hex(sipHash128({seed}, n, 'b'))), province_legacy, "
        f"commune_legacy, province_2025, commune_2025, {_payload()}, 2 * n + 1 FROM ({facts}) {settings}")
    # …and the first versions of the edited ones (one visit more than the correction says).
    command(
        store, "INSERT INTO events (event_id, root_id, deprecated_id, event_type, form_id, form_version, library_id, "
        "occurred_on, submitted_at, source, submitter, content_hash, province_legacy, commune_legacy, province_2025, "
        "commune_2025, payload, version) "
        "SELECT event_id, event_id, '', 'visit_logged', 'visit_log', 'bench', library_id, day, submitted_at, "
        f"'openrosa', 'bench', concat(hex(sipHash128({seed}, n, 'c')), hex(sipHash128({seed}, n, 'd'))), "
        f"province_legacy, commune_legacy, province_2025, commune_2025, {_payload(' + 1')}, 2 * n "
        f"FROM ({facts}) WHERE {edited} {settings}")
    t2 = time.perf_counter()
    return {"rows": count, "daily_s": t1 - t0, "events_s": t2 - t1,
            "daily_rows_per_s": count / (t1 - t0), "events_rows_per_s": count * 1.01 / (t2 - t1)}


def _storage(store: Store) -> dict[str, dict[str, int]]:
    """Rows, bytes on disk and uncompressed, per table, as the active parts hold them now."""
    rows = store.select(
        "SELECT table, toInt64(sum(rows)) AS rows, toInt64(sum(bytes_on_disk)) AS bytes_on_disk, "
        "toInt64(sum(data_uncompressed_bytes)) AS uncompressed FROM system.parts WHERE active AND database = "
        "currentDatabase() AND table IN {tables:Array(String)} GROUP BY table", {"tables": list(STORAGE_TABLES)})
    return {row.pop("table"): row for row in rows}


def fill_activities(store: Store, first: int, count: int, seed: int) -> int:
    """Activity reports beside the visit facts ``first`` … ``first + count - 1``: a mobile session,
    reading event, training record or donation on some of each library's open days
    (``ACTIVITY_EVERY``), into ``activity_chain_rows`` (and through its views, the rollups)."""
    facts = visit_facts_sql(first, count, OPEN_DAYS, START, seed)
    every = "[" + ", ".join(f"('{t}', {n})" for t, n in ACTIVITY_EVERY.items()) + "]"
    before = store.select("SELECT count() AS n FROM activity_chain_rows")[0]["n"]
    command(store, f"""
        INSERT INTO activity_chain_rows (root_id, event_id, event_type, submitted_at, position, counted, library_id,
            day, province_legacy, commune_legacy, province_2025, commune_2025, occasion, donor_kind, donor_origin,
            worker_id, result, visits_total, visits_children, visits_adults, loans, participants_total,
            participants_children, participants_adults, co_organised, hours, books, money_vnd, first_reported_at,
            version_ids, version_hashes, seq, history, sign)
        SELECT concat(event_id, '-', kind.1) AS root, root, kind.1 AS t, submitted_at, n, 1, library_id, day,
               province_legacy, commune_legacy, province_2025, commune_2025,
               if(t = 'reading_promotion_held',
                  ['book_day_21_04', 'national_holiday', 'local_holiday', 'other'][1 + h % 4], ''),
               if(t = 'donation_received', ['enterprise', 'organisation', 'individual'][1 + h % 3], ''),
               if(t = 'donation_received', ['domestic', 'foreign'][1 + intDiv(h, 7) % 2], ''),
               if(t = 'staff_trained', concat('CB-', toString(100000 + sipHash64(library_id) % 800000 + h % 2)), ''),
               if(t = 'staff_trained', ['passed', 'failed', 'attended'][1 + h % 3], ''),
               if(t = 'mobile_session_held', visits_total * 2, 0), if(t = 'mobile_session_held', visits_children, 0),
               if(t = 'mobile_session_held', visits_total * 2 - visits_children, 0),
               if(t = 'mobile_session_held', loans, 0),
               if(t = 'reading_promotion_held', visits_total + 10, 0),
               if(t = 'reading_promotion_held', visits_children, 0),
               if(t = 'reading_promotion_held', visits_total + 10 - visits_children, 0),
               if(t = 'reading_promotion_held', h % 3 = 0, 0),
               if(t = 'staff_trained', 2 + h % 6, 0),
               if(t = 'donation_received', h % 200, 0), if(t = 'donation_received', (h % 20) * 100000, 0),
               submitted_at, [root], ['a'], 1, [(root, 0, submitted_at, 'bench', 'openrosa', '', '')], 1
        FROM ({facts}) ARRAY JOIN {every} AS kind WHERE n % kind.2 = 0""")
    return store.select("SELECT count() AS n FROM activity_chain_rows")[0]["n"] - before


def _parts(store: Store) -> dict[str, int]:
    rows = store.select("SELECT table, toInt64(count()) AS parts FROM system.parts WHERE active AND database = "
                        "currentDatabase() AND table IN ('visit_chain_rows', 'events') GROUP BY table")
    return {row["table"]: row["parts"] for row in rows}


# --- the requests --------------------------------------------------------------------------------------

@dataclass
class Areas:
    """Areas that hold data at a stage: (scheme, province, commune) triples."""

    provinces: list[tuple[str, str]]
    communes: list[tuple[str, str, str]]


def _areas(reference: Reference, libraries: list[list[object]]) -> Areas:
    provinces, communes = set(), set()
    for row in libraries:
        if row[1] not in reference.libraries:
            continue
        provinces |= {("legacy", str(row[2])), ("2025", str(row[4]))}
        communes |= {("legacy", str(row[2]), str(row[3])), ("2025", str(row[4]), str(row[5]))}
    return Areas(sorted(provinces), sorted(communes))


def _place(rng: random.Random, areas: Areas) -> dict[str, str]:
    r = rng.random()
    if r < 0.2:
        return {"scheme": rng.choice(("legacy", "2025"))}
    if r < 0.6:
        scheme, province = rng.choice(areas.provinces)
        return {"scheme": scheme, "province": province}
    scheme, province, commune = rng.choice(areas.communes)
    return {"scheme": scheme, "commune": commune} | ({"province": province} if rng.random() < 0.5 else {})


_TYPES = list(get_args(LibraryType))


def requests(rng: random.Random, areas: Areas, per_endpoint: int) -> list[tuple[str, dict[str, str]]]:
    """``per_endpoint`` requests of each endpoint, shuffled together."""
    first, last = START.year + 1, LAST_DAY.year
    out: list[tuple[str, dict[str, str]]] = []
    for _ in range(per_endpoint):
        year = rng.randint(first, last)
        out.append(("indicators", _place(rng, areas) | {"year": str(year)}))

        params = _place(rng, areas)
        granularity = rng.choices(("day", "month", "quarter", "year"), weights=(2, 5, 2, 2))[0]
        span = rng.choice((1, 1, 2, 3, 6)) if granularity != "day" else rng.choice((1, 1, 3, 12))
        if granularity == "day":  # a few months of days, as a chart of daily visits shows them
            end = LAST_DAY - timedelta(days=rng.randrange(5 * 365))
            start = end - timedelta(days=30 * span)
        else:
            end_year = rng.randint(first + span - 1, last) if span < 6 else last
            start, end = date(end_year - span + 1, 1, 1), min(date(end_year, 12, 31), LAST_DAY)
        params |= {"granularity": granularity, "start": start.isoformat(), "end": end.isoformat()}
        if _TYPES and rng.random() < 0.15:
            params["library_type"] = rng.choice(_TYPES)
        out.append(("visits", params))

        params = _place(rng, areas) | {"year": str(rng.randint(first, last))}
        if rng.random() < 0.25:
            params["baseline_year"] = str(first)
            if int(params["year"]) == first:
                params["year"] = str(first + 1)
        if _TYPES and rng.random() < 0.15:
            params["library_type"] = rng.choice(_TYPES)
        out.append(("growth", params))

        for endpoint in ACTIVITY_ENDPOINTS:
            granularity = rng.choices(("day", "month", "quarter", "year"), weights=(1, 5, 2, 2))[0]
            span = rng.choice((1, 1, 2, 3, 6))
            end_year = rng.randint(first + span - 1, last) if span < 6 else last
            start, end = date(end_year - span + 1, 1, 1), min(date(end_year, 12, 31), LAST_DAY)
            out.append((endpoint, _place(rng, areas) | {"granularity": granularity, "start": start.isoformat(),
                                                         "end": end.isoformat()}))
    rng.shuffle(out)
    return out


# --- the server, and the SQL it issues ------------------------------------------------------------------

class Recorder:
    """Wraps ``store.select``: the SQL and parameters each request issues."""

    def __init__(self, store: Store):
        self.select = store.select
        self.log: list[tuple[str, dict[str, Any] | None]] | None = None
        store.select = self  # type: ignore[method-assign]

    def __call__(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.log is not None:
            self.log.append((sql, params))
        return self.select(sql, params)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, store: Store, reference: Reference, keys_file: Path, publisher: Publisher | None = None):
        services = QueryServices.over(store, reference, ApiKeys(keys_file), LoginThrottle(), publisher=publisher)
        app = create_app("bench query API", [query_api.router, dashboard_router()], state=services.state())
        self.port = _free_port()
        # (the app's start-up and shutdown run as in the services: services/web.py's lifespan)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="bench-query-api", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the query API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Sample:
    endpoint: str
    api_ms: float
    sql_ms: float
    queries: int
    bytes: int


@dataclass
class Stage:
    facts: int
    libraries: int
    fill: dict[str, float]
    samples: list[Sample] = field(default_factory=list)
    parts: dict[str, int] = field(default_factory=dict)
    storage: dict[str, dict[str, int]] = field(default_factory=dict)

    def of(self, endpoint: str) -> list[Sample]:
        return [s for s in self.samples if s.endpoint == endpoint]

    def summary(self, endpoint: str) -> dict[str, float]:
        api = [s.api_ms for s in self.of(endpoint)]
        sql = [s.sql_ms for s in self.of(endpoint)]
        return {"requests": len(api), "p50_ms": round(percentile(api, 50), 2), "p99_ms": round(percentile(api, 99), 2),
                "sql_p50_ms": round(percentile(sql, 50), 2), "sql_p99_ms": round(percentile(sql, 99), 2),
                "max_ms": round(max(api, default=0), 2),
                "overhead_p99": round(percentile(api, 99) / percentile(sql, 99), 2) if sql and percentile(sql, 99)
                else None,
                "queries_per_request": round(sum(s.queries for s in self.of(endpoint)) / max(1, len(api)), 1),
                "mean_bytes": round(sum(s.bytes for s in self.of(endpoint)) / max(1, len(api)))}


def measure(client: httpx.Client, recorder: Recorder, batch: list[tuple[str, dict[str, str]]], *,
            direct: bool = True, budget_s: float = math.inf, at_least: int = 20) -> list[Sample]:
    """Each request over HTTP, then (``direct``) the SQL it issued run again on the store.

    An endpoint that has spent ``budget_s`` (API and direct SQL) after ``at_least`` requests is
    asked no more: a slow endpoint stops the stage from taking an hour, and the figure says how many
    requests it is made of."""
    samples = []
    spent: dict[str, float] = {}
    for endpoint, params in batch:
        if spent.get(endpoint, 0.0) > budget_s and sum(s.endpoint == endpoint for s in samples) >= at_least:
            continue
        recorder.log = []
        t0 = time.perf_counter()
        response = client.get(f"/v1/{endpoint}", params=params)
        api_ms = (time.perf_counter() - t0) * 1000
        issued, recorder.log = recorder.log, None
        if response.status_code != 200:
            raise RuntimeError(f"/v1/{endpoint}?{params}: {response.status_code} {response.text[:300]}")
        json.loads(response.content)  # a client reads the answer
        sql_ms = 0.0
        if direct:
            for sql, sql_params in issued:
                t1 = time.perf_counter()
                recorder.select(sql, sql_params)
                sql_ms += (time.perf_counter() - t1) * 1000
        spent[endpoint] = spent.get(endpoint, 0.0) + time.perf_counter() - t0
        samples.append(Sample(endpoint, api_ms, sql_ms, len(issued), len(response.content)))
    return samples


# --- the benchmark -----------------------------------------------------------------------------------------

def run(ctx: Context) -> list[Figure]:
    stages = (1_000_000, 10_000_000, 50_000_000) if ctx.full else (100_000, 500_000, 1_000_000)
    main = stages[1] if ctx.full else stages[-1]
    if os.environ.get("BENCH_QUERY_STAGES"):  # e.g. 10000000: re-measure one stage (it is also the main one)
        stages = tuple(int(n) for n in os.environ["BENCH_QUERY_STAGES"].split(","))
        main = main if main in stages else stages[-1]
    per_endpoint = {main: 200 if ctx.full else 60}
    others = 60 if ctx.full else 30
    base = ctx.dir("query")
    reference = load_reference(ctx.registry)
    store, libraries = open_store(base / "store", reference, math.ceil(stages[-1] / OPEN_DAYS), ctx.seed)
    keys_file = base / "api-keys.json"
    key = add_key(keys_file, "bench", ["read:all"], reference)
    recorder = Recorder(store)
    rng = random.Random(f"{ctx.seed}:query")
    done: list[Stage] = []
    page: list[Figure] = []
    filled = 0
    try:
        with Server(store, reference, keys_file) as server, httpx.Client(
                base_url=f"http://127.0.0.1:{server.port}", headers={"X-API-Key": key}, timeout=600) as client:
            for facts in stages:
                stage = Stage(facts, math.ceil(facts / OPEN_DAYS), fill(store, filled, facts - filled, ctx.seed))
                stage.fill["activity_rows"] = fill_activities(store, filled, facts - filled, ctx.seed)
                filled = facts
                stage.parts = _parts(store)
                stage.storage = _storage(store)
                print(f"   {facts:,} facts: filled at {stage.fill['daily_rows_per_s']:,.0f} daily rows/s, "
                      f"{stage.fill['events_rows_per_s']:,.0f} events/s; parts {stage.parts}", flush=True)
                areas = _areas(reference, libraries[:stage.libraries])
                warm = requests(rng, areas, 3)
                warm = [r for r in warm if r[0] != "indicators"] + [r for r in warm if r[0] == "indicators"][:1]
                measure(client, recorder, warm, direct=False)
                batch = requests(rng, areas, per_endpoint.get(facts, others))
                t0 = time.perf_counter()
                budget = (90.0 if facts == main else 40.0) if ctx.full else 20.0
                profiler = None
                if facts == main:  # py-spy over this process: the server thread is what it is about
                    profiler = threading.Thread(target=profile_pid, daemon=True,
                                                args=(os.getpid(), f"query-api-{ctx.scale}", 60 if ctx.full else 20))
                    profiler.start()
                stage.samples = measure(client, recorder, batch, budget_s=budget)
                if profiler is not None:
                    profiler.join()
                print(f"   {facts:,} facts: {len(batch)} requests in {time.perf_counter() - t0:.0f} s: "
                      + "; ".join(f"{e} p99 {stage.summary(e)['p99_ms']:.1f} ms "
                                  f"(SQL {stage.summary(e)['sql_p99_ms']:.1f}, n={len(stage.of(e))})"
                                  for e in ENDPOINTS), flush=True)
                done.append(stage)
                if facts == main:  # the dashboard page over this store: navigation → charts drawn
                    page = measure_dashboard(f"http://127.0.0.1:{server.port}", key, where=f"{_millions(facts)} facts")
    finally:
        store.close()
    return figures(done, main, per_endpoint[main]) + page


def _millions(facts: int) -> str:
    return f"{facts / 1e6:g}M"


def figures(stages: list[Stage], main: int, per_endpoint: int) -> list[Figure]:
    out = []
    total_rows = sum(s.fill["rows"] for s in stages)
    daily_s = sum(s.fill["daily_s"] for s in stages)
    events_s = sum(s.fill["events_s"] for s in stages)
    out.append(Figure(
        "query.fill.rows_per_s", "chDB bulk insert: visit facts generated by INSERT … SELECT (daily rows)",
        total_rows / daily_s, "rows/s",
        notes=f"{total_rows:,} visit_chain_rows rows in {daily_s:.0f} s, and their {total_rows * 1.01:,.0f} "
              f"visit_logged events (with payload JSON) at {total_rows * 1.01 / events_s:,.0f}/s",
        details={"stages": {_millions(s.facts): s.fill for s in stages}}))
    stage = next(s for s in stages if s.facts == main)
    for endpoint in ENDPOINTS:
        summary = stage.summary(endpoint)
        p99, bound = summary["p99_ms"], summary["sql_p99_ms"]
        out.append(Figure(
            f"query.{endpoint}.p99_ms", f"query: /v1/{endpoint} p99 over {_millions(stage.facts)} visit facts",
            p99, "ms", bound=bound, bound_label="same SQL directly on chDB, p99",
            goal=f"p99 ≤ {GOAL_MS:g} ms; ≤ {GOAL_OVERHEAD}× the bound",
            met=p99 <= GOAL_MS and (bound == 0 or p99 <= GOAL_OVERHEAD * bound),
            notes=f"p50 {summary['p50_ms']:.1f} ms (SQL {summary['sql_p50_ms']:.1f} ms), p99 overhead "
                  f"{summary['overhead_p99']}× the SQL; {summary['requests']} requests, "
                  f"{summary['queries_per_request']} SQL queries each"
                  + ("" if summary["requests"] >= per_endpoint else " (stopped at the time budget)"),
            details=summary | {"facts": stage.facts, "libraries": stage.libraries, "parts": stage.parts}))
    largest = max(s.facts for s in stages)
    for s in stages:
        summaries = {e: s.summary(e) for e in ENDPOINTS}
        worst = max(ENDPOINTS, key=lambda e: summaries[e]["p99_ms"])
        goal_ms = GOAL_MS_LARGEST if s.facts == largest and s.facts > main else GOAL_MS if s.facts == main else None
        out.append(Figure(
            f"query.scaling.p99_at_{_millions(s.facts)}", f"query scaling: worst endpoint p99 at "
            f"{_millions(s.facts)} facts ({s.libraries:,} libraries)",
            summaries[worst]["p99_ms"], "ms", bound=summaries[worst]["sql_p99_ms"],
            bound_label=f"same SQL directly, p99 ({worst})",
            goal=f"p99 ≤ {goal_ms:g} ms, every endpoint" if goal_ms else "",
            met=summaries[worst]["p99_ms"] <= goal_ms if goal_ms else None,
            notes="; ".join(f"{e} p50/p99 {summaries[e]['p50_ms']:.1f}/{summaries[e]['p99_ms']:.1f} ms "
                            f"(SQL {summaries[e]['sql_p50_ms']:.1f}/{summaries[e]['sql_p99_ms']:.1f})"
                            for e in ENDPOINTS),
            details={"facts": s.facts, "libraries": s.libraries, "parts": s.parts, **summaries}))
    storage = stage.storage
    chain_tables = ("visit_chain_rows", "activity_chain_rows")
    rolled = {t: v for t, v in storage.items() if t.startswith(("visits_", "activity_")) and t not in chain_tables}
    on_disk = sum(v["bytes_on_disk"] for v in rolled.values())
    facts_on_disk = sum(storage.get(t, {}).get("bytes_on_disk", 0) for t in chain_tables)
    out.append(Figure(
        f"query.rollups.bytes_at_{_millions(stage.facts)}", f"rollup storage at {_millions(stage.facts)} visit facts "
        "(library-month, area-day, area-month; visits and activities)", on_disk / 1e6, "MB",
        bound=facts_on_disk / 1e6, bound_label="the chain rows (facts) on disk",
        notes="; ".join(f"{t}: {v['rows']:,} rows, {v['bytes_on_disk'] / 1e6:,.1f} MB on disk, compression "
                        f"{v['uncompressed'] / max(1, v['bytes_on_disk']):.1f}×" for t, v in storage.items())
              + " (active parts as the fill left them, before background merges)",
        details=storage))
    return out
