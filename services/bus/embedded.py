"""The embedded bus: an append-only SQLite log in place of Kafka, for the one-process mode.

``publish`` commits the event to the log file (WAL, synchronous=FULL; concurrent publishers
share one commit) and returns: that is what makes it durable, as a Kafka ack does in
distributed mode, and all the intake waits for. The processors read the log from their own
committed positions (``services/processors/embedded.py``); ``on_append`` wakes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from services import metrics
from services.bus.codec import Message, encode
from services.bus.topics import key_for, topic_for
from services.sqlite import GroupCommit, open_durable


class EmbeddedLog:
    def __init__(self, path: Path):
        self.path = path
        self._db = open_durable(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS log (position INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "key TEXT NOT NULL, value BLOB NOT NULL, appended_at REAL NOT NULL)")
        self._lock = threading.Lock()
        self._appends = GroupCommit(self._db, "INSERT INTO log (topic, key, value, appended_at) VALUES (?, ?, ?, ?)",
                                    self._lock, path)
        self.on_append: Callable[[int], None] = lambda _position: None

    def publish(self, event: Message) -> None:
        """Return once ``event`` is committed to the log (the Publisher port)."""
        started = time.perf_counter()
        self.append(event)
        metrics.PUBLISH_SECONDS.labels(bus="embedded").observe(time.perf_counter() - started)

    def append(self, event: Message) -> int:
        position = self._appends.write((topic_for(event).name, key_for(event), encode(event), time.time()))
        self.on_append(position)
        return position

    def append_many(self, events: Sequence[Message]) -> int:
        """Append in one transaction (a processor's emitted messages); the last position, 0 for none."""
        if not events:
            return 0
        rows = [(topic_for(e).name, key_for(e), encode(e), time.time()) for e in events]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO log (topic, key, value, appended_at) VALUES (?, ?, ?, ?)", rows)
                position = self._db.execute("SELECT max(position) FROM log").fetchone()[0]
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        self.on_append(position)
        return position

    def read(self, topics: tuple[str, ...], after: int, limit: int, upto: int | None = None
             ) -> list[tuple[int, bytes]]:
        """Up to ``limit`` entries of ``topics`` after position ``after`` (and at most ``upto``), in order."""
        marks = ",".join("?" * len(topics))
        with self._lock:
            return self._db.execute(
                f"SELECT position, value FROM log WHERE topic IN ({marks}) AND position > ? AND position <= ? "
                "ORDER BY position LIMIT ?", (*topics, after, upto if upto is not None else 2**62, limit)).fetchall()

    def end(self) -> int:
        """The last position written (0 for an empty log)."""
        with self._lock:
            return self._db.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0]

    def close(self) -> None:
        self._db.close()
