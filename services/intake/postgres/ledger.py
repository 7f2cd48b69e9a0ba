"""``Ledger`` over PostgreSQL (``schemas/postgres/001_ledger.sql``), shared by every intake replica.

Conflicts are the database's to decide: ``exclusive`` is ``LedgerDatabase.exclusive`` (an
advisory lock per instanceID, in the transaction every statement of the block runs in; see
``database.py`` for what that guarantees). Outside such a block each call is its own
autocommitted statement.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from services.intake.ledger import LedgerEntry
from services.intake.postgres.blobs import PostgresBlobStore
from services.intake.postgres.database import LedgerDatabase

_ENTRY_COLUMNS = "instance_id, root_id, content_hash, form_id, raw_sha256, event_json, retracted"
_HELD_COLUMNS = ("instance_id", "deprecated_id", "content_hash", "raw_sha256", "username", "provinces", "source",
                 "attachments", "held_at")


class PostgresLedger:
    def __init__(self, database: LedgerDatabase, staging_dir: Path, max_blob_bytes: int):
        """``staging_dir``: where this replica receives request bodies before they are kept (local)."""
        self._db = database
        self.blobs = PostgresBlobStore(database, staging_dir, max_blob_bytes)
        self.exclusive = database.exclusive

    def lookup(self, instance_id: str) -> LedgerEntry | None:
        with self._db.connection() as db:
            row = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM accepted WHERE instance_id = %s",
                             (instance_id,)).fetchone()
        return LedgerEntry(*row) if row else None

    def chain(self, root_id: str) -> list[LedgerEntry]:
        with self._db.connection() as db:
            rows = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM accepted WHERE root_id = %s ORDER BY accepted_at, seq",
                              (root_id,)).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def of_form(self, form_id: str) -> list[LedgerEntry]:
        with self._db.connection() as db:
            rows = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM accepted WHERE form_id = %s ORDER BY accepted_at, seq",
                              (form_id,)).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def record(self, entry: LedgerEntry, accepted_at: datetime) -> None:
        with self._db.connection() as db:
            db.execute(f"INSERT INTO accepted ({_ENTRY_COLUMNS}, accepted_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                       "ON CONFLICT (instance_id) DO NOTHING",
                       (entry.instance_id, entry.root_id, entry.content_hash, entry.form_id, entry.raw_sha256,
                        entry.event_json, entry.retracted, accepted_at))

    def mark_retracted(self, instance_id: str, retracted: bool = True) -> None:
        with self._db.connection() as db:
            db.execute("UPDATE accepted SET retracted = %s WHERE instance_id = %s", (retracted, instance_id))

    def hold(self, instance_id: str, deprecated_id: str, content_hash: str, raw_sha256: str, username: str,
             provinces_json: str, source: str, attachments_json: str, held_at: datetime) -> None:
        with self._db.connection() as db:
            db.execute(f"INSERT INTO held ({', '.join(_HELD_COLUMNS)}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                       "ON CONFLICT (instance_id) DO NOTHING",
                       (instance_id, deprecated_id, content_hash, raw_sha256, username, provinces_json, source,
                        attachments_json, held_at))

    def held(self, instance_id: str | None = None, waiting_for: str | None = None,
             held_before: datetime | None = None) -> list[dict[str, str]]:
        clauses, args = [], []
        for clause, value in (("instance_id = %s", instance_id), ("deprecated_id = %s", waiting_for),
                              ("held_at < %s", held_before)):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db.connection() as db:
            rows = db.execute(f"SELECT {', '.join(_HELD_COLUMNS)} FROM held {where} ORDER BY held_at, instance_id",
                              args).fetchall()
        return [{name: value.isoformat() if isinstance(value, datetime) else value
                 for name, value in zip(_HELD_COLUMNS, row, strict=True)} for row in rows]

    def release(self, instance_id: str) -> None:
        with self._db.connection() as db:
            db.execute("DELETE FROM held WHERE instance_id = %s", (instance_id,))

    def partial_attachments(self, instance_id: str) -> str | None:
        with self._db.connection() as db:
            row = db.execute("SELECT attachments FROM partial WHERE instance_id = %s", (instance_id,)).fetchone()
        return row[0] if row else None

    def keep_partial(self, instance_id: str, content_hash: str, attachments_json: str, at: datetime) -> None:
        with self._db.connection() as db:
            db.execute("INSERT INTO partial VALUES (%s, %s, %s, %s) ON CONFLICT (instance_id) DO UPDATE SET "
                       "content_hash = excluded.content_hash, attachments = excluded.attachments, "
                       "updated_at = excluded.updated_at", (instance_id, content_hash, attachments_json, at))

    def forget_partial(self, instance_id: str) -> None:
        # One statement (it runs after every accepted submission): the list and its parked files.
        with self._db.connection() as db:
            db.execute("WITH listed AS (DELETE FROM partial WHERE instance_id = %s) "
                       "DELETE FROM parked WHERE instance_id = %s", (instance_id, instance_id))

    def partials_before(self, before: datetime) -> list[str]:
        with self._db.connection() as db:
            rows = db.execute("SELECT instance_id FROM partial WHERE updated_at < %s ORDER BY updated_at",
                              (before,)).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self._db.close()
