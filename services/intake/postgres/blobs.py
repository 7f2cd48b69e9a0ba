"""``BlobStore`` over PostgreSQL (``schemas/postgres/002_blobs.sql``): raw XML and attachments as
``bytea`` named by their sha256, as ODK Central keeps them, shared by every intake replica.

A request's attachments are received into local files first (``Incoming``, under the replica's
STATE_DIR), hashed and counted while the body is read, where the upload's limits stop them;
only what is committed or parked reaches the database, and a blob over ``max_bytes`` is refused
here too before it is sent. Inside an ``exclusive`` block the rows are written in its
transaction: a submission refused or failed after its files were taken leaves none of them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from services.intake.blobs import StagedBlob, StagesLocally
from services.intake.postgres.database import LedgerDatabase
from services.intake.refusals import UploadRefused, too_large


class PostgresBlobStore(StagesLocally):
    def __init__(self, database: LedgerDatabase, staging_dir: Path, max_bytes: int):
        super().__init__(staging_dir / "incoming")
        self._db = database
        self._max_bytes = max_bytes

    def _check_size(self, size: int) -> None:
        if size > self._max_bytes:
            raise UploadRefused(413, too_large("Tệp", "A file", self._max_bytes, size))

    def has(self, digest: str) -> bool:
        with self._db.connection() as db:
            return db.execute("SELECT 1 FROM blobs WHERE sha256 = %s", (digest,)).fetchone() is not None

    def read(self, digest: str) -> bytes:
        with self._db.connection() as db:
            row = db.execute("SELECT data FROM blobs WHERE sha256 = %s", (digest,), binary=True).fetchone()
        if row is None:
            raise KeyError(f"no blob {digest}")
        return bytes(row[0])

    def keep(self, data: bytes) -> str:
        self._check_size(len(data))
        digest = hashlib.sha256(data).hexdigest()
        with self._db.connection() as db:
            db.execute("INSERT INTO blobs VALUES (%s, %s, %b) ON CONFLICT (sha256) DO NOTHING",
                       (digest, len(data), data))
        return digest

    def commit(self, staged: StagedBlob) -> str:
        self._check_size(staged.size)
        with self._db.connection() as db:
            db.execute("INSERT INTO blobs VALUES (%s, %s, %b) ON CONFLICT (sha256) DO NOTHING",
                       (staged.sha256, staged.size, staged.path.read_bytes()))
        staged.discard()
        return staged.sha256

    def park(self, instance_id: str, staged: StagedBlob) -> None:
        self._check_size(staged.size)
        with self._db.connection() as db:
            db.execute("INSERT INTO parked VALUES (%s, %s, %s, %b) ON CONFLICT (instance_id, sha256) DO NOTHING",
                       (instance_id, staged.sha256, staged.size, staged.path.read_bytes()))
        staged.discard()

    def adopt_parked(self, instance_id: str, digest: str) -> bool:
        with self._db.connection() as db:
            moved = db.execute(
                "WITH moved AS (DELETE FROM parked WHERE instance_id = %s AND sha256 = %s "
                "RETURNING sha256, size, data) "
                "INSERT INTO blobs SELECT sha256, size, data FROM moved ON CONFLICT (sha256) DO NOTHING RETURNING 1",
                (instance_id, digest)).fetchone()
        return moved is not None or self.has(digest)

    def drop_parked(self, instance_id: str) -> None:
        with self._db.connection() as db:
            db.execute("DELETE FROM parked WHERE instance_id = %s", (instance_id,))
