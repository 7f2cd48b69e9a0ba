"""Replay: the whole log into an empty store, as ``thuvien replay`` does it (goal: 10 million
events in ≤ 10 min embedded, ≤ 15 min through Kafka).

The log is filled first (not timed) with the workload's visit-log events — five years of daily
logs of the generated registry, late arrivals and edits included — by parallel generator
processes. Then ``python -m services.ops replay`` runs as an operator runs it, into a fresh
store, and is timed from start to "done":

- embedded: the SQLite log (``bus.sqlite``) through the embedded stack's processors;
- distributed: a Kafka topic through a new consumer group's faust worker.

The peak RSS of the replaying processes is recorded too.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from bench.context import Context
from bench.generate import Workload, load_reference
from bench.measure import watch_peak_rss
from bench.produce import produce_all
from bench.results import Figure
from services.bus.embedded import EmbeddedLog
from services.bus.topics import VISIT_EVENTS
from services.config import REPO_ROOT, Settings
from services.store.clickhouse import Store

GOAL_EVENTS = 10_000_000
GOAL_MIN = {"embedded": 10, "distributed": 15}
START, END = date(2021, 7, 1), date(2026, 6, 30)  # five years of daily logs


def _shard_records(args: tuple[Path, int, int, int, str]) -> tuple[str, int]:
    """Write one shard's ``(key, JSON)`` records, up to ``limit``, to a file of length-prefixed lines."""
    registry, index, count, limit, out = args
    workload = Workload(load_reference(registry), START, END).shard(index, count)
    n = 0
    with open(out, "wb") as fh:
        for key, value in workload.event_records():
            fh.write(f"{key}\t{len(value)}\n".encode())
            fh.write(value)
            n += 1
            if n >= limit:
                break
    return out, n


def _read_records(path: str):
    with open(path, "rb") as fh:
        while header := fh.readline():
            key, size = header.decode().rstrip("\n").split("\t")
            yield key, fh.read(int(size))


def generate(ctx: Context, events: int, workdir: Path) -> tuple[list[str], int, float]:
    """``events`` records in shard files, made by one process per core; (files, count, seconds)."""
    shards = os.cpu_count() or 2
    started = time.perf_counter()
    jobs = [(ctx.registry, i, shards, -(-events // shards), str(workdir / f"shard-{i}.bin")) for i in range(shards)]
    with multiprocessing.get_context("spawn").Pool(shards) as pool:
        done = pool.map(_shard_records, jobs)
    return [path for path, _ in done], sum(n for _, n in done), time.perf_counter() - started


def fill_embedded_log(log_path: Path, files: list[str]) -> int:
    EmbeddedLog(log_path).close()  # the log's table, as the stack makes it
    db = sqlite3.connect(log_path, isolation_level=None)
    n = 0
    try:
        db.execute("PRAGMA synchronous=OFF")  # filling a benchmark's log, not accepting submissions
        db.execute("BEGIN")
        now = time.time()
        for path in files:
            rows = ((VISIT_EVENTS.name, key, value, now) for key, value in _read_records(path))
            before = db.total_changes
            db.executemany("INSERT INTO log (topic, key, value, appended_at) VALUES (?, ?, ?, ?)", rows)
            n += db.total_changes - before
        db.execute("COMMIT")
    finally:
        db.close()
    return n


def fill_topic(bootstrap: str, topic: str, files: list[str]) -> int:
    records = ((key.encode(), value) for path in files for key, value in _read_records(path))
    return produce_all(bootstrap, topic, records)


def _replay(settings: Settings, args: list[str], log: Path, timeout_s: float) -> tuple[float, float]:
    """Run ``python -m services.ops replay ARGS``; (seconds, largest peak RSS among it and its children, MiB)."""
    env = {**os.environ, **settings.to_env(), "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "services.ops", "replay", *args], cwd=REPO_ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
        with ThreadPoolExecutor(1) as pool:
            peaks = pool.submit(watch_peak_rss, process.pid)
            returncode = process.wait(timeout_s)
            rss = max(peaks.result().values(), default=0.0)
    took = time.perf_counter() - started
    if returncode != 0:
        raise RuntimeError(f"replay exited {returncode}: {log.read_text(errors='replace')[-3000:]}")
    return took, rss


def _stored(dsn: str) -> dict[str, int]:
    store = Store(dsn)
    try:
        return {"events": store.select("SELECT count() AS n FROM events FINAL")[0]["n"],
                "visit_chains": store.select("SELECT count() AS n FROM visit_chain_rows FINAL")[0]["n"]}
    finally:
        store.close()


def _figure(mode: str, events: int, took: float, rss: float, details: dict[str, object]) -> list[Figure]:
    rate = events / took
    at_goal = GOAL_EVENTS / rate
    label = f"replay ({mode}): events/s, whole log into an empty store"
    measured = "measured" if events >= GOAL_EVENTS else f"extrapolated from {events:,} events"
    return [
        Figure(f"replay.{mode}.events_per_s", label, rate, "events/s", details=details),
        Figure(f"replay.{mode}.minutes_for_10M", f"replay ({mode}): minutes for 10 million events ({measured})",
               at_goal / 60, "min", goal=f"≤ {GOAL_MIN[mode]} min, measured on 10 M",
               met=events >= GOAL_EVENTS and at_goal <= GOAL_MIN[mode] * 60),
        Figure(f"replay.{mode}.peak_rss_mib", f"replay ({mode}): peak RSS of the replaying processes", rss, "MiB"),
    ]


def run(ctx: Context) -> list[Figure]:
    embedded_events = int(os.environ.get("BENCH_REPLAY_EVENTS", GOAL_EVENTS if ctx.full else 200_000))
    kafka_events = int(os.environ.get("BENCH_REPLAY_KAFKA_EVENTS", 2_000_000 if ctx.full else 100_000))
    work = ctx.dir("replay")
    files, generated, gen_s = generate(ctx, max(embedded_events, kafka_events), work)
    figures: list[Figure] = []

    # Embedded: the SQLite log through the embedded processors.
    settings = ctx.settings("replay-embedded", bus="embedded")
    log_path = settings.state_dir / "bus.sqlite"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    filled = fill_embedded_log(log_path, _first(files, embedded_events, work / "embedded-shard.bin"))
    to_store = f"chdb://{settings.state_dir.parent / 'replayed'}"
    took, rss = _replay(settings, ["--embedded", "--log", str(log_path), "--state-dir",
                                   str(settings.state_dir / "replay-state"), "--to-store", to_store,
                                   "--from-beginning"], work / "embedded.log", timeout_s=3 * 3600)
    stored = _stored(to_store)
    figures += _figure("embedded", filled, took, rss, {"events": filled, "seconds": round(took, 1),
                                                       "generated_in_s": round(gen_s, 1), "store": stored})

    # Distributed: a Kafka topic through a new consumer group's worker.
    prefix = f"bench-replay-{int(time.time())}-"
    settings = ctx.settings("replay-kafka", bus="kafka", kafka_bootstrap_servers=ctx.kafka_bootstrap,
                            kafka_topic_prefix=prefix)
    from services.bus.admin import ensure_topics

    ensure_topics(settings.kafka_bootstrap_servers, prefix, 1)
    kafka_files = _first(files, kafka_events, work / "kafka-shard.bin")
    produced = fill_topic(settings.kafka_bootstrap_servers, prefix + VISIT_EVENTS.name, kafka_files)
    to_store = f"chdb://{settings.state_dir.parent / 'replayed'}"
    took, rss = _replay(settings, ["--group", "bench-replay", "--to-store", to_store, "--from-beginning"],
                        work / "kafka.log", timeout_s=3 * 3600)
    stored = _stored(to_store)
    figures += _figure("distributed", produced, took, rss, {"events": produced, "seconds": round(took, 1),
                                                            "store": stored})
    for path in files:
        Path(path).unlink(missing_ok=True)
    return figures


def _first(files: list[str], limit: int, out: Path) -> list[str]:
    """The first ``limit`` records across the shard files, interleaved, as one file."""
    readers = [_read_records(path) for path in files]
    n = 0
    with out.open("wb") as fh:
        while readers and n < limit:
            for reader in list(readers):
                record = next(reader, None)
                if record is None:
                    readers.remove(reader)
                    continue
                key, value = record
                fh.write(f"{key}\t{len(value)}\n".encode())
                fh.write(value)
                n += 1
                if n >= limit:
                    break
    return [str(out)]
