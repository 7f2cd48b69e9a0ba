"""Embedded mode (`make run`'s one process): submissions/s end to end, freshness, memory.

- End to end: ``python -m services.embedded`` (intake + SQLite log + processors + chDB + query
  API in one process) receives the workload's visit logs from the load process (``bench.load``,
  real multipart XML over HTTP, closed loop); the figure is submissions per second from the first
  request until the last one's event is in the store (``processor_events_processed_total``).
- Upper bound: chDB bulk insert of the same rows — the ``events`` and ``visit_chain_rows``
  rows that run produced, read back and inserted into empty tables in one insert each.
- Freshness: while the load process sends at a steady rate, single submissions are sent and the
  query API is polled until each one's library-day shows its total: time from the 201 to visible.
- Memory: the process's peak RSS (VmHWM) at the end.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import date, timedelta

import httpx

from bench.context import Context
from bench.generate import Workload, load_reference
from bench.measure import percentile
from bench.results import Figure
from bench.servers import Profiler, Service, env_of, run_json
from services.query.access import add_key
from services.store.clickhouse import Store
from services.tools.submissions import fill_instance, multipart
from tests.kafka.broker import free_port

OPENROSA = {"X-OpenRosa-Version": "1.0"}
FRESH_DAY = date(2026, 6, 1)  # after every day the load sends: a freshness sample is the day's only report


def _counter(base_url: str, name: str, label: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{") and label in line)


def _processed(base_url: str) -> float:
    """Visit events the daily-visits processor has taken (whatever the outcome)."""
    return _counter(base_url, "processor_events_processed_total", 'processor="daily_visits"')


def _published(base_url: str) -> float:
    """Submissions the intake accepted as new (published); an identical resend publishes nothing."""
    return _counter(base_url, "intake_submissions_accepted_total", 'kind="new"')


def _bulk_bound(store_dsn: str, submissions: int) -> tuple[float, dict[str, object]]:
    """Submissions/s if the same rows went into chDB in one bulk insert per table."""
    store = Store(store_dsn)
    try:
        took, rows = 0.0, {}
        for table in ("events", "visit_chain_rows"):
            found = store.select(f"SELECT * FROM {table}")
            columns = list(found[0]) if found else []
            data = [list(row.values()) for row in found]
            store.select(f"CREATE TABLE bulk_{table} AS {table}")
            started = time.perf_counter()
            store.insert_rows(f"bulk_{table}", columns, data)
            took += time.perf_counter() - started
            rows[table] = len(data)
    finally:
        store.close()
    return submissions / took, {"rows": rows, "insert_s": round(took, 3)}


def _freshness(base_url: str, api_key: str, xform: bytes, workload: Workload, samples: int) -> list[float]:
    """Seconds from each sample's 201 until /v1/visits shows its library-day."""
    libraries = workload.libraries[::max(1, len(workload.libraries) // samples)][:samples]
    day = workload.end + timedelta(days=1)
    out = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for n, library in enumerate(libraries):
            answers = workload.answers(library, day, 1000 + n, random.Random(n))
            xml = fill_instance(xform, answers, f"uuid:fresh-{n:05d}-{library.library_id}")
            answered = client.post("/submission", files=multipart(xml), headers=OPENROSA)
            at = time.perf_counter()
            if answered.status_code != 201:
                raise RuntimeError(f"freshness sample refused: {answered.status_code} {answered.text[:300]}")
            while True:
                got = client.get("/v1/visits", headers={"X-API-Key": api_key}, params={
                    "scheme": "legacy", "library": library.library_id, "start": day.isoformat(),
                    "end": day.isoformat(), "granularity": "day"}).json()
                if any(row.get("visits_total") == 1000 + n for row in got.get("series", [])):
                    out.append(time.perf_counter() - at)
                    break
                if time.perf_counter() - at > 30:
                    raise RuntimeError(f"{library.library_id} not visible 30 s after its 201: {got}")
                time.sleep(0.005)
    return out


def run(ctx: Context) -> list[Figure]:
    count, warmup, concurrency = (20_000, 1_000, 64) if ctx.full else (3_000, 200, 32)
    port = free_port()
    settings = ctx.settings("embedded", port=port, bus="embedded")
    keys = settings.state_dir.parent / "api-keys.json"
    api_key = add_key(keys, "bench", ["read:all"])
    base_url = f"http://127.0.0.1:{port}"
    log_dir = settings.state_dir.parent
    service = Service("services.embedded", env_of(settings, API_KEYS_FILE=str(keys), LOG_LEVEL="WARNING"),
                      log_dir / "embedded.log", health_url=f"{base_url}/health").start()
    figures: list[Figure] = []
    try:
        ready = log_dir / "load.ready"
        profile = Profiler(service.pid, "embedded-e2e", 20 if ctx.full else 8, ready=ready, mode="gil")
        before, published_before = _processed(base_url), _published(base_url)
        load = run_json(["-m", "bench.load", "--url", base_url, "--registry", str(ctx.registry),
                         "--count", str(count), "--warmup", str(warmup), "--concurrency", str(concurrency),
                         "--ready", str(ready)], log_dir / "load.log")
        # The load's warm-up and build time are not ours: time from its first timed request.
        first_request = time.perf_counter() - load["elapsed_s"]
        published = _published(base_url) - published_before  # warm-up included, as in `processed`
        while _processed(base_url) - before < published and time.perf_counter() - first_request < 600:
            time.sleep(0.05)
        processed = _processed(base_url) - before
        if processed < published:
            raise RuntimeError(f"only {processed:.0f} of {published:.0f} published events processed after 600 s")
        e2e_s = time.perf_counter() - first_request
        top = profile.top()

        reference = load_reference(ctx.registry)
        workload = Workload(reference, FRESH_DAY, FRESH_DAY)
        xform = httpx.get(f"{base_url}/forms/visit_log.xml", headers=OPENROSA, timeout=30).content
        background = threading.Thread(target=run_json, daemon=True, args=(
            ["-m", "bench.load", "--url", base_url, "--registry", str(ctx.registry), "--count", str(count // 10),
             "--skip", str(count + warmup), "--rate", "100", "--concurrency", "16"], log_dir / "load-steady.log"))
        background.start()
        time.sleep(2)
        fresh = _freshness(base_url, api_key, xform, workload, 200 if ctx.full else 40)
        background.join()
        rss = service.peak_rss_mib()
    finally:
        service.stop()
    bound, bulk = _bulk_bound(settings.store_dsn, int(processed))
    rate = (processed - warmup) / e2e_s  # the warm-up's events came before the clock started (conservative)
    details = {"load": load, "events_processed": processed, "e2e_s": round(e2e_s, 2), "bulk": bulk,
               "profile": top}
    (log_dir / "details.json").write_text(json.dumps(details, indent=2, default=str))
    figures.append(Figure("embedded.submissions_per_s", "embedded: submissions/s end to end (HTTP → store)", rate,
                          "/s", bound, "chDB bulk insert of the same rows", "≥ 2,000/s", rate >= 2000,
                          details=details))
    figures.append(Figure("embedded.latency_p99_ms", "embedded: submission p99 latency (201 after the store)",
                          load["p99_ms"], "ms", details={"p50_ms": load["p50_ms"]}))
    p50, p99 = percentile(fresh, 50), percentile(fresh, 99)
    figures.append(Figure("embedded.freshness_p99_s", "embedded: freshness p99, 201 → visible in /v1/visits", p99,
                          "s", goal="p99 ≤ 1 s", met=p99 <= 1.0, details={"p50_s": p50, "samples": len(fresh)}))
    figures.append(Figure("embedded.peak_rss_mib", "embedded: peak RSS of the one process", rss, "MiB",
                          goal="≤ 1.5 GB", met=rss <= 1.5 * 1024))
    return figures

