"""What the intake has accepted: instanceID → answers' hash and edit-chain root (SQLite).

This is how an identical resend is recognised (201, nothing published) and a different
submission reusing an instanceID is refused (409). The raw XML is kept content-addressed
beside it, so an accepted submission can always be replayed from what the phone sent.

Every commit is synchronous (an fsync), so concurrent requests share them: ``record`` is a
group commit — whoever holds the write lock commits every entry queued meanwhile in one
transaction, and each caller returns only once its own entry is committed. Reads go through
a second connection (WAL: readers never wait for the writer's fsync).
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from services.sqlite import GroupCommit, open_durable

# The filesystem is full (or the user's quota is): nothing can be kept until space is freed.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class StorageFull(Exception):
    """A blob could not be stored for lack of space; nothing of it was left behind. Retry later."""


@dataclass(frozen=True)
class LedgerEntry:
    instance_id: str
    root_id: str
    content_hash: str
    form_id: str
    raw_sha256: str
    event_json: str = ""  # the event as published: what a retraction needs to address it
    retracted: bool = False


class Ledger:
    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self._raw_dir = state_dir / "raw"
        self._db = open_durable(state_dir / "intake.sqlite")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS accepted (instance_id TEXT PRIMARY KEY, root_id TEXT NOT NULL, "
            "content_hash TEXT NOT NULL, form_id TEXT NOT NULL, raw_sha256 TEXT NOT NULL, "
            "event_json TEXT NOT NULL, retracted INTEGER NOT NULL DEFAULT 0, accepted_at TEXT NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS held (instance_id TEXT PRIMARY KEY, deprecated_id TEXT NOT NULL, "
            "content_hash TEXT NOT NULL, raw_sha256 TEXT NOT NULL, username TEXT NOT NULL, source TEXT NOT NULL, "
            "attachments TEXT NOT NULL, held_at TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS held_by_predecessor ON held (deprecated_id)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS partial (instance_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL, "
            "attachments TEXT NOT NULL, updated_at TEXT NOT NULL)")
        self._lock = threading.Lock()  # the writer connection
        self._reader = open_durable(state_dir / "intake.sqlite")
        self._read_lock = threading.Lock()
        self._records = GroupCommit(self._db, "INSERT OR IGNORE INTO accepted VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                    self._lock)

    def lookup(self, instance_id: str) -> LedgerEntry | None:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT instance_id, root_id, content_hash, form_id, raw_sha256, event_json, retracted "
                "FROM accepted WHERE instance_id = ?", (instance_id,)).fetchone()
        return LedgerEntry(*row[:6], bool(row[6])) if row else None

    def keep_raw(self, raw: bytes) -> str:
        """Store bytes under their sha256 (never under a name the client chose); return the digest."""
        digest = hashlib.sha256(raw).hexdigest()
        path = self._raw_dir / digest[:2] / digest
        if path.exists():
            return digest
        tmp = path.with_name(f"{digest}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A crash leaves a .tmp, never a half-written blob under its digest. fsync before the
            # rename: a full disk may only say so then, and the blob must outlive the 201.
            with tmp.open("wb") as out:
                out.write(raw)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in _NO_SPACE:
                raise StorageFull(f"no space to store {len(raw)} bytes in {self._raw_dir}: {exc}") from exc
            raise
        return digest

    def raw(self, digest: str) -> bytes:
        return (self._raw_dir / digest[:2] / digest).read_bytes()

    # Submissions whose deprecatedID names a version not received yet: held, then released.
    def hold(self, instance_id: str, deprecated_id: str, content_hash: str, raw_sha256: str, username: str,
             source: str, attachments_json: str, held_at: datetime) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO held VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (instance_id, deprecated_id, content_hash, raw_sha256, username, source,
                              attachments_json, held_at.isoformat()))

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
        with self._lock:
            self._db.execute("DELETE FROM held WHERE instance_id = ?", (instance_id,))

    # Split uploads: attachments of the parts received so far, per instanceID.
    def partial_attachments(self, instance_id: str) -> str | None:
        with self._read_lock:
            row = self._reader.execute("SELECT attachments FROM partial WHERE instance_id = ?",
                                       (instance_id,)).fetchone()
        return row[0] if row else None

    def keep_partial(self, instance_id: str, content_hash: str, attachments_json: str, at: datetime) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO partial VALUES (?, ?, ?, ?)",
                             (instance_id, content_hash, attachments_json, at.isoformat()))

    def forget_partial(self, instance_id: str) -> None:
        if self.partial_attachments(instance_id) is None:  # almost always: no split upload, no commit
            return
        with self._lock:
            self._db.execute("DELETE FROM partial WHERE instance_id = ?", (instance_id,))

    def record(self, entry: LedgerEntry, accepted_at: datetime) -> None:
        """Commit ``entry``; returns once it is durable (raises what the commit raised)."""
        self._records.write((entry.instance_id, entry.root_id, entry.content_hash, entry.form_id, entry.raw_sha256,
                             entry.event_json, int(entry.retracted), accepted_at.isoformat()))

    def mark_retracted(self, instance_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE accepted SET retracted = 1 WHERE instance_id = ?", (instance_id,))

    def close(self) -> None:
        self._reader.close()
        self._db.close()

