"""In-memory adapters for the ports, for fast unit tests of the domain and the service layer.

Each implements the same port as a real adapter, which the integration tests keep testing:
``State`` (``services/domain/state.py``; the runners' ``KeyedState`` over the store),
``Publisher`` (``services/bus/base.py``; the embedded log, Kafka) and the intake's ``Ledger``
(``services/intake/ledger.py``; SQLite). A file store in ``tmp_path`` costs little, so the
in-memory ledger keeps the raw bytes in a real ``BlobStore``.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from services.bus.base import PublishFailed
from services.bus.codec import Message
from services.domain.events import Envelope
from services.intake.blobs import BlobStore
from services.intake.keyed_lock import KeyedLock
from services.intake.ledger import LedgerEntry


class InMemoryState:
    """The fold's ``State`` over a dict; values go through JSON, as in the store's state rows."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.data.get(key)
        return json.loads(raw) if raw is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = json.dumps(value)


class ListPublisher:
    """A ``Publisher`` that keeps what it was given; while ``down`` it takes nothing and raises
    ``PublishFailed``, as a broker that does not acknowledge."""

    def __init__(self) -> None:
        self.published: list[Message] = []
        self.down = False

    def publish(self, event: Message) -> None:
        if self.down:
            raise PublishFailed("broker unreachable (test)")
        self.published.append(event)

    def events(self) -> list[Envelope]:
        """The submissions' events published, in order (not dead letters or rejections)."""
        return [m for m in self.published if isinstance(m, Envelope)]

    def close(self) -> None:
        pass


class InMemoryLedger:
    """The intake's ``Ledger`` in dicts; the raw XML and attachments in ``blobs``."""

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs
        self.exclusive = KeyedLock().holding
        self._accepted: dict[str, tuple[LedgerEntry, datetime]] = {}
        self._held: dict[str, dict[str, str]] = {}
        self._partial: dict[str, tuple[str, datetime]] = {}  # instanceID → (attachments JSON, last part at)

    def lookup(self, instance_id: str) -> LedgerEntry | None:
        found = self._accepted.get(instance_id)
        return found[0] if found else None

    def chain(self, root_id: str) -> list[LedgerEntry]:
        versions = sorted((at, e.instance_id, e) for e, at in self._accepted.values() if e.root_id == root_id)
        return [entry for _, _, entry in versions]

    def of_form(self, form_id: str) -> list[LedgerEntry]:
        versions = sorted((at, n, e) for n, (e, at) in enumerate(self._accepted.values()) if e.form_id == form_id)
        return [entry for _, _, entry in versions]

    def record(self, entry: LedgerEntry, accepted_at: datetime) -> None:
        self._accepted.setdefault(entry.instance_id, (entry, accepted_at))

    def mark_retracted(self, instance_id: str, retracted: bool = True) -> None:
        entry, at = self._accepted[instance_id]
        self._accepted[instance_id] = (dataclasses.replace(entry, retracted=retracted), at)

    def hold(self, instance_id: str, deprecated_id: str, content_hash: str, raw_sha256: str, username: str,
             provinces_json: str, source: str, attachments_json: str, held_at: datetime) -> None:
        self._held.setdefault(instance_id, {
            "instance_id": instance_id, "deprecated_id": deprecated_id, "content_hash": content_hash,
            "raw_sha256": raw_sha256, "username": username, "provinces": provinces_json, "source": source,
            "attachments": attachments_json, "held_at": held_at.isoformat()})

    def held(self, instance_id: str | None = None, waiting_for: str | None = None,
             held_before: datetime | None = None) -> list[dict[str, str]]:
        rows = [row for row in self._held.values()
                if instance_id in (None, row["instance_id"]) and waiting_for in (None, row["deprecated_id"])
                and (held_before is None or datetime.fromisoformat(row["held_at"]) < held_before)]
        return sorted(rows, key=lambda row: row["held_at"])

    def release(self, instance_id: str) -> None:
        self._held.pop(instance_id, None)

    def partial_attachments(self, instance_id: str) -> str | None:
        found = self._partial.get(instance_id)
        return found[0] if found else None

    def keep_partial(self, instance_id: str, content_hash: str, attachments_json: str, at: datetime) -> None:
        self._partial[instance_id] = (attachments_json, at)

    def forget_partial(self, instance_id: str) -> None:
        if self._partial.pop(instance_id, None) is not None:
            self.blobs.drop_parked(instance_id)

    def partials_before(self, before: datetime) -> list[str]:
        return [i for i, (_, at) in sorted(self._partial.items(), key=lambda item: item[1][1]) if at < before]

    def close(self) -> None:
        pass
