"""Processor state in a local SQLite file (embedded mode): key→JSON plus the consumer offset.

A batch's state changes and its new offset commit in one transaction, after the store
write succeeded; a crash in between replays the batch, which the fold makes harmless.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.sqlite import open_durable


class SqliteState:
    def __init__(self, path: Path):
        self._db = open_durable(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS offsets (consumer TEXT PRIMARY KEY, position INTEGER)")

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                         (key, json.dumps(value, ensure_ascii=False)))

    def offset(self, consumer: str) -> int:
        row = self._db.execute("SELECT position FROM offsets WHERE consumer = ?", (consumer,)).fetchone()
        return row[0] if row else 0

    @contextmanager
    def transaction(self, consumer: str, new_offset: int) -> Iterator[SqliteState]:
        """State changes inside the block and the offset commit together, or not at all."""
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
