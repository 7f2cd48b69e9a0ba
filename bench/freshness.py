"""Freshness, distributed: from the intake's 201 to the submission visible in the query API.

The intake (``python -m services.intake``), one faust worker and the query API run (the latter two
in one process, ``bench/worker_query.py``: chDB is one process per directory); ``bench/load.py``
sends visit logs at a steady rate and writes each answer (time of the 201) as it comes. A sample of
the new submissions is polled on ``GET /v1/visits?library=…&start=D&end=D&granularity=day`` every
``POLL_S`` until that library-day shows a report; freshness = first poll that sees it − the 201.
PROCESSOR_BATCH_MS (default 500 ms) bounds it from below: the worker writes a batch when it has
PROCESSOR_BATCH_ROWS events or when that much time has passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import httpx

from bench.context import Context
from bench.measure import percentile
from bench.results import Figure
from bench.servers import Service, env_of
from services.bus.admin import ensure_topics
from services.config import REPO_ROOT
from services.query.access import add_key
from tests.kafka.broker import die_with_parent, free_port

RATE = 50.0  # submissions/s
SAMPLE_EVERY = 10  # poll one new submission in this many
POLL_S = 0.05
GIVE_UP_S = 30.0


def run(ctx: Context) -> list[Figure]:
    count = 3000 if ctx.full else 500
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = ctx.settings("freshness", bus="kafka", kafka_bootstrap_servers=ctx.kafka_bootstrap,
                            kafka_topic_prefix=prefix, port=free_port(), query_port=free_port(),
                            faust_web_port=free_port(), processor_group=f"bench-{uuid.uuid4().hex[:6]}")
    base = settings.state_dir.parent
    ensure_topics(settings.kafka_bootstrap_servers, prefix, group=settings.processor_group)
    keys = base / "api-keys.json"
    key = add_key(keys, "bench", ["read:all"])
    env = env_of(settings, API_KEYS_FILE=str(keys), FAUST_DATA_DIR=str(base / "faust"))
    intake_url, query_url = f"http://127.0.0.1:{settings.port}", f"http://127.0.0.1:{settings.query_port}"
    record = base / "answers.jsonl"
    intake = Service("services.intake", env, base / "intake.log", f"{intake_url}/health")
    worker = Service("bench.worker_query", env, base / "worker.log", f"{query_url}/health")
    results: list[float] = []
    missed: list[str] = []
    try:
        intake.start()
        worker.start()
        _wait_assigned(settings.faust_web_port, worker)
        with record.open("w"):
            pass
        with (base / "load.log").open("ab") as log:
            load = subprocess.Popen([sys.executable, "-m", "bench.load", "--url", intake_url, "--registry",
                                     str(settings.libraries_file), "--count", str(count), "--rate", str(RATE),
                                     "--concurrency", "16", "--record", str(record)], cwd=REPO_ROOT,
                                    stdout=subprocess.PIPE, stderr=log, preexec_fn=die_with_parent)
        stop = threading.Event()
        poller = threading.Thread(target=_poll, args=(query_url, key, record, results, missed, stop), daemon=True)
        poller.start()
        out, _ = load.communicate(timeout=count / RATE + 600)
        summary = json.loads(out)
        deadline = time.monotonic() + GIVE_UP_S + 5
        while poller.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
            if _progress["read"] >= summary["sent"] and _progress["pending"] == 0:
                break
        stop.set()
        poller.join(10)
        if not worker.alive():
            raise RuntimeError(f"worker died:\n{worker.log_tail()}")
    finally:
        worker.stop()
        intake.stop()
    if not results:
        raise RuntimeError(f"no sampled submission became visible ({len(missed)} missed)")
    p50, p99 = percentile(results, 50) * 1000, percentile(results, 99) * 1000
    details = {"sampled": len(results), "never_visible_within_s": {"count": len(missed), "limit_s": GIVE_UP_S},
               "rate_per_s": RATE, "load": summary, "poll_interval_ms": POLL_S * 1000,
               "processor_batch_ms": settings.processor_batch_ms, "processor_batch_rows": settings.processor_batch_rows}
    note = (f"{count:,} visit logs at {RATE:.0f}/s; 1 in {SAMPLE_EVERY} new ones polled every {POLL_S * 1000:.0f} ms "
            f"on /v1/visits (library, day); intake + 1 faust worker + query API (in the worker's process: chDB); "
            f"PROCESSOR_BATCH_MS {settings.processor_batch_ms}")
    return [
        Figure("freshness.distributed_p50_ms", "freshness distributed: 201 → visible in the query API, p50", p50,
               "ms", notes=note, details=details),
        Figure("freshness.distributed_p99_ms", "freshness distributed: 201 → visible in the query API, p99", p99,
               "ms", goal="p99 ≤ 2 s distributed", met=p99 <= 2000 and not missed, details=details),
    ]


_progress = {"read": 0, "pending": 0}  # the poller's: answers read, submissions still polled


def _wait_assigned(web_port: int, worker: Service, timeout_s: float = 120) -> None:
    """Until the faust worker answers on its web port and has had a moment to join its group."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not worker.alive():
            raise RuntimeError(f"worker died:\n{worker.log_tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{web_port}/health", timeout=2).status_code == 200:
                time.sleep(5)  # the group's first rebalance
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"worker not up after {timeout_s}s:\n{worker.log_tail()}")


def _poll(query_url: str, key: str, record, results: list[float], missed: list[str],  # noqa: ANN001
          stop: threading.Event) -> None:
    """Follow the load's answers; poll each sampled new submission until visible."""
    pending: dict[str, dict] = {}
    seen_new = 0
    _progress.update(read=0, pending=0)
    buffer = b""
    with httpx.Client(base_url=query_url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client, \
            record.open("rb") as answers:
        while not stop.is_set():
            buffer += answers.read()
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                _progress["read"] += 1
                answer = json.loads(line)
                if answer["status"] == 201 and answer["kind"] == "new":
                    seen_new += 1
                    if seen_new % SAMPLE_EVERY == 0:
                        pending[answer["instance_id"]] = answer
            now = time.time()
            for instance_id, answer in list(pending.items()):
                response = client.get("/v1/visits", params={"scheme": "2025", "library": answer["library_id"],
                                                            "start": answer["day"], "end": answer["day"],
                                                            "granularity": "day"})
                series = response.json().get("series", []) if response.status_code == 200 else []
                if any(row.get("reports", 0) >= 1 for row in series):
                    results.append(time.time() - answer["answered_at"])
                    del pending[instance_id]
                elif now - answer["answered_at"] > GIVE_UP_S:
                    missed.append(instance_id)
                    del pending[instance_id]
            _progress["pending"] = len(pending)
            time.sleep(POLL_S)
