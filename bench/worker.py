"""faust worker: events/s per worker into ClickHouse (chDB), against a bare confluent-kafka consume
loop over the same topic; the scaling table (1, 2 and 4 partitions and workers); freshness in
distributed mode (201 at the intake → visible in the query API).

- Fill: N visit-log events from ``Workload.events()`` (encoded with ``services.bus.codec``, keyed by
  library as the intake keys them) on the run's own visit topic (unique prefix, declared layout: 6
  partitions), produced with a plain confluent Producer. Not timed.
- Bound: a confluent-kafka Consumer assigned every partition from the beginning, ``consume(1000)``
  and ``json.loads`` of each value (the first half of the worker's decode), until the end offsets.
- Worker: ``python -m services.processors.worker`` (as ``make worker`` starts it; LOG_LEVEL=WARNING),
  a new consumer group, a fresh chDB store. Startup (process start → first event written) is
  reported apart; events/s is N over first written → every partition's processed offset at the
  log end (the worker's own ``/metrics``). The store's rows are then counted (``FINAL``) against
  the distinct library-days of the events: the work was done.
- py-spy samples the GIL holder while the worker processes (``bench/results/profiles/worker.txt``).
- Scaling: the first ``scale_n`` events on topics with P = 1, 2, 4 partitions and P workers in one
  group (``bench/worker_main.py`` resizes the layout); each worker its own chDB directory (chDB is
  one process per directory; the rows of different partitions are disjoint, libraries being keys).
- Freshness: intake + one worker + query API, submissions at a steady rate, each polled on
  ``/v1/visits`` until its library-day shows it (see ``bench/freshness.py``).
"""

from __future__ import annotations

import json
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
from bench.worker_main import layout
from services.bus.admin import ensure_topics
from services.bus.codec import encode
from services.bus.topics import VISIT_EVENTS, key_for
from services.config import REPO_ROOT, Settings
from services.ops.broker import watermarks
from services.ops.replay import processed_offsets
from tests.kafka.broker import die_with_parent, free_port

GOAL_PER_S = 20_000.0
START = (2024, 1, 1)


@dataclass
class Filled:
    topic: str
    events: int
    library_days: int
    seconds: float
    ends: dict[tuple[str, int], int]


def fill(settings: Settings, registry: Path, n: int, topic: str) -> Filled:
    """Produce the first ``n`` visit events of the workload to ``topic`` (the intake's key and value)."""
    from datetime import date

    workload = Workload(load_reference(registry), date(*START), date(START[0] + 5, 12, 31))
    days: set[tuple[str, object]] = set()
    started = time.monotonic()

    def records():
        for event in islice(workload.events(), n):
            days.add((event.library_id, event.occurred_on))
            yield key_for(event).encode(), encode(event)

    count = produce_all(settings.kafka_bootstrap_servers, topic, records())
    ends = {tp: high for tp, (_low, high) in watermarks(settings, [topic], timeout_s=30).items() if high > 0}
    if sum(ends.values()) != count:
        raise RuntimeError(f"{topic} holds {sum(ends.values())} events, {count} produced")
    return Filled(topic, count, len(days), time.monotonic() - started, ends)


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


def count_rows(store_dsns: list[str]) -> int:
    """``count()`` of visits_library_daily FINAL over the stores, each opened in a child process
    (chDB: one engine per process; this one stays free to open none)."""
    code = ("import sys, json; from services.store.clickhouse import Store\n"
            "total = 0\n"
            "for dsn in json.loads(sys.argv[1]):\n"
            "    s = Store(dsn); total += s.select('SELECT count() AS n FROM visits_library_daily FINAL', {})[0]['n']"
            "; s.close()\n"
            "print(total)\n")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(store_dsns)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, preexec_fn=die_with_parent)
    if done.returncode != 0:
        raise RuntimeError(f"counting rows failed: {done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def run_workers(ctx: Context, name: str, settings: Settings, filled: Filled, workers: int, partitions: int | None,
                profile_s: float = 0.0, timeout_s: float = 1800) -> dict[str, object]:
    """Start ``workers`` worker processes in one group; time them until every event is written."""
    base = settings.state_dir.parent
    services: list[Service] = []
    stores: list[str] = []
    profiler: Profiler | None = None
    try:
        started = time.monotonic()
        for i in range(workers):
            port = free_port()
            store = f"chdb://{base / f'store-{i}'}"
            stores.append(store)
            env = env_of(settings, FAUST_WEB_PORT=str(port), FAUST_DATA_DIR=str(base / f"faust-{i}"),
                         STORE_DSN=store)
            if partitions is not None:
                env["BENCH_PARTITIONS"] = str(partitions)
            module = "bench.worker_main" if partitions is not None else "services.processors.worker"
            service = Service(module, env, base / f"worker-{i}.log")
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
        cpu_s = sum(s.cpu_s() for s in services)
        profile = profiler.top() if profiler else None
    finally:
        for s in services:
            s.stop()
    assert first_at is not None
    rows = count_rows(stores)
    processing_s = finished - first_at
    return {"workers": workers, "partitions": partitions or VISIT_EVENTS.partitions, "events": filled.events,
            "startup_s": first_at - started, "processing_s": processing_s,
            "per_s": filled.events / processing_s, "per_s_including_startup": filled.events / (finished - started),
            "peak_rss_mib": peaks, "cpu_ms_per_event": cpu_s * 1000 / filled.events, "rows": rows,
            "library_days": filled.library_days, "profile": profile}


def _settings(ctx: Context, name: str, partitions: int | None = None) -> Settings:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = ctx.settings(name, bus="kafka", kafka_bootstrap_servers=ctx.kafka_bootstrap, kafka_topic_prefix=prefix,
                            processor_group=f"bench-{uuid.uuid4().hex[:6]}")
    topics = layout(partitions, settings.processor_group) if partitions else None
    if topics:
        ensure_topics(settings.kafka_bootstrap_servers, prefix, topics=topics)
    else:
        ensure_topics(settings.kafka_bootstrap_servers, prefix, group=settings.processor_group)
    return settings


def run(ctx: Context) -> list[Figure]:
    # Full: what one worker folds in a few minutes on 2 cores (about 1–2 thousand events/s, see the profile).
    n, scale_n = (150_000, 50_000) if ctx.full else (50_000, 20_000)
    registry = ctx.registry

    settings = _settings(ctx, "worker")
    filled = fill(settings, registry, n, VISIT_EVENTS.named(settings.kafka_topic_prefix))
    bound = bare_consume(settings.kafka_bootstrap_servers, filled)
    consume_only = bare_consume(settings.kafka_bootstrap_servers, filled, decode_json=False)
    main = run_workers(ctx, "worker", settings, filled, 1, None, profile_s=20 if ctx.full else 8)
    if main["rows"] != filled.library_days:
        raise RuntimeError(f"store has {main['rows']} library-days, the events {filled.library_days}")

    scaling = {}
    for p in (1, 2, 4):
        s = _settings(ctx, f"worker-p{p}", partitions=p)
        f = fill(s, registry, scale_n, VISIT_EVENTS.named(s.kafka_topic_prefix))
        result = run_workers(ctx, f"worker-p{p}", s, f, p, p)
        result["bound_per_s"] = bare_consume(s.kafka_bootstrap_servers, f)["per_s"]
        scaling[p] = result

    per_s = float(main["per_s"])  # type: ignore[arg-type]
    fill_note = (f"{filled.events:,} visit events ({filled.library_days:,} library-days) produced in "
                 f"{filled.seconds:.0f} s")
    figures = [
        Figure("worker.events_per_s", "faust worker: events/s (1 worker, 6 partitions) into ClickHouse (chDB)", per_s,
               "/s", bound=bound["per_s"], bound_label="bare confluent-kafka consume + json.loads",
               goal="≥ 20,000/s; ≥ 30 % of the bound", met=per_s >= GOAL_PER_S and per_s >= 0.3 * bound["per_s"],
               notes=f"{fill_note}; startup {main['startup_s']:.1f} s (process start → first write) not counted, "
                     f"{main['per_s_including_startup']:,.0f}/s with it; store rows = library-days "
                     f"({main['rows']:,}); PROCESSOR_BATCH_ROWS/MS {settings.processor_batch_rows}/"
                     f"{settings.processor_batch_ms}, FAUST_STORE {settings.faust_store}",
               details={"worker": main, "bound": bound, "consume_only": consume_only,
                        "fill_s": filled.seconds}),
        Figure("memory.worker_peak_rss_mib", "memory: faust worker peak RSS", max(main["peak_rss_mib"]), "MiB",  # type: ignore[arg-type]
               notes=f"after folding {filled.events:,} events (memory:// tables)"),
    ]
    for p, result in scaling.items():
        figures.append(Figure(
            f"worker.scaling_p{p}_per_s", f"scaling: events/s with {p} partition(s) and {p} worker(s)",
            float(result["per_s"]), "/s", bound=float(result["bound_per_s"]),  # type: ignore[arg-type]
            bound_label="bare consume, same topic",
            notes=f"{scale_n:,} events; startup {result['startup_s']:.1f} s not counted; each worker its own chDB",
            details=result))
    from bench import freshness

    figures += freshness.run(ctx)
    return figures
