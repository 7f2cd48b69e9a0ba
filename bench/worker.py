"""faust worker: events/s per worker into ClickHouse, against two bounds measured on the same topic in
the same run: a bare confluent-kafka consume loop, and faust's own ceiling (an agent that only takes
and acks ``take_events`` batches, ``bench/faust_ceiling.py``); the scaling table (1, 2 and 4 workers
on the declared 12 partitions, one shared store); freshness in distributed mode (201 at the intake →
visible in the query API).

- Fill: N visit-log events from ``Workload.events()`` (encoded with ``services.bus.codec``, keyed by
  chain as the intake keys them) on the run's own visit topic (unique prefix, declared layout: 12
  partitions), produced with a plain confluent Producer. Not timed.
- Bound: a confluent-kafka Consumer assigned every partition from the beginning, ``consume(1000)``
  and ``json.loads`` of each value (the first half of the worker's decode), until the end offsets.
- Worker: ``python -m services.processors.worker`` (as ``make worker`` starts it; LOG_LEVEL=WARNING),
  a new consumer group, a fresh chDB store. Startup (process start → first event written) is
  reported apart; events/s is N over first written → every partition's processed offset at the
  log end (the worker's own ``/metrics``). The store's chains are then counted (``FINAL``) against
  the distinct chains of the events: the work was done.
- py-spy samples the GIL holder while the worker processes (``bench/results/profiles/worker.txt``).
- Scaling: the first ``scale_n`` events, 1, 2 and 4 workers in one group on the 12 partitions, all
  writing to one ClickHouse server (``tests/clickhouse_http.py``: chDB behind ClickHouse's HTTP
  interface, the store the workers share, as in production); the CPU each worker used is recorded.
- Freshness: intake + one worker + query API, submissions at a steady rate, each polled on
  ``/v1/visits`` until its library-day shows it (see ``bench/freshness.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.context import Context
from bench.generate import Workload, load_reference
from bench.produce import produce_all
from bench.results import Figure
from bench.servers import Profiler, Service, env_of
from services.bus.admin import ensure_topics
from services.bus.codec import encode
from services.bus.topics import VISIT_EVENTS, key_for
from services.config import REPO_ROOT, Settings
from services.ops.broker import watermarks
from services.ops.replay import processed_offsets
from tests.clickhouse_http import ClickHouseServer
from tests.kafka.broker import die_with_parent, free_port

GOAL_PER_S = 20_000.0
START = (2024, 1, 1)


@dataclass
class Filled:
    topic: str
    events: int
    chains: int
    seconds: float
    ends: dict[tuple[str, int], int]


def fill(settings: Settings, registry: Path, n: int, topic: str) -> Filled:
    """Produce the first ``n`` visit events of the workload to ``topic`` (the intake's key and value)."""
    from datetime import date

    workload = Workload(load_reference(registry), date(*START), date(START[0] + 5, 12, 31))
    chains: set[str] = set()
    started = time.monotonic()

    def records():
        for event in islice(workload.events(), n):
            chains.add(event.root_id)
            yield key_for(event).encode(), encode(event)

    count = produce_all(settings.kafka_bootstrap_servers, topic, records())
    ends = {tp: high for tp, (_low, high) in watermarks(settings, [topic], timeout_s=30).items() if high > 0}
    if sum(ends.values()) != count:
        raise RuntimeError(f"{topic} holds {sum(ends.values())} events, {count} produced")
    return Filled(topic, count, len(chains), time.monotonic() - started, ends)


def bare_consume(bootstrap: str, filled: Filled, decode_json: bool = True) -> dict[str, float]:
    """The bound: read every partition from the beginning to its end offset (and ``json.loads`` each value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-bare-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    remaining = {p: end for (_t, p), end in filled.ends.items()}
    count = 0
    started = time.perf_counter()
    try:
        consumer.assign([TopicPartition(filled.topic, p, OFFSET_BEGINNING) for p in remaining])
        while remaining:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is not None:
                    continue
                if decode_json:
                    json.loads(message.value())
                count += 1
                if message.offset() >= remaining.get(message.partition(), 1 << 62) - 1:
                    remaining.pop(message.partition(), None)
            if time.perf_counter() - started > 900:
                raise RuntimeError(f"bare consumer stuck with {remaining} left")
    finally:
        consumer.close()
    elapsed = time.perf_counter() - started
    return {"events": count, "seconds": elapsed, "per_s": count / elapsed}


def count_rows(store_dsn: str) -> int:
    """``count()`` of visit_chains FINAL, the store opened in a child process (chDB: one engine per
    process; this one stays free to open none)."""
    code = ("import sys; from services.store.clickhouse import Store\n"
            "s = Store(sys.argv[1]); print(s.select('SELECT count() AS n FROM visit_chain_rows FINAL', {})[0]['n'])\n")
    done = subprocess.run([sys.executable, "-c", code, store_dsn], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, preexec_fn=die_with_parent)
    if done.returncode != 0:
        raise RuntimeError(f"counting rows failed: {done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def run_workers(ctx: Context, name: str, settings: Settings, filled: Filled, workers: int, store: str,
                profile_s: float = 0.0, timeout_s: float = 1800) -> dict[str, object]:
    """Start ``workers`` worker processes in one group on ``store``; time them until every event is written."""
    base = settings.state_dir.parent
    services: list[Service] = []
    profiler: Profiler | None = None
    try:
        started = time.monotonic()
        for i in range(workers):
            port = free_port()
            env = env_of(settings, FAUST_WEB_PORT=str(port), FAUST_DATA_DIR=str(base / f"faust-{i}"), STORE_DSN=store)
            service = Service("services.processors.worker", env, base / f"worker-{i}.log")
            service.port = port  # type: ignore[attr-defined]
            services.append(service.start())
        first_at = None
        done: dict[tuple[str, int], int] = {}
        while True:
            for s in services:
                if not s.alive():
                    raise RuntimeError(f"worker died:\n{s.log_tail()}")
                for tp, offset in processed_offsets(s.port).items():  # type: ignore[attr-defined]
                    if tp[0] == filled.topic:
                        done[tp] = max(done.get(tp, -1), offset)
            now = time.monotonic()
            if done and first_at is None:
                first_at = now
                if profile_s:
                    profiler = Profiler(services[0].pid, name, profile_s)
            if all(done.get(tp, -1) + 1 >= end for tp, end in filled.ends.items()):
                break
            if now - started > timeout_s:
                raise RuntimeError(f"not caught up after {timeout_s}s: {done} of {filled.ends}\n"
                                   f"{services[0].log_tail()}")
            time.sleep(0.2)
        finished = time.monotonic()
        peaks = [s.peak_rss_mib() for s in services]
        cpu = [s.cpu_s() for s in services]
        profile = profiler.top() if profiler else None
    finally:
        for s in services:
            s.stop()
    assert first_at is not None
    processing_s = finished - first_at
    return {"workers": workers, "partitions": VISIT_EVENTS.partitions, "events": filled.events,
            "startup_s": first_at - started, "processing_s": processing_s,
            "per_s": filled.events / processing_s, "per_s_including_startup": filled.events / (finished - started),
            "peak_rss_mib": peaks, "cpu_s_per_worker": cpu, "cpu_ms_per_event": sum(cpu) * 1000 / filled.events,
            "chains": filled.chains, "profile": profile}


def faust_ceiling(settings: Settings, filled: Filled, timeout_s: float = 1800) -> dict[str, float]:
    """faust alone on the same topic: ``bench/faust_ceiling.py`` takes and acks batches, nothing else."""
    base = settings.state_dir.parent
    out = base / f"ceiling-{uuid.uuid4().hex[:6]}.json"
    env = env_of(settings, FAUST_WEB_PORT=str(free_port()), FAUST_DATA_DIR=str(base / "faust-ceiling"),
                 BENCH_TOPIC=filled.topic, BENCH_EVENTS=str(filled.events), BENCH_OUT=str(out))
    service = Service("bench.faust_ceiling", env, base / "faust-ceiling.log").start()
    try:
        deadline = time.monotonic() + timeout_s
        while not out.exists():
            if not service.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the faust ceiling probe stopped:\n{service.log_tail()}")
            time.sleep(0.2)
        time.sleep(0.2)
        result = json.loads(out.read_text())
    finally:
        service.stop()
    return {**result, "per_s": result["events"] / result["seconds"]}


def _settings(ctx: Context, name: str) -> Settings:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = ctx.settings(name, bus="kafka", kafka_bootstrap_servers=ctx.kafka_bootstrap, kafka_topic_prefix=prefix,
                            processor_group=f"bench-{uuid.uuid4().hex[:6]}")
    ensure_topics(settings.kafka_bootstrap_servers, prefix, group=settings.processor_group)
    return settings


def run(ctx: Context) -> list[Figure]:
    n, scale_n = (int(os.environ.get("BENCH_WORKER_EVENTS", 300_000)), 100_000) if ctx.full else (50_000, 30_000)
    registry = ctx.registry

    settings = _settings(ctx, "worker")
    filled = fill(settings, registry, n, VISIT_EVENTS.named(settings.kafka_topic_prefix))
    bound = bare_consume(settings.kafka_bootstrap_servers, filled)
    consume_only = bare_consume(settings.kafka_bootstrap_servers, filled, decode_json=False)
    ceiling = faust_ceiling(settings, filled)
    store = f"chdb://{settings.state_dir.parent / 'store'}"
    main = run_workers(ctx, "worker", settings, filled, 1, store, profile_s=20 if ctx.full else 8)
    rows = count_rows(store)
    if rows != filled.chains:
        raise RuntimeError(f"store has {rows} visit chains, the events {filled.chains}")

    scaling = {}
    for workers in (1, 2, 4):
        s = _settings(ctx, f"worker-w{workers}")
        f = fill(s, registry, scale_n, VISIT_EVENTS.named(s.kafka_topic_prefix))
        server = ClickHouseServer(str(s.state_dir.parent / "clickhouse")).start()
        try:
            result = run_workers(ctx, f"worker-w{workers}", s, f, workers, server.dsn)
        finally:
            server.stop()
        result["bound_per_s"] = bare_consume(s.kafka_bootstrap_servers, f)["per_s"]
        scaling[workers] = result

    per_s = float(main["per_s"])  # type: ignore[arg-type]
    fill_note = f"{filled.events:,} visit events ({filled.chains:,} chains) produced in {filled.seconds:.0f} s"
    figures = [
        Figure("worker.events_per_s", "faust worker: events/s (1 worker, 12 partitions) into ClickHouse (chDB)",
               per_s, "/s", bound=bound["per_s"], bound_label="bare confluent-kafka consume + json.loads",
               goal="≥ 20,000/s; ≥ 25 % of the bound", met=per_s >= GOAL_PER_S and per_s >= 0.25 * bound["per_s"],
               notes=f"{fill_note}; startup {main['startup_s']:.1f} s (process start → first write) not counted, "
                     f"{main['per_s_including_startup']:,.0f}/s with it; store chains = the events' chains "
                     f"({rows:,}); PROCESSOR_BATCH_ROWS/MS {settings.processor_batch_rows}/"
                     f"{settings.processor_batch_ms}",
               details={"worker": main, "bound": bound, "consume_only": consume_only, "fill_s": filled.seconds}),
        Figure("worker.faust_ceiling_share", "faust worker: events/s against faust's own ceiling", per_s, "/s",
               bound=ceiling["per_s"], bound_label="faust agent that only takes and acks take_events batches",
               goal="≥ 50 % of the ceiling", met=per_s >= 0.5 * ceiling["per_s"], details=ceiling),
        Figure("memory.worker_peak_rss_mib", "memory: faust worker peak RSS", max(main["peak_rss_mib"]), "MiB",  # type: ignore[arg-type]
               goal="≤ 1 GB", met=max(main["peak_rss_mib"]) <= 1024,  # type: ignore[arg-type]
               notes=f"after folding {filled.events:,} events (state in the store)"),
    ]
    one = float(scaling[1]["per_s"])  # type: ignore[arg-type]
    for workers, result in scaling.items():
        rate = float(result["per_s"])  # type: ignore[arg-type]
        cpu = ", ".join(f"{c:.0f}" for c in result["cpu_s_per_worker"])  # type: ignore[attr-defined]
        figures.append(Figure(
            f"worker.scaling_w{workers}_per_s", f"scaling: events/s with {workers} worker(s) on 12 partitions",
            rate, "/s", bound=one * workers, bound_label=f"{workers} × one worker's rate",
            goal="per worker ≥ 80 % of one worker's, when each has a core (2 cores here)",
            met=(rate / workers >= 0.8 * one) if workers <= (os.cpu_count() or 1) else None,
            notes=f"{scale_n:,} events; one shared ClickHouse (tests/clickhouse_http.py); CPU s per worker: {cpu}; "
                  f"startup {result['startup_s']:.1f} s not counted",
            details=result))
    from bench import freshness

    figures += freshness.run(ctx)
    return figures
