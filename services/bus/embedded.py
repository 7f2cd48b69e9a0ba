"""The embedded bus: an append-only SQLite log in place of Kafka, for the one-process mode.

``publish`` commits the event to the log file (WAL, synchronous=FULL; concurrent publishers
share one commit): that is what makes it durable, as a Kafka ack does in distributed mode.
One processor thread then brings every subscriber up to the end of the log from its own
committed offsets, in batches: whatever arrived while it wrote the last batch goes into the
next one, so the store sees a few large inserts under load instead of one per submission.
``publish`` waits (up to ``wait_s``) until its event is processed, so an answered submission
is already in the aggregates; if processing fails (the store is down, say) it returns at
once: the event stays in the log and the thread retries with backoff, as ``drain()`` at
start-up does — accepted submissions are never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from services import metrics
from services.bus.codec import Message, decode, encode
from services.bus.topics import key_for, topic_for
from services.processors.sqlite_state import SqliteState
from services.sqlite import GroupCommit, open_durable

log = logging.getLogger(__name__)

BatchHandler = Callable[[SqliteState, Sequence[tuple[int, Message]]], object]


@dataclass
class Subscription:
    name: str
    topics: tuple[str, ...]
    state: SqliteState
    handle: BatchHandler
    batch_size: int = 500


class EmbeddedBus:
    def __init__(self, path: Path, wait_s: float = 10.0, max_backoff_s: float = 30.0):
        self._db = open_durable(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS log (position INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "key TEXT NOT NULL, value BLOB NOT NULL, appended_at REAL NOT NULL)")
        self._write_lock = threading.Lock()
        self._appends = GroupCommit(self._db, "INSERT INTO log (topic, key, value, appended_at) VALUES (?, ?, ?, ?)",
                                    self._write_lock, path)
        self._drain_lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._wait_s, self._max_backoff_s = wait_s, max_backoff_s
        # The processor thread's progress: every position ≤ _processed is in the store; _failures
        # counts failed passes, so a waiting publisher can tell "failed since I published".
        self._progress = threading.Condition()
        self._published = self._processed = 0
        self._failures = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def subscribe(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)

    def start(self) -> None:
        """Start the processor thread (after every ``subscribe``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._process_forever, name="embedded-processors", daemon=True)
            self._thread.start()

    def publish(self, event: Message) -> None:
        started = time.perf_counter()
        position = self._appends.write((topic_for(event).name, key_for(event), encode(event), time.time()))
        metrics.PUBLISH_SECONDS.labels(bus="embedded").observe(time.perf_counter() - started)
        if self._thread is None:  # no processor thread (tools, replays): process here
            try:
                self.drain()
            except Exception:  # the event is durable; processing is retried on the next drain
                log.exception("processing after publish failed; will retry")
            return
        with self._progress:
            self._published = max(self._published, position)
            failures = self._failures
            self._progress.notify_all()
            self._progress.wait_for(lambda: self._processed >= position or self._failures > failures
                                    or self._stopping, timeout=self._wait_s)

    def _process_forever(self) -> None:
        delay = 0.5
        while True:
            with self._progress:
                self._progress.wait_for(lambda: self._published > self._processed or self._stopping, timeout=delay)
                if self._stopping:
                    return
                target = self._published
            try:
                self.drain()
            except Exception:
                log.exception("processing the embedded log failed; retrying in %.1fs", delay)
                with self._progress:
                    self._failures += 1
                    self._progress.notify_all()
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
                continue
            delay = 0.5
            with self._progress:
                self._processed = max(self._processed, target)
                self._progress.notify_all()

    def read(self, topics: tuple[str, ...], after: int, limit: int) -> list[tuple[int, bytes]]:
        marks = ",".join("?" * len(topics))
        with self._write_lock:
            return self._db.execute(
                f"SELECT position, value FROM log WHERE topic IN ({marks}) AND position > ? ORDER BY position LIMIT ?",
                (*topics, after, limit)).fetchall()

    def drain(self) -> None:
        """Bring every subscriber up to the end of the log."""
        with self._drain_lock:
            for sub in self._subscriptions:
                while True:
                    entries = self.read(sub.topics, sub.state.offset(sub.name), sub.batch_size)
                    if not entries:
                        break
                    batch = [(position, decode(value)) for position, value in entries]
                    with sub.state.transaction(sub.name, entries[-1][0]) as state:
                        sub.handle(state, batch)

    def close(self) -> None:
        if self._thread is not None:
            with self._progress:
                self._stopping = True
                self._progress.notify_all()
            self._thread.join(timeout=60)
            self._thread = None
        self._db.close()
