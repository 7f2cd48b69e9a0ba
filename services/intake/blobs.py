"""Where the intake keeps the bytes phones send: raw XML and attachments, by content (sha256).

``BlobStore`` is the port; ``FileBlobStore`` (here: files, the embedded mode) and
``PostgresBlobStore`` (``services/intake/postgres/blobs.py``: shared by every intake replica)
its adapters. Both receive a request's attachments into local files first (``Incoming``),
hashed and counted while the body is read, so the limits hold before anything is kept.

The file store keeps three places under one root, on one filesystem so that moving a file between them is a rename:

- ``<root>/<2 hex>/<sha256>``: what was accepted (or held), named by its digest, never by a name
  the phone chose. Written once; a file there is complete (written, fsynced, then renamed in from
  a ``.tmp`` beside it, or from ``incoming/``).
- ``<root>/incoming/``: attachments as they arrive, hashed and counted while they are written,
  before anyone knows whether the submission will be accepted. Accepted: renamed into the
  store; refused: deleted. Nothing is left here after a request; what a crash left is deleted
  after an hour (at start-up and by the intake's sweep).
- ``<root>/partial/<key>/<sha256>``: attachments of a split upload whose last part has not
  come yet (``*isIncomplete*=yes``), one folder per instanceID, so that an upload that never
  finishes can be reclaimed as a whole.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from services.domain.errors import StorageFull
from services.domain.events import AttachmentRef

# The filesystem is full (or the user's quota is): nothing can be kept until space is freed.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
STALE_INCOMING_S = 3600.0  # far longer than any request takes to arrive


@dataclass
class StagedBlob:
    """A file being received: hashed and counted as it is written to ``incoming/``."""

    path: Path
    _out: BinaryIO | None
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    sha256: str = ""  # set by ``finish``

    def write(self, data: bytes) -> None:
        assert self._out is not None, "written after finish"
        try:
            self._out.write(data)
        except OSError as exc:
            raise _storage_error(exc, self.path) from exc
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> None:
        """Flush and fsync (a full disk may only say so now): the bytes must outlive the 201."""
        if self._out is None:
            return
        out, self._out = self._out, None
        try:
            out.flush()
            os.fsync(out.fileno())
            out.close()
        except OSError as exc:
            with contextlib.suppress(OSError):  # closing flushes again, and fails again
                out.close()
            raise _storage_error(exc, self.path) from exc
        self.sha256 = self._hash.hexdigest()

    def discard(self) -> None:
        """Forget it, unless it was taken (committed or parked: then its path is gone already)."""
        if self._out is not None:
            with contextlib.suppress(OSError):  # unwritten bytes of a file about to go
                self._out.close()
            self._out = None
        self.path.unlink(missing_ok=True)


@dataclass
class IncomingFile:
    """An attachment received with a submission, staged until the submission is accepted or refused."""

    name: str  # the phone's file name: a label, never a path
    media_type: str
    blob: StagedBlob

    def ref(self) -> AttachmentRef:
        return AttachmentRef(name=self.name, sha256=self.blob.sha256, size=self.blob.size,
                             media_type=self.media_type)


def _storage_error(exc: OSError, path: Path) -> Exception:
    return StorageFull(f"no space to store {path.name} in {path.parent}: {exc}") if exc.errno in _NO_SPACE else exc


class BlobStore(Protocol):
    """Content-addressed bytes: what was accepted or held, and the parked parts of split uploads."""

    def stage(self) -> StagedBlob:
        """A local file to receive an attachment into while the body is read."""

    def stage_bytes(self, data: bytes) -> StagedBlob:
        """``data`` staged as if it had arrived in a request (ODK Central's attachments)."""

    def forget_stale_incoming(self, older_than_s: float = STALE_INCOMING_S) -> int: ...

    def has(self, digest: str) -> bool: ...

    def read(self, digest: str) -> bytes: ...

    def keep(self, data: bytes) -> str:
        """Store ``data`` under its sha256; return the digest."""

    def commit(self, staged: StagedBlob) -> str:
        """Take a finished staged blob into the store under its digest (a no-op for bytes already there)."""

    def park(self, instance_id: str, staged: StagedBlob) -> None:
        """Keep a part's attachment until its upload's last part comes (or the upload expires)."""

    def adopt_parked(self, instance_id: str, digest: str) -> bool:
        """Move a parked attachment into the store; False if it is in neither place."""

    def drop_parked(self, instance_id: str) -> None: ...


class Incoming:
    """Files being received (``<root>``), before anyone knows whether they will be kept."""

    def __init__(self, root: Path):
        self._root = root
        self._root.mkdir(parents=True, exist_ok=True)
        self.forget_stale()

    def forget_stale(self, older_than_s: float = STALE_INCOMING_S) -> int:
        """Delete what a crash left: never accepted, never answered 201. Only files older than any
        request lasts, since another process (a Central pull) may share the folder."""
        oldest = time.time() - older_than_s
        stale = [path for path in self._root.iterdir() if path.stat().st_mtime < oldest]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def stage(self) -> StagedBlob:
        return open_staged(self._root / f"{uuid.uuid4().hex}.tmp")

    def stage_bytes(self, data: bytes) -> StagedBlob:
        staged = self.stage()
        try:
            staged.write(data)
            staged.finish()
        except BaseException:
            staged.discard()
            raise
        return staged


def open_staged(path: Path) -> StagedBlob:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return StagedBlob(path, path.open("wb"))
    except OSError as exc:
        raise _storage_error(exc, path) from exc


class StagesLocally:
    """What every blob store does alike: a body's files are staged in a local folder while it is
    read (its limits checked as bytes arrive); only what is kept reaches the store itself."""

    def __init__(self, incoming: Path):
        self._incoming = Incoming(incoming)

    def forget_stale_incoming(self, older_than_s: float = STALE_INCOMING_S) -> int:
        return self._incoming.forget_stale(older_than_s)

    def stage(self) -> StagedBlob:
        return self._incoming.stage()

    def stage_bytes(self, data: bytes) -> StagedBlob:
        return self._incoming.stage_bytes(data)


class FileBlobStore(StagesLocally):
    def __init__(self, root: Path):
        super().__init__(root / "incoming")
        self._root = root
        self._partial = root / "partial"

    def path(self, digest: str) -> Path:
        return self._root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def keep(self, data: bytes) -> str:
        """Store ``data`` under its sha256; return the digest. StorageFull leaves nothing behind."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if path.exists():  # a resend: nothing to write, nothing to fsync
            return digest
        # Staged beside its final name (one of 256 folders), not in incoming/: concurrent requests
        # then create and rename in different directories (one busy directory cost a quarter of the
        # intake's throughput).
        staged = open_staged(path.with_name(f"{digest}.{uuid.uuid4().hex}.tmp"))
        try:
            staged.write(data)
            staged.finish()
            return self.commit(staged)
        finally:
            staged.discard()

    def commit(self, staged: StagedBlob) -> str:
        """Move a finished staged blob into the store under its digest (a no-op for bytes already there)."""
        return self._move_in(staged.path, staged.sha256)

    # -- split uploads ------------------------------------------------------------------------

    def _parked_dir(self, instance_id: str) -> Path:
        return self._partial / hashlib.sha256(instance_id.encode("utf-8")).hexdigest()[:32]

    def park(self, instance_id: str, staged: StagedBlob) -> None:
        """Keep a part's attachment until its upload's last part comes (or the upload expires)."""
        folder = self._parked_dir(instance_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(staged.path, folder / staged.sha256)
        except OSError as exc:
            raise _storage_error(exc, folder) from exc

    def adopt_parked(self, instance_id: str, digest: str) -> bool:
        """Move a parked attachment into the store; False if it is in neither place."""
        parked = self._parked_dir(instance_id) / digest
        if parked.exists():
            self._move_in(parked, digest)
            return True
        return self.has(digest)

    def drop_parked(self, instance_id: str) -> None:
        shutil.rmtree(self._parked_dir(instance_id), ignore_errors=True)

    def _move_in(self, source: Path, digest: str) -> str:
        target = self.path(digest)
        if target.exists():  # the same bytes came before (a resend, the same photo twice)
            source.unlink(missing_ok=True)
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        except OSError as exc:
            raise _storage_error(exc, target) from exc
        return digest

