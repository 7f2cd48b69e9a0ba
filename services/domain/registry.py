"""The library registry at a date: the reference registry updated by the registry form.

Plain Python over two inputs: the reference libraries (``services/reference/libraries.csv`` or
``LIBRARIES_FILE``) and the current chains of the ``library_registry`` form, as change dicts
(``registry_change``). This is the one fold of the registry: the query side reads the chains from
the store, the intake (its validation and the form media served to Collect) from its ledger
(``services/domain/directory.py``). Rules in ``schemas/AGGREGATES.md``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from services.domain.events import AdminArea, Scheme
from services.domain.forms.library_registry import new_library_id
from services.domain.reference import Library, Reference


@dataclass(frozen=True)
class LibraryAt:
    library_id: str
    library_type: str
    areas: tuple[AdminArea, ...]
    opened_on: date | None
    status: str
    model_joined_on: date | None
    coordination_agreed_on: tuple[date, ...] = ()
    name_vi: str = ""
    name_en: str = ""
    latitude: float | None = None
    longitude: float | None = None

    def area(self, scheme: Scheme) -> AdminArea:
        return next(a for a in self.areas if a.scheme == scheme)

    def operating_on(self, day: date) -> bool:
        return self.status == "operating" and (self.opened_on is None or self.opened_on <= day)

    def in_model_on(self, day: date) -> bool:
        return self.operating_on(day) and self.model_joined_on is not None and self.model_joined_on <= day


def ascii_name(name: str) -> str:
    """Vietnamese without diacritics (``Thư viện xã Đồng Văn`` → ``Thu vien xa Dong Van``), the
    reference's English form of a place name; used for libraries registered without one."""
    decomposed = unicodedata.normalize("NFKD", name.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def registry_change(*, root_id: str, library_id: str, occurred_on: date, payload: Mapping[str, Any],
                    areas: Iterable[AdminArea], order: int) -> dict[str, Any]:
    """One current chain of the registry form as ``registry_at`` folds it. A registration's library is
    named after the chain's first version (``root_id``): an edit of it keeps the id."""
    if payload["action"] == "register":
        library_id = new_library_id(root_id) or library_id
    return {"library_id": library_id, "occurred_on": occurred_on, "order": order, "payload": dict(payload),
            "areas": tuple(areas)}


def registry_at(reference: Iterable[Library], changes: Iterable[dict[str, Any]], day: date) -> dict[str, LibraryAt]:
    """Libraries as they stood at the end of ``day``; ``changes`` are current registry-form chains
    (``registry_change``). A registration whose id is already taken is ignored: the intake refuses
    one (``library_registry.parse``), so only a chain accepted before that check could be one."""
    libraries = {
        lib.library_id: LibraryAt(lib.library_id, lib.library_type, tuple(lib.areas), lib.opened_on,
                                  lib.status, lib.model_joined_on, name_vi=lib.name_vi, name_en=lib.name_en,
                                  latitude=lib.latitude, longitude=lib.longitude)
        for lib in reference
    }
    ordered = sorted((c for c in changes if c["occurred_on"] <= day), key=lambda c: (c["occurred_on"], c["order"]))
    for change in ordered:
        payload, library_id = change["payload"], change["library_id"]
        action = payload["action"]
        current = libraries.get(library_id)
        if action == "register":
            if current is not None:
                continue
            name = payload.get("name_vi") or library_id
            libraries[library_id] = LibraryAt(
                library_id, payload.get("library_type") or "other", tuple(change["areas"]),
                _date(payload.get("opened_on")) or change["occurred_on"], "operating", None,
                name_vi=name, name_en=ascii_name(name), **_point(payload, None))
        elif current is None:
            continue
        elif action == "update":
            name = payload.get("name_vi")
            libraries[library_id] = replace(
                current, status=payload.get("status") or current.status,
                library_type=payload.get("library_type") or current.library_type,
                name_vi=name or current.name_vi, name_en=ascii_name(name) if name else current.name_en,
                **_point(payload, current))
        elif action == "model_joined":
            libraries[library_id] = replace(current, model_joined_on=change["occurred_on"])
        elif action == "coordination_agreed":
            libraries[library_id] = replace(current, coordination_agreed_on=(
                *current.coordination_agreed_on, change["occurred_on"]))
    return libraries


def as_reference(reference: Reference, registry: Mapping[str, LibraryAt]) -> Reference:
    """``reference`` with its libraries replaced by ``registry``'s: what the form parsers check a
    ``library_id`` against and the form media list (``services/domain/directory.py``)."""
    libraries = {lib.library_id: Library(
        library_id=lib.library_id, name_vi=lib.name_vi or lib.library_id, name_en=lib.name_en or lib.library_id,
        library_type=lib.library_type, areas=(lib.area("legacy"), lib.area("2025")), opened_on=lib.opened_on,
        latitude=lib.latitude, longitude=lib.longitude, model_joined_on=lib.model_joined_on, status=lib.status)
        for lib in registry.values()}
    return replace(reference, libraries=libraries)


def _point(payload: Mapping[str, Any], current: LibraryAt | None) -> dict[str, float | None]:
    if payload.get("latitude") is not None and payload.get("longitude") is not None:
        return {"latitude": payload["latitude"], "longitude": payload["longitude"]}
    return {"latitude": current.latitude if current else None, "longitude": current.longitude if current else None}


def _date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
