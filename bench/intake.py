"""Intake: OpenRosa submissions/s and p50/p99 latency, against the same server stack answering an
empty 201, for N intake processes and C connections.

The real distributed intake (``python -m services.intake``: uvicorn, one worker per process,
BUS=kafka, the run's broker, topics made by ``services.bus.admin``, the generated 5,000-library
registry, the built forms; the N processes share one state directory, hence one ledger and one
blob store, as replicas on one host would) receives real multipart visit-log XML from a separate
load process (``bench/load.py``: bodies pre-built from ``Workload.arrivals()``, keep-alive
connections, closed loop). Each 201 means what it means in production: Kafka acknowledged the
event (acks=all) and the ledger committed it (SQLite, synchronous=FULL). The upper bound is
``bench/empty_server.py`` run the same way (N processes, same ports, same front, same load): the
same app factory and uvicorn settings, ``POST /submission`` reads the form and answers an empty
201. Each load sends arrivals no earlier load sent, so an intake never sees a flood of duplicates.

What is measured, and where a proxy goes:

- ``measure(urls, …)`` runs one load against base URL(s): one URL (one process, or a proxy in
  front of several), or several (the load spreads its connections over them).
- ``Front``: given the N processes' base URLs, a context manager yielding the URL(s) the load
  hits. ``direct`` (the default) yields them unchanged. A reverse proxy is another ``Front``
  (start it with these upstreams, yield its own address, stop it); name it with
  ``BENCH_INTAKE_FRONT=module:function``, and the same run measures the empty 201 behind it too.

Settings (environment): ``BENCH_INTAKE_PROCESSES`` (default ``1,2``), ``BENCH_INTAKE_CONNECTIONS``
(default ``32,64``), ``BENCH_INTAKE_COUNT`` (submissions per load; 20,000 full, 3,000 quick),
``BENCH_INTAKE_FRONT``. Quick try, results in ``bench/results/`` as every run:
``BENCH_INTAKE_PROCESSES=1 BENCH_INTAKE_CONNECTIONS=32 python -m bench --scale quick --only intake``.

One more load, on the one-process intake at the most connections, runs under py-spy; its top
functions go to ``bench/results/profiles/intake.txt`` and into the figures' details.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from bench.context import Context
from bench.results import Figure
from bench.servers import Profiler, Service, env_of, run_json
from services.bus.admin import ensure_topics
from services.config import Settings
from tests.kafka.broker import free_port
from tests.postgres import create_database, postgres_server

# The goal for the whole (measured through the proxy, 2 replicas, 64 connections).
GOAL_PER_S = 1500.0
GOAL_RATIO = 0.35
GOAL_P99_MS = 150.0
GOAL_PROCESSES, GOAL_CONNECTIONS = 2, 64
# The empty 201 answers ~10× as fast: as many requests would last a second or two, at the mercy
# of whatever else the machine does in it; three times as many make its figure steadier.
BOUND_REQUESTS_FACTOR = 3

Front = Callable[[list[str]], AbstractContextManager[list[str]]]


@contextlib.contextmanager
def direct(upstreams: list[str]) -> Iterator[list[str]]:
    """No proxy: the load spreads its connections over the processes itself."""
    yield upstreams


def front_from_env() -> tuple[Front, str]:
    """``BENCH_INTAKE_FRONT=module:function`` (a ``Front``), else ``direct``; and its name for the figures."""
    spec = os.environ.get("BENCH_INTAKE_FRONT", "")
    if not spec:
        return direct, "direct"
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name), spec


def _ints(name: str, default: str) -> list[int]:
    return [int(n) for n in os.environ.get(name, default).split(",") if n.strip()]


def measure(urls: list[str], registry: str, count: int, warmup: int, connections: int, log: Path,
            skip: int = 0, ready: Path | None = None) -> dict:
    """One closed-loop load of ``count`` submissions (after ``warmup`` untimed ones, from arrival
    ``skip`` on) over ``connections`` keep-alive connections spread over ``urls``: the load's JSON
    summary (``per_s``, ``p50_ms``, ``p99_ms``, ``statuses``, ``loadavg_1m`` …)."""
    args = ["-m", "bench.load", "--registry", registry, "--count", str(count), "--warmup", str(warmup),
            "--skip", str(skip), "--concurrency", str(connections)]
    for url in urls:
        args += ["--url", url]
    return run_json(args + (["--ready", str(ready)] if ready else []), log)


class Processes:
    """N copies of one service module, each on its own port, with the same settings otherwise."""

    def __init__(self, module: str, settings: Settings, ports: list[int], base: Path):
        self.services = [Service(module, env_of(settings, PORT=str(port)), base / f"{module}-{port}.log",
                                 f"http://127.0.0.1:{port}/health") for port in ports]
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]

    def __enter__(self) -> Processes:
        try:
            for service in self.services:
                service.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for service in self.services:
            service.stop()

    def cpu_s(self) -> float:
        return sum(service.cpu_s() for service in self.services)

    def check_alive(self) -> None:
        for service in self.services:
            if not service.alive():
                raise RuntimeError(f"{service.module} died:\n{service.log_tail()}")


class Arrivals:
    """Hands each load the next slice of the workload's arrivals, so no two loads send the same ones."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> int:
        start, self.next = self.next, self.next + n
        return start


def _measured(servers: Processes, urls: list[str], registry: str, count: int, warmup: int, connections: int,
              log: Path, skip: int) -> dict:
    """``measure``, with the servers' CPU time per request added."""
    cpu = servers.cpu_s()
    result = measure(urls, registry, count, warmup, connections, log, skip)
    result["server_cpu_ms_per_request"] = (servers.cpu_s() - cpu) * 1000 / (count + warmup)
    return result


def run(ctx: Context) -> list[Figure]:
    """``BENCH_INTAKE_LEDGER=postgres``: the processes share a PostgreSQL ledger (``LEDGER_DSN``, a
    throw-away cluster from ``tests/postgres.py``), as replicas do in the distributed mode; default
    ``sqlite``, one file shared by the processes of this one host."""
    ledger = os.environ.get("BENCH_INTAKE_LEDGER", "sqlite")
    if ledger not in ("sqlite", "postgres"):
        raise ValueError(f"BENCH_INTAKE_LEDGER is sqlite or postgres, not {ledger!r}")
    with contextlib.ExitStack() as stack:
        ledger_dsn = create_database(stack.enter_context(postgres_server())) if ledger == "postgres" else ""
        return _run(ctx, ledger, ledger_dsn)


def _run(ctx: Context, ledger: str, ledger_dsn: str) -> list[Figure]:
    count = int(os.environ.get("BENCH_INTAKE_COUNT", 20_000 if ctx.full else 3_000))
    warmup, profile_count = (1_000, 8_000) if ctx.full else (300, 2_000)
    processes = _ints("BENCH_INTAKE_PROCESSES", "1,2")
    connections = _ints("BENCH_INTAKE_CONNECTIONS", "32,64")
    front, front_name = front_from_env()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    ports = [free_port() for _ in range(max(processes))]
    settings = ctx.settings("intake", bus="kafka", kafka_bootstrap_servers=ctx.kafka_bootstrap,
                            kafka_topic_prefix=prefix, port=ports[0], ledger_dsn=ledger_dsn)
    base = settings.state_dir.parent
    ensure_topics(settings.kafka_bootstrap_servers, prefix, group=settings.processor_group)
    registry = str(settings.libraries_file)
    load_log = base / "load.log"
    arrivals = Arrivals()
    figures: list[Figure] = []
    profile: dict[str, object] = {}
    peak = 0.0

    for n in processes:
        # Upper bound first: the empty 201 on the same ports behind the same front, same loads.
        bounds = {}
        with Processes("bench.empty_server", settings, ports[:n], base) as empty, front(empty.urls) as urls:
            for c in connections:
                bounds[c] = _measured(empty, urls, registry, BOUND_REQUESTS_FACTOR * count, warmup, c, load_log, 0)
        loads = {}
        with Processes("services.intake", settings, ports[:n], base) as intake, front(intake.urls) as urls:
            for c in connections:
                loads[c] = _measured(intake, urls, registry, count, warmup, c, load_log,
                                     arrivals.take(count + warmup))
                intake.check_alive()
            if n == 1:
                c = max(connections)  # a later slice of arrivals, under py-spy (sampling slows it a little)
                seconds = max(5.0, min(30.0, profile_count / max(1.0, loads[c]["per_s"]) * 0.8))
                ready = base / "profile-load.ready"
                profiler = Profiler(intake.services[0].pid, "intake", seconds, ready=ready)
                loads["profiled"] = measure(urls, registry, profile_count, 0, c, load_log,
                                            arrivals.take(profile_count), ready)
                profile = profiler.top()
                peak = intake.services[0].peak_rss_mib()
            intake.check_alive()
        for c in connections:
            figures += _figures(n, c, loads[c], bounds[c], front_name, ledger, profile if n == 1 else {})
    if peak:
        figures.append(Figure("memory.intake_peak_rss_mib", "memory: intake process peak RSS", peak, "MiB",
                              notes="VmHWM of the one-process intake after its loads and the profiled load",
                              details={"pid_peak_rss_mib": peak}))
    return figures


def _figures(n: int, c: int, measured: dict, bound: dict, front_name: str, ledger: str,
             profile: dict) -> list[Figure]:
    ok = measured["statuses"].get("201", 0)
    if ok != measured["sent"]:
        raise RuntimeError(f"intake ({n} processes, {c} connections) answered {measured['statuses']} "
                           "(expected 201 for all)")
    per_s, bound_per_s = measured["per_s"], bound["per_s"]
    # The first configuration keeps the names earlier runs used, so results stay comparable.
    key = "intake" if (n, c, front_name, ledger) == (1, 32, "direct", "sqlite") else f"intake.p{n}c{c}"
    if front_name != "direct":
        key += "." + front_name.rpartition(":")[2]
    if ledger != "sqlite":
        key += "." + ledger
    where = f"{n} process{'es' if n > 1 else ''}, {c} connections" + ("" if front_name == "direct"
                                                                      else f", behind {front_name}") \
        + ("" if ledger == "sqlite" else f", {ledger} ledger")
    details = {"load": measured, "bound": bound, "profile": profile, "concurrency": c, "processes": n,
               "uvicorn_workers": 1, "front": front_name, "ledger": ledger}
    common = dict(bound_label="empty 201, same server stack", details=details)
    goal: dict[str, object] = {}
    if (n, c) == (GOAL_PROCESSES, GOAL_CONNECTIONS):
        goal = dict(goal=f"≥ {GOAL_PER_S:,.0f}/s; ≥ {GOAL_RATIO:.0%} of the bound; p99 ≤ {GOAL_P99_MS:.0f} ms "
                         "(through the proxy)",
                    met=per_s >= GOAL_PER_S and per_s >= GOAL_RATIO * bound_per_s
                    and measured["p99_ms"] <= GOAL_P99_MS)
    return [
        Figure(f"{key}.submissions_per_s", f"intake ({where}): OpenRosa submissions/s", per_s, "/s",
               bound=bound_per_s, **goal,  # type: ignore[arg-type]
               notes=f"{measured['sent']:,} visit-log submissions ({measured['kinds']}); 201 only after Kafka "
                     f"acks=all and the {ledger} ledger's synchronous commit; one uvicorn worker per process; load "
                     f"average {measured['loadavg_1m']} (1 min, before/after)", **common),
        Figure(f"{key}.latency_p50_ms", f"intake ({where}): latency p50", measured["p50_ms"], "ms",
               bound=bound["p50_ms"], **common),
        Figure(f"{key}.latency_p99_ms", f"intake ({where}): latency p99", measured["p99_ms"], "ms",
               bound=bound["p99_ms"], **common),
    ]
