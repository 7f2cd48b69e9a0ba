"""Mutual exclusion per key (an instanceID), for as many keys as there are requests in flight.

The intake's check → publish → record must run for one instanceID at a time, or two phones
racing with the same instanceID and different answers both get 201 and the ledger, the log
and the aggregates keep different versions. A lock per instanceID (and per the version an edit
replaces) serialises exactly those, and nothing else. Within one process: the SQLite ledger's
``exclusive``; across intake replicas the PostgreSQL ledger takes it first, then an advisory lock
per key (``services/intake/postgres/database.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class KeyedLock:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # key → (its lock, threads using it)

    @contextmanager
    def holding(self, *keys: str | None) -> Iterator[None]:
        """Hold the lock of every key given (None and empty ignored), taken in sorted order, so
        two callers sharing keys never wait on each other in a cycle."""
        ordered = sorted({key for key in keys if key})
        locks = [self._checkout(key) for key in ordered]
        taken: list[threading.Lock] = []
        try:
            for lock in locks:
                lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
            for key in ordered:
                self._checkin(key)

    def _checkout(self, key: str) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(key) or (threading.Lock(), 0)
            self._locks[key] = (lock, users + 1)
            return lock

    def _checkin(self, key: str) -> None:
        with self._guard:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
