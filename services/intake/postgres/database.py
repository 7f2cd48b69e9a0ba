"""The intake's PostgreSQL: a pool, exclusion per instanceID across replicas, migrations, failures.

What is guaranteed, and why:

- **One winner per instanceID, across replicas.** ``exclusive(*instance_ids)`` opens one
  transaction and takes ``pg_advisory_xact_lock`` on a 64-bit hash of each instanceID (of the
  submission, and of the version an edit replaces), in one global order (the hashes sorted, so
  two replicas never wait on each other in a cycle). Every ledger and blob statement the thread
  runs inside the block goes through that same transaction. The intake's check → publish →
  record therefore runs for one instanceID at a time over every replica, and the lock is
  released only by the COMMIT that makes the record visible: whoever comes next sees it. Of
  several replicas racing one instanceID with different answers exactly one publishes and is
  answered 201, the others 409; an identical resend is answered "duplicate" and publishes
  nothing. ``accepted``'s primary key backs this up (a second record is ignored, never doubled).
- **Publish before record, still.** The event is published (durable) inside the block, before
  the record commits. If the COMMIT fails (the server went away), the answer is 503 and the
  phone resends; the event may then be published twice, and the processors fold a version
  they already counted as a duplicate (same event_id and content hash, ``report_chains``). A
  replica that dies mid-block loses its session, so its locks go with it and nothing half-done
  is committed.
- **Held edits and split uploads are shared.** Held rows, parked attachments and the partial
  lists live here, so an original reaching replica B releases an edit held by replica A, and a
  split upload's parts may arrive at any replicas.
- **Down is "later", not an error.** A server that cannot be reached, a pool with no connection
  free within ``POOL_TIMEOUT_S``, or a lock waited on past ``LOCK_TIMEOUT`` is
  ``LedgerUnavailable`` (503, Retry-After): the transaction is rolled back and the phone keeps
  the submission. A server out of disk is ``StorageFull`` (507), as for SQLite.

Within one process an in-process ``KeyedLock`` is taken first, so threads of one replica wait
for each other without holding a pooled connection each.

Migrations (``schemas/postgres/NNN_name.sql``, read as the store's are) run at every start-up,
under an advisory lock: replicas starting together apply them once, one after the other.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from services.config import REPO_ROOT, masked_dsn
from services.domain.errors import StorageFull
from services.intake.keyed_lock import KeyedLock
from services.intake.refusals import LedgerUnavailable
from services.store.migrations import load_migrations

log = logging.getLogger(__name__)

MIGRATIONS_DIR = REPO_ROOT / "schemas" / "postgres"
POOL_TIMEOUT_S = 5.0  # a request waits this long for a connection, then is answered 503
CONNECT_TIMEOUT_S = 5  # unless the DSN says otherwise
# Longer than the bus's publish timeout (the lock's holder may be waiting for Kafka's ack),
# short enough that a stuck holder turns into 503s rather than a pile of waiting requests.
LOCK_TIMEOUT = "30s"
_MIGRATION_LOCK = 0x7468_7576_6C65_6467  # "thuvledg": one key, whatever the instanceIDs hash to


def lock_id(instance_id: str) -> int:
    """A signed 64-bit advisory-lock key for an instanceID (a collision only serialises two sends)."""
    return int.from_bytes(hashlib.sha256(instance_id.encode("utf-8")).digest()[:8], "big", signed=True)


@contextmanager
def unavailable_refused() -> Iterator[None]:
    """The driver's failures as refusals a phone understands: out of disk 507, anything else that
    says "the server, not the statement" 503. The text never holds the DSN's password."""
    try:
        yield
    except psycopg.errors.DiskFull as exc:
        raise StorageFull(f"intake ledger: {masked_dsn(str(exc))}") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise LedgerUnavailable(f"intake ledger: {masked_dsn(str(exc))}") from exc


class LedgerDatabase:
    """One pool per process; the ledger, its blobs and the Digest nonce counts share it."""

    def __init__(self, dsn: str, max_connections: int = 20):
        kwargs: dict[str, object] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(dsn):
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        self.dsn = masked_dsn(dsn)
        # check: a connection the server dropped (a restart) is replaced before it is handed out,
        # so the first request after an outage does not fail on a dead one.
        self._pool = ConnectionPool(dsn, min_size=1, max_size=max_connections, kwargs=kwargs, open=False,
                                    timeout=POOL_TIMEOUT_S, check=ConnectionPool.check_connection,
                                    name="intake-ledger")
        self._local = threading.local()  # the transaction of the thread's ``exclusive`` block
        self._keyed = KeyedLock()

    def open(self, wait_s: float = 30.0) -> LedgerDatabase:
        """Connect (waiting up to ``wait_s`` for the server: it may be starting beside us) and migrate."""
        try:
            with unavailable_refused():
                self._pool.open(wait=True, timeout=wait_s)
        except LedgerUnavailable:
            self._pool.close()
            raise
        applied = self.migrate()
        log.info("intake ledger on PostgreSQL %s%s", self.dsn,
                 f", migrations applied: {applied}" if applied else "")
        return self

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """The thread's ``exclusive`` transaction if it is in one, else a pooled connection (autocommit)."""
        current = getattr(self._local, "connection", None)
        with unavailable_refused():
            if current is not None:
                yield current
                return
            with self._pool.connection() as connection:
                yield connection

    @contextmanager
    def exclusive(self, *instance_ids: str | None) -> Iterator[None]:
        """See the module's docstring: one transaction holding each instanceID's advisory lock."""
        if getattr(self._local, "connection", None) is not None:
            raise RuntimeError("exclusive blocks do not nest")
        keys = sorted({key for key in instance_ids if key})
        with self._keyed.holding(*keys), unavailable_refused(), self._pool.connection() as connection, \
                connection.transaction():
            connection.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
            for key in sorted(lock_id(k) for k in keys):
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            self._local.connection = connection
            try:
                yield
            finally:
                self._local.connection = None

    def migrate(self) -> list[int]:
        """Apply the migrations not yet recorded, in one transaction under an advisory lock."""
        migrations = load_migrations(MIGRATIONS_DIR)
        with self.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                               "name text NOT NULL, applied_at timestamptz NOT NULL)")
            applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
            done = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    connection.execute(statement.encode())  # bytes: no placeholders in a schema file
                connection.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                                   (migration.version, migration.name, datetime.now(UTC)))
                done.append(migration.version)
        return done

    def close(self) -> None:
        self._pool.close()
