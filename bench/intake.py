"""Intake: OpenRosa submissions/s and p50/p99 latency, against the same FastAPI server answering an
empty 201.

The real distributed intake (``python -m services.intake``: uvicorn, one worker, BUS=kafka, the
run's broker, topics made by ``services.bus.admin``, the generated 5,000-library registry, the
built forms, a fresh ledger) receives real multipart visit-log XML from a separate load process
(``bench/load.py``: bodies pre-built from ``Workload.arrivals()``, keep-alive connections, closed
loop). Each 201 means what it means in production: Kafka acknowledged the event (acks=all) and
the ledger committed it (SQLite, synchronous=FULL). The upper bound is ``bench/empty_server.py``:
same app factory, same uvicorn settings, same load, ``POST /submission`` reads the form and
answers an empty 201. A second, shorter load on the intake runs under py-spy; its top functions
go to ``bench/results/profiles/intake.txt`` and into the figure's details.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from bench.context import Context
from bench.results import Figure
from bench.servers import Profiler, Service, env_of, run_json
from services.bus.admin import ensure_topics
from tests.kafka.broker import free_port

GOAL_PER_S = 1000.0
CONCURRENCY = 32


def _load(url: str, registry: str, count: int, warmup: int, skip: int, log: Path, ready: Path | None = None) -> dict:
    args = ["-m", "bench.load", "--url", url, "--registry", registry, "--count", str(count),
            "--warmup", str(warmup), "--skip", str(skip), "--concurrency", str(CONCURRENCY)]
    return run_json(args + (["--ready", str(ready)] if ready else []), log)


def _measured_load(server: Service, url: str, registry: str, count: int, warmup: int, log: Path) -> dict:
    """The load against ``server``, with the server's CPU time per request added."""
    cpu = server.cpu_s()
    result = _load(url, registry, count, warmup, 0, log)
    result["server_cpu_ms_per_request"] = (server.cpu_s() - cpu) * 1000 / (count + warmup)
    return result


def run(ctx: Context) -> list[Figure]:
    count, warmup, profile_count = (20_000, 1_000, 8_000) if ctx.full else (3_000, 300, 2_000)
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = ctx.settings("intake", bus="kafka", kafka_bootstrap_servers=ctx.kafka_bootstrap,
                            kafka_topic_prefix=prefix, port=free_port())
    base = settings.state_dir.parent
    ensure_topics(settings.kafka_bootstrap_servers, prefix, group=settings.processor_group)
    registry = settings.libraries_file
    url = f"http://127.0.0.1:{settings.port}"

    # Upper bound first: the empty server, same settings, same load.
    empty = Service("bench.empty_server", env_of(settings), base / "empty_server.log", f"{url}/health")
    try:
        bound = _measured_load(empty.start(), url, registry, count, warmup, base / "load.log")
    finally:
        empty.stop()

    intake = Service("services.intake", env_of(settings), base / "intake.log", f"{url}/health")
    try:
        measured = _measured_load(intake.start(), url, registry, count, warmup, base / "load.log")
        # A second load, on later arrivals, under py-spy (sampling slows the server a little).
        seconds = max(5.0, min(30.0, profile_count / max(1.0, measured["per_s"]) * 0.8))
        ready = base / "profile-load.ready"
        profiler = Profiler(intake.pid, "intake", seconds, ready=ready)
        profiled = _load(url, registry, profile_count, 0, count + warmup, base / "load.log", ready)
        profile = profiler.top()
        peak = intake.peak_rss_mib()
        if not intake.alive():
            raise RuntimeError(f"intake died:\n{intake.log_tail()}")
    finally:
        intake.stop()

    ok = measured["statuses"].get("201", 0)
    if ok != measured["sent"]:
        raise RuntimeError(f"intake answered {measured['statuses']} (expected 201 for all): {intake.log_tail()}")
    per_s, bound_per_s = measured["per_s"], bound["per_s"]
    details = {"load": measured, "bound": bound, "profiled_load": profiled, "profile": profile,
               "concurrency": CONCURRENCY, "uvicorn_workers": 1}
    common = dict(bound_label="empty 201, same server", details=details)
    return [
        Figure("intake.submissions_per_s", "intake: OpenRosa submissions/s", per_s, "/s", bound=bound_per_s,
               goal="≥ 1,000/s; ≥ 50 % of the bound", met=per_s >= GOAL_PER_S and per_s >= 0.5 * bound_per_s,
               notes=f"{measured['sent']:,} visit-log submissions ({measured['kinds']}), {CONCURRENCY} keep-alive "
                     "connections from a separate process; 201 only after Kafka acks=all and the ledger's "
                     "synchronous commit; one uvicorn worker", **common),
        Figure("intake.latency_p50_ms", "intake: latency p50", measured["p50_ms"], "ms", bound=bound["p50_ms"],
               **common),
        Figure("intake.latency_p99_ms", "intake: latency p99", measured["p99_ms"], "ms", bound=bound["p99_ms"],
               **common),
        Figure("memory.intake_peak_rss_mib", "memory: intake process peak RSS", peak, "MiB",
               notes="VmHWM after the measured and the profiled load", details={"pid_peak_rss_mib": peak}),
    ]
