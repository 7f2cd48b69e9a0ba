"""A processor's position in the embedded log, in a local SQLite file (embedded mode).

The new position commits after the batch is in the store; a crash in between replays the
batch. Before a batch is handed to the processors, the last position handed over is committed
too (``seen``): a batch at or below it may have been written already, and the processors then
read what that write could have left (``runner.process``'s ``redelivered``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.sqlite import open_durable


class SqliteOffsets:
    def __init__(self, path: Path):
        self._db = open_durable(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS offsets (consumer TEXT PRIMARY KEY, position INTEGER)")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (consumer TEXT PRIMARY KEY, position INTEGER)")

    def offset(self, consumer: str) -> int:
        row = self._db.execute("SELECT position FROM offsets WHERE consumer = ?", (consumer,)).fetchone()
        return row[0] if row else 0

    def seen(self, consumer: str) -> int:
        """The last position ever handed to the processors (0: none)."""
        row = self._db.execute("SELECT position FROM seen WHERE consumer = ?", (consumer,)).fetchone()
        return row[0] if row else 0

    def hand_over(self, consumer: str, first: int, last: int) -> bool:
        """Record, durably, that positions up to ``last`` are being handed over; whether any of
        ``first``…``last`` was handed over before (the batch may have been written already)."""
        before = self.seen(consumer)
        if last > before:
            self._db.execute("INSERT OR REPLACE INTO seen (consumer, position) VALUES (?, ?)", (consumer, last))
        return first <= before

    @contextmanager
    def transaction(self, consumer: str, new_offset: int) -> Iterator[SqliteOffsets]:
        """The offset commits once the block has run, or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self._db.execute("INSERT OR REPLACE INTO offsets (consumer, position) VALUES (?, ?)",
                             (consumer, new_offset))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
