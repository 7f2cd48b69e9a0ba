"""Lineage (``/v1/lineage/…``) of figures of about 10,000 contributing chains (issue #17: "answers
within the query goals for figures up to 10,000 contributing chains, paginated beyond").

A chDB store is filled as ``bench.query`` fills it (``open_store``, ``fill``: one visit-log chain per
library and open day, 1 % edited, and their events), with enough libraries that a 2025 province's
month holds about ``TARGET`` chains. Through the query service's own routes under uvicorn
(``bench.query.Server``), over real HTTP:

- ``/v1/lineage/visits`` of the province-month nearest ``TARGET`` chains: the first page (the default
  ``page_size`` of 1,000) and a walk of every page to the end, repeated;
- the same after ``POST /v1/approvals`` approved that month (its chains then come from the approval's
  snapshot). The route publishes the action; the bench's publisher archives it into the store as
  the ``approvals`` processor does (``services.store.approvals.write_actions``);
- ``/v1/lineage/growth`` of the area (a commune, or a province's libraries of one type) whose two
  years are nearest ``TARGET`` chains: the first page.

Every request's ``Store.select`` calls are recorded and run again directly on the store: the bound.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from bench.context import Context
from bench.generate import load_reference
from bench.measure import percentile
from bench.query import GOAL_MS, OPEN_DAYS, Recorder, Server, fill, open_store
from bench.results import Figure
from services.domain.approvals import ApprovalAction
from services.domain.flag_checks import FlagCheck
from services.domain.periods import month_end
from services.query.access import add_key
from services.store.approvals import write_actions
from services.store.clickhouse import Store

TARGET = {"quick": 1_000, "full": 10_000}  # chains in the figure
LIBRARIES = {"quick": 300, "full": 2_500}  # libraries filled: a 2025 province-month then holds about TARGET
REPEATS = {"quick": 3, "full": 10}
GROWTH_YEAR = 2025
FIRST_MONTH, LAST_MONTH = date(2021, 1, 1), date(2026, 9, 1)  # whole months of the filled days


class Archive:
    """A publisher that archives approval actions straight into the store, as the ``approvals``
    processor writes what it reads from the log (positions: the order published)."""

    def __init__(self, store: Store):
        self.store, self.position = store, 0

    def publish(self, event: Any) -> None:
        if not isinstance(event, ApprovalAction | FlagCheck):
            raise TypeError(f"the bench archives approval actions only, not {type(event).__name__}")
        self.position += 1
        write_actions(self.store, [(self.position, event)])

    def close(self) -> None:
        pass


@dataclass
class Walk:
    """One walk of every page of a lineage answer: each page's time over HTTP and its SQL run directly."""

    pages_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    items: int = 0
    chains: int = 0


def walk(client: httpx.Client, recorder: Recorder, path: str, params: dict[str, str], *,
         first_only: bool = False) -> Walk:
    out, token = Walk(), None
    while True:
        recorder.log = []
        t0 = time.perf_counter()
        response = client.get(path, params={**params, **({"page_token": token} if token else {})})
        api_ms = (time.perf_counter() - t0) * 1000
        issued, recorder.log = recorder.log, None
        if response.status_code != 200:
            raise RuntimeError(f"{path}?{params}: {response.status_code} {response.text[:300]}")
        body = response.json()  # a client reads the answer
        sql_ms = 0.0
        for sql, sql_params in issued:
            t1 = time.perf_counter()
            recorder.select(sql, sql_params)
            sql_ms += (time.perf_counter() - t1) * 1000
        out.pages_ms.append(api_ms)
        out.sql_ms.append(sql_ms)
        out.items += len(body["items"])
        out.chains = out.chains or body["chains"]
        token = body["next_page_token"]
        if token is None or first_only:
            break
    if not first_only and out.items != out.chains:
        raise RuntimeError(f"{path}?{params}: {out.items} chains listed, the figure has {out.chains}")
    return out


def _province_month(store: Store, target: int) -> tuple[str, date, int]:
    """The 2025 province and month whose chain count is nearest ``target``."""
    row = store.select(
        "SELECT province_2025 AS province, toStartOfMonth(day) AS month, toInt64(count()) AS chains "
        "FROM visit_chain_rows WHERE day BETWEEN {first:Date} AND {last:Date} GROUP BY province, month "
        "ORDER BY abs(chains - {target:Int64}), province, month LIMIT 1",
        {"first": FIRST_MONTH, "last": month_end(LAST_MONTH), "target": target})[0]
    return row["province"], row["month"], row["chains"]


def _growth_area(store: Store, reference: Any, target: int) -> tuple[dict[str, str], int]:
    """The area (a commune under either scheme, or a 2025 province's libraries of one type) whose
    chains in ``GROWTH_YEAR`` and the year before are nearest ``target``: its parameters and count."""
    per_library = store.select(
        "SELECT library_id, toInt64(count()) AS chains FROM visit_chain_rows "
        "WHERE day BETWEEN {first:Date} AND {last:Date} GROUP BY library_id",
        {"first": date(GROWTH_YEAR - 1, 1, 1), "last": date(GROWTH_YEAR, 12, 31)})
    areas: Counter[tuple[tuple[str, str], ...]] = Counter()
    for row in per_library:
        lib = reference.libraries[row["library_id"]]
        for scheme in ("legacy", "2025"):
            areas[(("scheme", scheme), ("commune", lib.area(scheme).commune_code))] += row["chains"]
        areas[(("scheme", "2025"), ("province", lib.area("2025").province_code),
               ("library_type", lib.library_type))] += row["chains"]
    best = min(sorted(areas), key=lambda area: abs(areas[area] - target))
    return dict(best), areas[best]


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 1), "p95_ms": round(percentile(values, 95), 1),
            "max_ms": round(max(values, default=0.0), 1)}


def run(ctx: Context) -> list[Figure]:
    target, libraries, repeats = TARGET[ctx.scale], LIBRARIES[ctx.scale], REPEATS[ctx.scale]
    base = ctx.dir("lineage")
    reference = load_reference(ctx.registry)
    store, _ = open_store(base / "store", reference, libraries, ctx.seed)
    figures: list[Figure] = []
    try:
        filled = fill(store, 0, libraries * OPEN_DAYS, ctx.seed)
        province, month, chains = _province_month(store, target)
        growth_params, growth_chains = _growth_area(store, reference, target)
        print(f"   {libraries * OPEN_DAYS:,} facts filled in {filled['daily_s'] + filled['events_s']:.0f} s; "
              f"figure: 2025 province {province}, {month:%Y-%m}, {chains:,} chains; growth {GROWTH_YEAR}: "
              f"{growth_params}, {growth_chains:,} chains", flush=True)
        keys_file = base / "api-keys.json"
        key = add_key(keys_file, "bench", ["read:all", f"approve:province:2025:{province}"], reference)
        recorder = Recorder(store)
        visits = {"scheme": "2025", "province": province, "granularity": "month", "start": month.isoformat(),
                  "end": month_end(month).isoformat()}
        growth = {**growth_params, "year": str(GROWTH_YEAR)}
        with Server(store, reference, keys_file, Archive(store)) as server, httpx.Client(
                base_url=f"http://127.0.0.1:{server.port}", headers={"X-API-Key": key}, timeout=600) as client:
            where = f"2025 province {province}, {month:%Y-%m}"
            figures += _visits_figures(client, recorder, visits, repeats, "live", where)
            response = client.post("/v1/approvals", json={"scheme": "2025", "province": province,
                                                          "period": f"{month:%Y-%m}"})
            if response.status_code != 202:
                raise RuntimeError(f"approval refused: {response.status_code} {response.text[:300]}")
            series = client.get("/v1/visits", params=visits).json()["series"]
            if [row["status"] for row in series] != ["approved"]:
                raise RuntimeError(f"the month is not served as approved: {series}")
            figures += _visits_figures(client, recorder, visits, repeats, "approved", where)
            walk(client, recorder, "/v1/lineage/growth", growth, first_only=True)  # warm
            firsts = [walk(client, recorder, "/v1/lineage/growth", growth, first_only=True) for _ in range(repeats)]
            api, sql = _stats([w.pages_ms[0] for w in firsts]), _stats([w.sql_ms[0] for w in firsts])
            figures.append(Figure(
                "lineage.growth.first_page_p95_ms",
                f"lineage: /v1/lineage/growth first page, {firsts[0].chains:,} chains", api["p95_ms"], "ms",
                bound=sql["p95_ms"], bound_label="same SQL directly on chDB, p95",
                goal=f"p95 ≤ {GOAL_MS:g} ms (the query goal)", met=api["p95_ms"] <= GOAL_MS,
                notes=f"{growth} ({firsts[0].chains:,} chains over two years); p50 {api['p50_ms']} ms "
                      f"(SQL {sql['p50_ms']}), max {api['max_ms']} ms; {repeats} requests",
                details={"api": api, "sql": sql, "params": growth, "chains": firsts[0].chains}))
    finally:
        store.close()
    return figures


def _visits_figures(client: httpx.Client, recorder: Recorder, params: dict[str, str], repeats: int, state: str,
                    where: str) -> list[Figure]:
    """The first page and the whole walk of ``/v1/lineage/visits``, ``repeats`` times after one warm walk."""
    walk(client, recorder, "/v1/lineage/visits", params)
    walks = [walk(client, recorder, "/v1/lineage/visits", params) for _ in range(repeats)]
    chains, pages = walks[0].chains, len(walks[0].pages_ms)
    first, first_sql = _stats([w.pages_ms[0] for w in walks]), _stats([w.sql_ms[0] for w in walks])
    total, total_sql = _stats([sum(w.pages_ms) for w in walks]), _stats([sum(w.sql_ms) for w in walks])
    page = _stats([ms for w in walks for ms in w.pages_ms])
    details = {"params": params, "chains": chains, "pages": pages, "first_page": first, "first_page_sql": first_sql,
               "walk": total, "walk_sql": total_sql, "any_page": page}
    return [
        Figure(f"lineage.visits.{state}.first_page_p95_ms",
               f"lineage: /v1/lineage/visits first page, {chains:,} chains ({state} month)", first["p95_ms"], "ms",
               bound=first_sql["p95_ms"], bound_label="same SQL directly on chDB, p95",
               goal=f"p95 ≤ {GOAL_MS:g} ms (the query goal)", met=first["p95_ms"] <= GOAL_MS,
               notes=f"{where}: p50 {first['p50_ms']} ms (SQL {first_sql['p50_ms']}), max {first['max_ms']} ms; "
                     f"{repeats} requests", details=details),
        Figure(f"lineage.visits.{state}.walk_p95_ms",
               f"lineage: /v1/lineage/visits, every page of {chains:,} chains ({state} month)", total["p95_ms"],
               "ms", bound=total_sql["p95_ms"], bound_label="same SQL directly on chDB, p95",
               goal=f"each page p95 ≤ {GOAL_MS:g} ms", met=page["p95_ms"] <= GOAL_MS,
               notes=f"{where}: {pages} pages of ≤ 1,000; whole walk p50 {total['p50_ms']} ms "
                     f"(SQL {total_sql['p50_ms']}); a page p50/p95/max {page['p50_ms']}/{page['p95_ms']}/"
                     f"{page['max_ms']} ms; {repeats} walks", details=details),
    ]
