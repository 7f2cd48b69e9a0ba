"""What the intake has accepted: instanceID → answers' hash and edit-chain root.

``Ledger`` is the port the intake's service depends on; ``SqliteLedger`` is its embedded adapter
(one process: its ``exclusive`` is an in-process lock), ``PostgresLedger``
(``services/intake/postgres/ledger.py``) the one every intake replica shares (the unit tests'
in-memory one is ``tests/fakes.py``).

This is how an identical resend is recognised (201, nothing published) and a different
submission reusing an instanceID is refused (409). The raw XML and attachments are kept
by content beside it (``blobs``, ``services/intake/blobs.py``), so an accepted submission can
always be replayed from what the phone sent.

Every commit is synchronous (an fsync), so concurrent requests share them: ``record`` is a
group commit — whoever holds the write lock commits every entry queued meanwhile in one
transaction, and each caller returns only once its own entry is committed. Reads go through
a second connection (WAL: readers never wait for the writer's fsync). A full disk is
``StorageFull`` (507), never a bare error.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from services.intake.blobs import BlobStore, FileBlobStore
from services.intake.keyed_lock import KeyedLock
from services.sqlite import GroupCommit, full_disk_refused, open_durable


@dataclass(frozen=True)
class LedgerEntry:
    instance_id: str
    root_id: str
    content_hash: str
    form_id: str
    raw_sha256: str
    event_json: str = ""  # the event as published: its areas, and what a retraction needs to address it
    retracted: bool = False


class Ledger(Protocol):
    """What the intake's service asks of its ledger; the raw bytes are kept by content in ``blobs``."""

    blobs: BlobStore

    def exclusive(self, *instance_ids: str | None) -> AbstractContextManager[None]:
        """Hold these instanceIDs (None and empty ignored): every caller sharing this ledger — every
        thread, and for a shared ledger every process — runs its check → publish → record for them
        one at a time, so of racing sends one wins and the others see it. Not reentrant."""

    def lookup(self, instance_id: str) -> LedgerEntry | None: ...

    def chain(self, root_id: str) -> list[LedgerEntry]:
        """Every accepted version of an edit chain (its first instanceID is ``root_id``), in the order accepted."""

    def of_form(self, form_id: str) -> list[LedgerEntry]:
        """Every accepted version of the form's submissions, in the order accepted (the registry
        form's, for ``services/intake/registry.py``; indexed by form)."""

    def record(self, entry: LedgerEntry, accepted_at: datetime) -> None:
        """Commit ``entry``; returns once it is durable (raises what the commit raised), or inside
        ``exclusive``, once the block ends without an error. A second entry for an instanceID is ignored."""

    def mark_retracted(self, instance_id: str, retracted: bool = True) -> None:
        """Withdrawn (True), or live again after a reinstatement (False)."""

    # Edits that came before the version they replace: held, then released (or expired).
    def hold(self, instance_id: str, deprecated_id: str, content_hash: str, raw_sha256: str, username: str,
             provinces_json: str, source: str, attachments_json: str, held_at: datetime) -> None: ...

    def held(self, instance_id: str | None = None, waiting_for: str | None = None,
             held_before: datetime | None = None) -> list[dict[str, str]]:
        """Held rows matching every filter given, oldest first; keys: ``instance_id``, ``deprecated_id``,
        ``content_hash``, ``raw_sha256``, ``username``, ``provinces``, ``source``, ``attachments``, ``held_at``
        (ISO text), each as ``hold`` was given it."""

    def release(self, instance_id: str) -> None: ...

    # Split uploads: attachments (JSON) of the parts received so far, per instanceID (files: blobs' "partial").
    def partial_attachments(self, instance_id: str) -> str | None: ...

    def keep_partial(self, instance_id: str, content_hash: str, attachments_json: str, at: datetime) -> None: ...

    def forget_partial(self, instance_id: str) -> None:
        """The upload is complete (its files were taken into the store) or abandoned: drop what is left."""

    def partials_before(self, before: datetime) -> list[str]:
        """instanceIDs of split uploads whose last part came before ``before``."""

    def close(self) -> None: ...


_ENTRY_COLUMNS = "instance_id, root_id, content_hash, form_id, raw_sha256, event_json, retracted"


class SqliteLedger:
    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = FileBlobStore(state_dir / "raw")
        self.exclusive = KeyedLock().holding  # one process owns the file
        self._path = state_dir / "intake.sqlite"
        self._db = open_durable(self._path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS accepted (instance_id TEXT PRIMARY KEY, root_id TEXT NOT NULL, "
            "content_hash TEXT NOT NULL, form_id TEXT NOT NULL, raw_sha256 TEXT NOT NULL, "
            "event_json TEXT NOT NULL, retracted INTEGER NOT NULL DEFAULT 0, accepted_at TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS accepted_by_root ON accepted (root_id)")
        self._db.execute("CREATE INDEX IF NOT EXISTS accepted_by_form ON accepted (form_id, accepted_at)")
        # provinces: the scopes of the account that sent a held edit, checked again when it is released.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS held (instance_id TEXT PRIMARY KEY, deprecated_id TEXT NOT NULL, "
            "content_hash TEXT NOT NULL, raw_sha256 TEXT NOT NULL, username TEXT NOT NULL, source TEXT NOT NULL, "
            "attachments TEXT NOT NULL, held_at TEXT NOT NULL, provinces TEXT)")
        if "provinces" not in {row[1] for row in self._db.execute("PRAGMA table_info(held)")}:
            # Rows held before scopes were kept have none: their release is refused (a dead letter
            # an operator can re-drive), never applied unchecked.
            self._db.execute("ALTER TABLE held ADD COLUMN provinces TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS held_by_predecessor ON held (deprecated_id)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS partial (instance_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL, "
            "attachments TEXT NOT NULL, updated_at TEXT NOT NULL)")
        self._lock = threading.Lock()  # the writer connection
        self._reader = open_durable(self._path)
        self._read_lock = threading.Lock()
        self._records = GroupCommit(self._db, f"INSERT OR IGNORE INTO accepted ({_ENTRY_COLUMNS}, accepted_at) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._lock, self._path)

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock, full_disk_refused(self._path):
            self._db.execute(sql, args)

    def lookup(self, instance_id: str) -> LedgerEntry | None:
        with self._read_lock:
            row = self._reader.execute(f"SELECT {_ENTRY_COLUMNS} FROM accepted WHERE instance_id = ?",
                                       (instance_id,)).fetchone()
        return LedgerEntry(*row[:6], bool(row[6])) if row else None

    def chain(self, root_id: str) -> list[LedgerEntry]:
        with self._read_lock:
            rows = self._reader.execute(f"SELECT {_ENTRY_COLUMNS} FROM accepted WHERE root_id = ? "
                                        "ORDER BY accepted_at", (root_id,)).fetchall()
        return [LedgerEntry(*row[:6], bool(row[6])) for row in rows]

    def of_form(self, form_id: str) -> list[LedgerEntry]:
        with self._read_lock:
            rows = self._reader.execute(f"SELECT {_ENTRY_COLUMNS} FROM accepted WHERE form_id = ? "
                                        "ORDER BY accepted_at, rowid", (form_id,)).fetchall()
        return [LedgerEntry(*row[:6], bool(row[6])) for row in rows]

    def hold(self, instance_id: str, deprecated_id: str, content_hash: str, raw_sha256: str, username: str,
             provinces_json: str, source: str, attachments_json: str, held_at: datetime) -> None:
        self._write("INSERT OR IGNORE INTO held (instance_id, deprecated_id, content_hash, raw_sha256, username, "
                    "source, attachments, held_at, provinces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (instance_id, deprecated_id, content_hash, raw_sha256, username, source, attachments_json,
                     held_at.isoformat(), provinces_json))

    def held(self, instance_id: str | None = None, waiting_for: str | None = None,
             held_before: datetime | None = None) -> list[dict[str, str]]:
        clauses, args = [], []
        for column, value in (("instance_id", instance_id), ("deprecated_id", waiting_for)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if held_before is not None:
            clauses.append("held_at < ?")
            args.append(held_before.isoformat())
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read_lock:
            cursor = self._reader.execute(f"SELECT * FROM held {where} ORDER BY held_at", args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def release(self, instance_id: str) -> None:
        self._write("DELETE FROM held WHERE instance_id = ?", (instance_id,))

    def partial_attachments(self, instance_id: str) -> str | None:
        with self._read_lock:
            row = self._reader.execute("SELECT attachments FROM partial WHERE instance_id = ?",
                                       (instance_id,)).fetchone()
        return row[0] if row else None

    def keep_partial(self, instance_id: str, content_hash: str, attachments_json: str, at: datetime) -> None:
        self._write("INSERT OR REPLACE INTO partial VALUES (?, ?, ?, ?)",
                    (instance_id, content_hash, attachments_json, at.isoformat()))

    def forget_partial(self, instance_id: str) -> None:
        if self.partial_attachments(instance_id) is None:  # almost always: no split upload, no commit
            return
        self._write("DELETE FROM partial WHERE instance_id = ?", (instance_id,))
        self.blobs.drop_parked(instance_id)

    def partials_before(self, before: datetime) -> list[str]:
        with self._read_lock:
            rows = self._reader.execute("SELECT instance_id FROM partial WHERE updated_at < ? ORDER BY updated_at",
                                        (before.isoformat(),)).fetchall()
        return [row[0] for row in rows]

    def record(self, entry: LedgerEntry, accepted_at: datetime) -> None:
        self._records.write((entry.instance_id, entry.root_id, entry.content_hash, entry.form_id, entry.raw_sha256,
                             entry.event_json, int(entry.retracted), accepted_at.isoformat()))

    def mark_retracted(self, instance_id: str, retracted: bool = True) -> None:
        self._write("UPDATE accepted SET retracted = ? WHERE instance_id = ?", (int(retracted), instance_id))

    def close(self) -> None:
        self._reader.close()
        self._db.close()
