"""The embedded bus: an append-only SQLite log in place of Kafka, for the one-process mode.

``publish`` returns once the event is committed to the log file (WAL, synchronous=FULL):
that is what makes it durable, as a Kafka ack does in distributed mode. Subscribers then
catch up from their own committed offsets, in the publishing thread. If a subscriber
fails (the store is down, say), the event stays in the log and the next publish, or
``drain()`` at start-up, processes it: accepted submissions are never lost.
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
from services.sqlite import open_durable

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
    def __init__(self, path: Path):
        self._db = open_durable(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS log (position INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "key TEXT NOT NULL, value BLOB NOT NULL, appended_at REAL NOT NULL)")
        self._write_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._subscriptions: list[Subscription] = []

    def subscribe(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)

    def publish(self, event: Message) -> None:
        started = time.perf_counter()
        with self._write_lock:
            self._db.execute("INSERT INTO log (topic, key, value, appended_at) VALUES (?, ?, ?, ?)",
                             (topic_for(event).name, key_for(event), encode(event), time.time()))
        metrics.PUBLISH_SECONDS.labels(bus="embedded").observe(time.perf_counter() - started)
        try:
            self.drain()
        except Exception:  # the event is durable; processing is retried on the next drain
            log.exception("processing after publish failed; will retry")

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
        self._db.close()
