"""A processor's position in the embedded log, in a local SQLite file (embedded mode).

The new position commits after the batch is in the store; a crash in between replays the
batch, which the folds make harmless. (The processors' state is in the store.)
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

    def offset(self, consumer: str) -> int:
        row = self._db.execute("SELECT position FROM offsets WHERE consumer = ?", (consumer,)).fetchone()
        return row[0] if row else 0

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
