"""Rebuild a store from the log: every event again, through the same processors, into a fresh store.

Distributed: a new consumer group has its own internal topics (made first) and new offsets; the
processors' state starts empty in the fresh store. The group's starting offsets are committed on every topic the worker
reads, then one worker (``services/processors/worker.py``, the same code, in a child process with
``PROCESSOR_GROUP`` and ``STORE_DSN`` overridden) runs until it has written everything that was
in the log when the replay began, and is stopped. Progress comes from the worker's
``processor_processed_offset`` (its ``/metrics``) and the group's commits.

Embedded: the SQLite log (``bus.sqlite``) is read from a position into fresh processor state
(``--state-dir``) and the fresh store, by the embedded stack's runner of the declared pipeline
(``services/processors/embedded.py``).

The fold state starts empty either way: replayed from a date or an offset, an edit whose
original lies before it is applied as if new. ``--from-beginning`` rebuilds everything.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO

import httpx

from services.bus.admin import ensure_topics
from services.bus.embedded import EmbeddedLog
from services.config import REPO_ROOT, TIMEZONE, Settings
from services.ops import broker
from services.ops.progress import Progress
from services.processors.embedded import EmbeddedRunner, state_files
from services.processors.pipeline import pipeline_for
from services.store.clickhouse import Store

# ------------------------------------------------------------------------------ shared


def fresh_store_problem(dsn: str) -> str | None:
    """Why ``dsn`` is not a fresh store ('' / None when it is: no chDB directory or an empty one; a
    server database without events). A replay adds to what is there, so it wants an empty one."""
    if dsn.startswith("chdb://"):
        path = Path(dsn.removeprefix("chdb://"))
        if path.exists() and any(path.iterdir()):
            return f"{path} is not empty: give a new directory (chdb://NEW_PATH)"
        return None
    try:
        store = Store(dsn)
    except Exception as exc:
        return f"cannot reach the store: {exc}"
    try:
        if "events" in store.tables() and store.select("SELECT count() AS n FROM events")[0]["n"]:
            return "its events table is not empty: give a new database"
        return None
    finally:
        store.close()


def processed_offsets(web_port: int) -> dict[tuple[str, int], int]:
    """``processor_processed_offset`` from a worker's /metrics: highest offset written, per partition
    ({} while the worker does not answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    found = {}
    for line in text.splitlines():
        if line.startswith("processor_processed_offset{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found[(labels["topic"], int(labels["partition"]))] = int(float(line.split()[-1]))
    return found


def _store_summary(dsn: str) -> str:
    try:
        store = Store(dsn)
    except Exception as exc:  # the summary is a courtesy; the replay itself is done
        return f"(could not open the store to count: {exc})"
    try:
        events = store.select("SELECT count() AS n FROM events FINAL")[0]["n"]
        days = store.select("SELECT count() AS n FROM visits_library_daily FINAL")[0]["n"]
        return f"{events} events archived, {days} library-days of visits"
    finally:
        store.close()


# ------------------------------------------------------------------------------ distributed


@dataclass
class WorkerChild:
    """The replay's worker: ``python -m services.processors.worker`` with the replay's settings."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> WorkerChild:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.to_env()}
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "services.processors.worker"], cwd=REPO_ROOT,
                                            env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def processed(self) -> dict[tuple[str, int], int]:
        return processed_offsets(self.settings.faust_web_port)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # faust stops gracefully and commits
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no worker log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Target:
    start: dict[tuple[str, int], int]
    end: dict[tuple[str, int], int]

    @property
    def total(self) -> int:
        return sum(self.end[tp] - self.start[tp] for tp in self.end)

    def done(self, reached: dict[tuple[str, int], int]) -> dict[str, tuple[int, int]]:
        """Per topic: (written, remaining), ``reached`` being the next offset to read per partition."""
        per_topic: dict[str, tuple[int, int]] = {}
        for tp, end in self.end.items():
            want = end - self.start[tp]
            if want <= 0:
                continue
            got = min(max(reached.get(tp, self.start[tp]) - self.start[tp], 0), want)
            written, remaining = per_topic.get(tp[0], (0, 0))
            per_topic[tp[0]] = (written + got, remaining + want - got)
        return per_topic


def _progress_text(per_topic: dict[str, tuple[int, int]], prefix: str) -> str:
    written = sum(w for w, _ in per_topic.values())
    remaining = sum(r for _, r in per_topic.values())
    busy = sorted(((r, t) for t, (_, r) in per_topic.items() if r), reverse=True)[:3]
    detail = ", ".join(f"{t.removeprefix(prefix)} {r} left" for r, t in busy)
    return f"replay: {written} events written, {remaining} remaining" + (f" ({detail})" if detail else "")


def distributed_replay(settings: Settings, *, to_store: str, group: str, from_offset: int | None,
                       from_date: date | None, worker_log: Path | None = None, timeout_s: float | None = None,
                       out: IO[str] | None = None, progress: Progress | None = None) -> int:
    out = out or sys.stdout
    progress = progress or Progress()
    prefix = settings.kafka_topic_prefix
    if group == settings.processor_group:
        print(f"error: {group} is the running workers' group (PROCESSOR_GROUP); give a new one", file=out)
        return 2
    topics = broker.worker_input_topics(settings, group)
    internal = [t for t in topics if t not in broker.worker_input_topics(settings, settings.processor_group)]
    try:
        already = broker.committed_offsets(settings, group, topics)
    except LookupError:  # a topic is missing: made below, and then nothing can be committed on it yet
        already = {}
    if already:
        print(f"error: consumer group {broker.group_id(settings, group)} already has offsets; give a new one",
              file=out)
        return 2
    problem = fresh_store_problem(to_store)
    if problem:
        print(f"error: --to-store {to_store}: {problem}", file=out)
        return 2

    created = ensure_topics(settings.kafka_bootstrap_servers, prefix, settings.kafka_replication_factor,
                            group=group)
    print(f"topics: {len(created)} created for group {group} ({', '.join(created) or 'all existed'})", file=out)
    start = broker.starting_offsets(settings, from_offset=from_offset, from_date=from_date, topics=topics)
    ends = {tp: high for tp, (_low, high) in broker.watermarks(settings, topics).items()}
    target = Target(start, ends)
    broker.commit_offsets(settings, group, start)
    print(f"offsets: committed for {broker.group_id(settings, group)} on {len(start)} partitions of "
          f"{len(topics)} topics; {target.total} events to replay", file=out)
    if target.total == 0:
        print("nothing to replay: no event at or after that offset/date", file=out)
        return 0

    web_port = _free_port()
    child_settings = settings.model_copy(update={
        "bus": "kafka", "processor_group": group, "store_dsn": to_store, "faust_web_port": web_port,
        "faust_data_dir": settings.faust_data_dir / f"replay-{group}"})
    log_path = worker_log or child_settings.faust_data_dir / "worker.log"
    worker = WorkerChild(child_settings, log_path).start()
    print(f"worker: pid {worker.process.pid if worker.process else '?'}, log {log_path}", file=out)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            if not worker.alive():
                progress.done()
                print(f"error: the worker exited ({worker.process.returncode if worker.process else '?'}):\n"
                      f"{worker.log_tail()}", file=out)
                return 1
            # The group's internal topics fill as the replay goes: their end moves with it.
            ends.update({tp: high for tp, (_low, high) in broker.watermarks(settings, internal).items()})
            target = Target(start, ends)
            processed = {tp: offset + 1 for tp, offset in worker.processed().items()}
            committed = broker.committed_offsets(settings, group, topics)
            reached = {tp: max(processed.get(tp, 0), committed.get(tp, 0)) for tp in ends}
            per_topic = target.done(reached)
            progress.update(_progress_text(per_topic, prefix))
            if all(remaining == 0 for _, remaining in per_topic.values()):
                break
            if deadline is not None and time.monotonic() > deadline:
                progress.done()
                print(f"error: not caught up within {timeout_s:g}s; the worker log: {log_path}", file=out)
                return 1
            time.sleep(1.0)
        progress.done()
    except KeyboardInterrupt:
        progress.done()
        print("interrupted: stopping the worker; run the same replay with another --group to start over", file=out)
        return 130
    finally:
        worker.stop()
    print(f"done: {target.total} events replayed into {to_store} by group {group}; "
          f"{_store_summary(to_store)}", file=out)
    return 0


# ------------------------------------------------------------------------------ embedded


def log_start_position(log_path: Path, *, from_offset: int | None, from_date: date | None) -> int | None:
    """The first log position to replay: ``from_offset``, the first entry appended on/after ``from_date``
    (Asia/Ho_Chi_Minh), or the first entry; None when nothing qualifies."""
    db = _open_log(log_path)
    try:
        if from_date is not None:
            since = datetime.combine(from_date, datetime.min.time(), TIMEZONE).timestamp()
            row = db.execute("SELECT MIN(position) FROM log WHERE appended_at >= ?", (since,)).fetchone()
        else:
            row = db.execute("SELECT MIN(position) FROM log WHERE position >= ?", (from_offset or 0,)).fetchone()
        return row[0]
    finally:
        db.close()


def _open_log(log_path: Path) -> sqlite3.Connection:
    if not log_path.is_file():
        raise FileNotFoundError(f"no embedded log at {log_path} (STATE_DIR/bus.sqlite)")
    return sqlite3.connect(f"{log_path.resolve().as_uri()}?mode=ro", uri=True)


def _count_from(log_path: Path, topics: Sequence[str], position: int) -> int:
    db = _open_log(log_path)
    try:
        marks = ",".join("?" * len(topics))
        return db.execute(f"SELECT count(*) FROM log WHERE topic IN ({marks}) AND position >= ?",
                          (*topics, position)).fetchone()[0]
    finally:
        db.close()


def embedded_replay(settings: Settings, *, log_path: Path, state_dir: Path, to_store: str,
                    from_offset: int | None, from_date: date | None, out: IO[str] | None = None,
                    progress: Progress | None = None) -> int:
    out = out or sys.stdout
    progress = progress or Progress()
    files = [*state_files(state_dir).values(), state_dir / "internal.sqlite"]
    if any(path.exists() for path in files):
        print(f"error: --state-dir {state_dir} already holds processor state: give a new directory", file=out)
        return 2
    problem = fresh_store_problem(to_store)
    if problem:
        print(f"error: --to-store {to_store}: {problem}", file=out)
        return 2
    try:
        first = log_start_position(log_path, from_offset=from_offset, from_date=from_date)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=out)
        return 2
    if first is None:
        print("nothing to replay: no log entry at or after that position/date", file=out)
        return 0

    store = Store(to_store)
    store.migrate()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = EmbeddedLog(log_path)
    runner = EmbeddedRunner(log, store, state_dir, settings.processor_batch_rows, pipeline=pipeline_for(settings))
    try:
        totals: dict[str, int | None] = {}
        for sub in runner.subscriptions:
            if sub.log is log:  # the events' log: from ``first``; the internal one is rebuilt from its start
                with sub.offsets.transaction(sub.name, first - 1):
                    pass
                totals[sub.name] = _count_from(log_path, sub.topics, first)
            else:
                totals[sub.name] = None
        done = dict.fromkeys(totals, 0)

        def text() -> str:
            return "replay: " + ", ".join(f"{n} {done[n]}" + (f"/{t}" if t is not None else "")
                                          for n, t in totals.items())

        def counted(name: str, n: int) -> None:
            done[name] += n
            progress.update(text())

        runner.on_batch = counted
        started = time.monotonic()
        runner.drain()
        progress.done(text())
        print(f"done: log {log_path} from position {first} replayed into {to_store} in "
              f"{time.monotonic() - started:.1f}s; processor state in {state_dir}", file=out)
    finally:
        runner.close()
        log.close()
        store.close()
    print(f"store: {_store_summary(to_store)}", file=out)
    return 0
