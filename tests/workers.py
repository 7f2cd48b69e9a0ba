"""A faust worker process for tests: started, watched through its /metrics, stopped or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.config import REPO_ROOT, Settings
from services.ops.broker import committed_offsets, group_lag, watermarks, worker_input_topics
from services.ops.replay import processed_offsets
from tests.kafka.broker import die_with_parent, free_port


def worker_settings(base: Settings, tmp_path: Path, *, bootstrap: str, prefix: str, group: str, name: str,
                    store: str, **extra: object) -> Settings:
    """A worker's settings (or an intake's beside it): Kafka on ``bootstrap`` under ``prefix``, consumer
    group ``group``, its own faust directory and web port, the store ``store``; short batches and a
    short session timeout, so that tests see rebalances in seconds."""
    return base.model_copy(update={"bus": "kafka", "kafka_bootstrap_servers": bootstrap,
                                   "kafka_topic_prefix": prefix, "processor_group": group, "store_dsn": store,
                                   "faust_data_dir": tmp_path / f"faust-{name}", "faust_web_port": free_port(),
                                   "processor_batch_ms": 200, "faust_session_timeout_s": 6.0, **extra})


def worker_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix, "STORE_DSN": settings.store_dsn,
           "FAUST_DATA_DIR": str(settings.faust_data_dir), "FAUST_WEB_PORT": str(settings.faust_web_port),
           "PROCESSOR_GROUP": settings.processor_group, "PROCESSOR_BATCH_MS": str(settings.processor_batch_ms),
           "FAUST_SESSION_TIMEOUT_S": str(settings.faust_session_timeout_s), "LOG_LEVEL": "INFO"}
    return env | overrides


@dataclass
class WorkerProcess:
    settings: Settings
    log_path: Path
    process: subprocess.Popen | None = None
    starts: int = field(default=0)

    def start(self) -> WorkerProcess:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            self.process = subprocess.Popen([sys.executable, "-m", "services.processors.worker"], cwd=REPO_ROOT,
                                            env=worker_env(self.settings), stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)
        return self

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def metric(self, prefix: str, contains: str = "") -> float:
        """Sum of a counter on the worker's own /metrics; -1 while it is not answering."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.settings.faust_web_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return -1
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(prefix + "{") and contains in line)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def consumer_lag(settings: Settings, topics: list[str]) -> int:
    """Messages on ``topics`` not yet committed by the processors' consumer group."""
    return sum(lag_by_partition(settings, topics).values())


def lag_by_partition(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    lags = group_lag(settings, settings.processor_group, topics, timeout_s=10)
    return {(p.topic, p.partition): p.lag for p in lags if p.lag}


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    return {tp: high for tp, (_low, high) in watermarks(settings, topics, timeout_s=10).items() if high > 0}


def behind(workers: list[WorkerProcess]) -> dict[tuple[str, int], tuple[int, int, int]]:
    """The partitions not yet written: (committed, processed by the live workers, end) of each."""
    """Every message of the topics the workers' group reads (the events, and the group's own internal
    topics) is written to the store when, per partition, the group has committed past it, or one of
    the live workers has processed it (faust's commit bookkeeping can stall on a gap after a
    rebalance — faust-streaming issues #606, #318 — while processing goes on; replays then repeat,
    harmlessly, what was written)."""
    settings = next(w for w in workers if w.alive()).settings
    topics = worker_input_topics(settings)
    committed = committed_offsets(settings, settings.processor_group, topics, timeout_s=10)
    processed: dict[tuple[str, int], int] = {}
    for worker in workers:
        if worker.alive():
            for tp, offset in processed_offsets(worker.settings.faust_web_port).items():
                processed[tp] = max(processed.get(tp, -1), offset + 1)
    return {tp: (committed.get(tp, 0), processed.get(tp, 0), end) for tp, end in end_offsets(settings, topics).items()
            if max(committed.get(tp, 0), processed.get(tp, 0)) < end}


def wait_until_caught_up(worker: WorkerProcess, timeout_s: float = 180, others: tuple[WorkerProcess, ...] = ()
                         ) -> None:
    """Until nothing is ``behind`` for the worker (and ``others`` of its group)."""
    workers = [worker, *others]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert any(w.alive() for w in workers), "every worker died:\n" + "\n".join(w.log_tail() for w in workers)
        if not (left := behind(workers)):
            return
        time.sleep(0.5)
    raise AssertionError(f"(committed, processed, end) behind after {timeout_s}s: {left}\n"
                         + "\n".join(w.log_tail() for w in workers))
