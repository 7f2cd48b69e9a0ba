"""The library registry at a date: the reference registry updated by the registry form.

Plain Python over two inputs: the reference libraries (``services/reference/libraries.csv``)
and the current chains of the ``library_registry`` form (as dicts: library_id, occurred_on,
areas, payload). Rules in ``schemas/AGGREGATES.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from services.domain.events import AdminArea, Scheme
from services.domain.reference import Library


@dataclass(frozen=True)
class LibraryAt:
    library_id: str
    library_type: str
    areas: tuple[AdminArea, ...]
    opened_on: date | None
    status: str
    model_joined_on: date | None
    coordination_agreed_on: tuple[date, ...] = ()

    def area(self, scheme: Scheme) -> AdminArea:
        return next(a for a in self.areas if a.scheme == scheme)

    def operating_on(self, day: date) -> bool:
        return self.status == "operating" and (self.opened_on is None or self.opened_on <= day)

    def in_model_on(self, day: date) -> bool:
        return self.operating_on(day) and self.model_joined_on is not None and self.model_joined_on <= day


def registry_at(reference: Iterable[Library], changes: Iterable[dict[str, Any]], day: date) -> dict[str, LibraryAt]:
    """Libraries as they stood at the end of ``day``; ``changes`` are current registry-form chains."""
    libraries = {
        lib.library_id: LibraryAt(lib.library_id, lib.library_type, tuple(lib.areas), lib.opened_on,
                                  lib.status, lib.model_joined_on)
        for lib in reference
    }
    ordered = sorted((c for c in changes if c["occurred_on"] <= day), key=lambda c: (c["occurred_on"], c["order"]))
    for change in ordered:
        payload, library_id = change["payload"], change["library_id"]
        action = payload["action"]
        current = libraries.get(library_id)
        if action == "register":
            libraries[library_id] = LibraryAt(
                library_id, payload.get("library_type") or "other", tuple(change["areas"]),
                _date(payload.get("opened_on")) or change["occurred_on"], "operating", None)
        elif current is None:
            continue
        elif action == "update":
            libraries[library_id] = replace(current, status=payload.get("status") or current.status,
                                            library_type=payload.get("library_type") or current.library_type)
        elif action == "model_joined":
            libraries[library_id] = replace(current, model_joined_on=change["occurred_on"])
        elif action == "coordination_agreed":
            libraries[library_id] = replace(current, coordination_agreed_on=(
                *current.coordination_agreed_on, change["occurred_on"]))
    return libraries


def _date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
