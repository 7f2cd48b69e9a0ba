"""SQLite files the services keep locally (ledger, embedded log, processor state).

One way to open them: autocommit (explicit transactions where needed), WAL so readers
do not block the writer, and synchronous=FULL because a commit here is what lets the
intake answer 201 — it must survive a power cut.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.domain.errors import StorageFull


def open_durable(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@contextmanager
def full_disk_refused(path: Path | str) -> Iterator[None]:
    """SQLite's "database or disk is full" as ``StorageFull`` (507 to a phone), not a bare 500.
    SQLite rolls the statement back, so nothing of the write is left."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:
            raise StorageFull(f"{path}: {exc}") from exc
        raise


class GroupCommit:
    """Concurrent writers share one commit, hence one fsync (synchronous=FULL costs ~3 ms each).

    ``write(rows)`` queues its rows and returns once they are committed: whichever caller holds
    the connection's lock runs one transaction for every row queued meanwhile, and each caller
    gets back its own rows' ``lastrowid``-style result or the commit's exception. Under load the
    queue grows while a commit is in flight, so commits per second stay flat while rows per
    second scale with the number of concurrent callers.
    """

    def __init__(self, db: sqlite3.Connection, sql: str, lock: threading.Lock, path: Path | str = ""):
        self._db, self._sql, self._lock, self._path = db, sql, lock, path
        self._queued: list[_Pending] = []
        self._queue_lock = threading.Lock()

    def write(self, row: tuple[object, ...]) -> int:
        """Insert ``row`` with the statement given at construction; return its rowid once durable."""
        pending = _Pending(row)
        with self._queue_lock:
            self._queued.append(pending)
        with self._lock:
            if not pending.done:  # nobody committed it while this thread waited: commit all that is queued
                with self._queue_lock:
                    batch, self._queued = self._queued, []
                error: BaseException | None = None
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    for item in batch:
                        item.rowid = self._db.execute(self._sql, item.row).lastrowid or 0
                    self._db.execute("COMMIT")
                except BaseException as exc:
                    error = exc
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                for item in batch:
                    item.error, item.done = error, True
        if pending.error is not None:
            with full_disk_refused(self._path):
                raise pending.error
        return pending.rowid


@dataclass
class _Pending:
    row: tuple[object, ...]
    rowid: int = 0
    done: bool = False
    error: BaseException | None = None
