"""``NonceCounts`` over PostgreSQL (``schemas/postgres/003_digest_nonces.sql``): a Digest nonce's
highest ``nc`` is one row every replica advances, so an ``Authorization`` header replayed to
another replica is refused there too (``services/intake/digest.py``).

One statement decides: an upsert that raises ``nc`` only when the new one is higher, and says
whether it did. Only nonces whose signature (``DIGEST_NONCE_SECRET``) and response were checked
get here; rows outlive their nonce by little: every ``PRUNE_EVERY`` advances of a replica
delete the expired ones.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from services.intake.postgres.database import LedgerDatabase

PRUNE_EVERY = 1024


class PostgresNonceCounts:
    def __init__(self, database: LedgerDatabase, lifetime_s: float):
        self._db, self._lifetime = database, timedelta(seconds=lifetime_s)
        self._calls = itertools.count(1)
        self._count_lock = threading.Lock()

    def advance(self, nonce: str, issued_at: float, nc: int) -> bool:
        with self._count_lock:
            prune = next(self._calls) % PRUNE_EVERY == 0
        with self._db.connection() as db:
            if prune:
                db.execute("DELETE FROM digest_nonces WHERE issued_at < %s", (datetime.now(UTC) - self._lifetime,))
            advanced = db.execute(
                "INSERT INTO digest_nonces AS seen VALUES (%s, %s, %s) ON CONFLICT (nonce) DO UPDATE "
                "SET nc = excluded.nc WHERE seen.nc < excluded.nc RETURNING 1",
                (nonce, nc, datetime.fromtimestamp(issued_at, UTC))).fetchone()
        return advanced is not None
