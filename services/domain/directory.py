"""The libraries the intake knows now: the seed registry plus every chain of the registry form it has accepted.

Why here and not only in the query side's store: a phone registers a library, then (after its
next form update) reports visits for it; the intake must accept those. It learns of
registrations from its own ledger (the port below; the adapter is ``services/intake/registry.py``),
not from the store: the ledger has a registration the moment its 201 is sent, in both modes (the
embedded SQLite ledger; the PostgreSQL ledger every intake replica shares), whereas the store has
it only once a processor folded it (distributed: after Kafka and a worker). The fold is the one
fold of the registry (``registry_at``); the query side runs it over the store's copy of the
same chains.

Freshness (decided here, said in ``schemas/AGGREGATES.md``):
- the view is read again when older than ``max_age_s`` (the ``REGISTRY_REFRESH_S`` setting), and
  at once when this process accepted a registry-form submission (``changed``);
- a library id the view does not know makes the caller ask ``refresh`` once before refusing (one
  read of the ledger, shared by concurrent askers), so a visit log for a library registered on
  another replica a second ago is accepted, not refused until the next periodic read.
A report for a library that is still unknown after that is refused (``library_unknown``, 400),
never held: the phone keeps it and sends it again after its form update; holding it would keep
an answer for a library that may never exist.

Which libraries count as known: every library of the registry with every change applied
(``registry_at`` at ``date.max``), whatever its status: a closed or suspended library may still
send late reports of the days it operated, as the packaged registry's closed libraries always
could. Whether a report counts for a day is the query side's business (AGGREGATES.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol

from services.domain.reference import Reference
from services.domain.registry import as_reference, registry_at


class RegistryChanges(Protocol):
    """The current chains of the registry form as ``registry_change`` dicts, in the order accepted."""

    def __call__(self) -> list[dict[str, Any]]: ...


class LibraryDirectory:
    def __init__(self, seed: Reference, read_changes: RegistryChanges, max_age_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self._seed = seed
        self._read_changes = read_changes
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._changes: list[dict[str, Any]] | None = None
        self._view = seed
        self._read_at = float("-inf")  # when the last read started (the clock's time)

    def reference(self) -> Reference:
        """The seed reference with the registry as it stands now: a new object only when it changed,
        so what is derived from it (the form media) can be kept while it is the same."""
        if self._changes is None or self._clock() - self._read_at >= self._max_age_s:
            self.refresh()
        return self._view

    def refresh(self, asked_at: float | None = None) -> bool:
        """Read the registry form's chains again; True if the view may differ from the one the caller
        had. ``asked_at`` (the clock's time when the caller found its view wanting): a read started
        since then answers for it too, so concurrent askers share one read."""
        with self._lock:
            if asked_at is not None and self._read_at >= asked_at:
                return True  # read meanwhile: look again
            self._read_at = self._clock()
            changes = self._read_changes()
            if changes == self._changes:
                return False
            self._changes = changes
            self._view = as_reference(self._seed, registry_at(self._seed.libraries.values(), changes, date.max))
            return True

    def now(self) -> float:
        """The clock's time, for ``refresh(asked_at=...)``."""
        return self._clock()

    def changed(self) -> None:
        """This process accepted a registry-form submission: read again before the next answer."""
        with self._lock:
            self._changes = None
