"""Areas and libraries: what an area parameter means, who may ask for it, and how an area is
written in an answer (names in Vietnamese and English, codes tagged with their scheme).

Every endpoint refuses an area outside the key's reach (``services/query/access.py``); the lists
``/v1/areas`` and ``/v1/libraries`` (``areas_api.py``) are filtered to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.clock import today_local
from services.domain.errors import Reason
from services.domain.events import SCHEMES, AdminArea, Scheme
from services.domain.reference import Reference
from services.domain.registry import LibraryAt
from services.problems import RequestRefused
from services.query.access import Principal, Reach
from services.query.params import AreaQuery
from services.store.aggregates import Aggregates
from services.store.clickhouse import AreaFilter, area_column

REGION_NAMES = {"legacy": ("14 tỉnh của chương trình", "the 14 programme provinces"),
                "2025": ("10 tỉnh hiện nay", "the 10 current provinces")}
AREA_CODE_COLUMNS = [f"areas.{scheme}.{level}_{what}" for scheme in SCHEMES for level in ("province", "commune")
                     for what in ("code", "name_vi", "name_en")]


@dataclass(frozen=True)
class LibraryInfo:
    at: LibraryAt
    name_vi: str
    name_en: str
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class ResolvedArea:
    """An area parameter checked: its filter for the store and how it is written in answers."""

    query: AreaQuery
    filter: AreaFilter
    area: dict[str, Any]


class AreaResolver:
    """Reads area parameters (checks them against the reference, the registry and the key) and writes
    areas and libraries in answers, with their names."""

    def __init__(self, reference: Reference, aggregates: Aggregates):
        self.reference = reference
        self.aggregates = aggregates

    # --- the registry with names ---------------------------------------------------------------

    def libraries(self, day: date) -> dict[str, LibraryInfo]:
        """The registry at the end of ``day`` (AGGREGATES.md), each library with its names and coordinates
        (folded with the rest of the registry: ``services/domain/registry.py``)."""
        registry = self.aggregates.registry(day)
        return {library_id: LibraryInfo(at, at.name_vi or library_id, at.name_en or library_id, at.latitude,
                                        at.longitude)
                for library_id, at in registry.items()}

    # --- writing areas ---------------------------------------------------------------------------

    def unit(self, scheme: Scheme, province: str | None = None, commune: str | None = None) -> dict[str, Any]:
        """A province or commune: ``{scheme, level, code, name_vi, name_en}``."""
        if commune is not None:
            found = self.reference.commune(scheme, commune)
            return {"scheme": scheme, "level": "commune", "code": commune,
                    "name_vi": found.name_vi if found else None, "name_en": found.name_en if found else None}
        found_p = self.reference.province(scheme, province) if province else None
        return {"scheme": scheme, "level": "province", "code": province,
                "name_vi": found_p.name_vi if found_p else None, "name_en": found_p.name_en if found_p else None}

    def codes(self, areas: Iterable[AdminArea]) -> dict[str, dict[str, Any]]:
        """A place under both schemes: ``{"legacy": {province_code, province_name_vi, …}, "2025": {…}}``."""
        by_scheme = {a.scheme: a for a in areas}
        return {scheme: self.codes_of(scheme, by_scheme[scheme].province_code, by_scheme[scheme].commune_code)
                if scheme in by_scheme else self.codes_of(scheme, None, None) for scheme in SCHEMES}

    def codes_of(self, scheme: Scheme, province: str | None, commune: str | None) -> dict[str, Any]:
        p = self.unit(scheme, province) if province else {"name_vi": None, "name_en": None}
        c = self.unit(scheme, None, commune) if commune else {"name_vi": None, "name_en": None}
        return {"province_code": province or None, "province_name_vi": p["name_vi"], "province_name_en": p["name_en"],
                "commune_code": commune or None, "commune_name_vi": c["name_vi"], "commune_name_en": c["name_en"]}

    def row_codes(self, row: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Codes of a store row (``province_legacy``, ``commune_legacy``, ``province_2025``, ``commune_2025``)."""
        return {scheme: self.codes_of(scheme, row.get(area_column("province", scheme)),
                                      row.get(area_column("commune", scheme)))
                for scheme in SCHEMES}

    def region(self, scheme: Scheme) -> dict[str, Any]:
        name_vi, name_en = REGION_NAMES[scheme]
        return {"scheme": scheme, "level": "region", "code": None, "name_vi": name_vi, "name_en": name_en}

    # --- reading an area parameter ---------------------------------------------------------------

    def resolve(self, principal: Principal, query: AreaQuery, *, region_ok: bool = False) -> ResolvedArea:
        """Check the area (it exists, its parts agree, the key reaches it) and describe it.

        404 for an unknown province, commune or library; 400 when a commune is not in the province
        given (or a library not in the commune/province); 403 outside the key's reach, and for the
        whole region with a province-scoped key unless ``region_ok`` (lists filtered by the caller).
        """
        scheme = query.scheme
        area: dict[str, Any]
        library: LibraryInfo | None = None
        province_unit = commune_unit = None
        if query.province:
            province_unit = self.reference.province(scheme, query.province)
            if province_unit is None:
                raise RequestRefused(404, "Unknown province", Reason(
                    "unknown_province", f"Không có tỉnh {query.province} theo hệ mã {scheme}",
                    f"No province {query.province} under scheme {scheme}", "province"))
        if query.commune:
            commune_unit = self.reference.commune(scheme, query.commune)
            if commune_unit is None:
                raise RequestRefused(404, "Unknown commune", Reason(
                    "unknown_commune", f"Không có xã {query.commune} theo hệ mã {scheme}",
                    f"No commune {query.commune} under scheme {scheme}", "commune"))
            if query.province and commune_unit.province_code != query.province:
                raise RequestRefused(400, "Commune not in province", Reason(
                    "commune_not_in_province",
                    f"Xã {query.commune} ({scheme}) thuộc tỉnh {commune_unit.province_code}, "
                    f"không phải {query.province}",
                    f"Commune {query.commune} ({scheme}) lies in province {commune_unit.province_code}, "
                    f"not {query.province}", "commune"))
        if query.library:
            library = self.libraries(today_local()).get(query.library)
            if library is None:
                raise RequestRefused(404, "Unknown library", Reason(
                    "unknown_library", f"Không có thư viện {query.library} trong sổ đăng ký",
                    f"No library {query.library} in the registry", "library"))
            here = library.at.area(scheme)
            for name, name_vi, given, actual in (("province", "tỉnh", query.province, here.province_code),
                                                 ("commune", "xã", query.commune, here.commune_code)):
                if given and given != actual:
                    raise RequestRefused(400, f"Library not in {name}", Reason(
                        f"library_not_in_{name}",
                        f"Thư viện {query.library} thuộc {name_vi} {actual} ({scheme}), không phải {given}",
                        f"Library {query.library} lies in {name} {actual} ({scheme}), not {given}", "library"))
        self._check_reach(principal.reach(), principal, query, library, region_ok)

        if library is not None:
            here = library.at.area(scheme)
            area = {"scheme": scheme, "level": "library", "code": library.at.library_id, "name_vi": library.name_vi,
                    "name_en": library.name_en, "library_type": library.at.library_type,
                    "province": self.unit(scheme, here.province_code),
                    "commune": self.unit(scheme, None, here.commune_code)}
        elif commune_unit is not None:
            area = {**self.unit(scheme, None, commune_unit.code), "province_code": commune_unit.province_code,
                    "province": self.unit(scheme, commune_unit.province_code)}
        elif province_unit is not None:
            area = self.unit(scheme, province_unit.code)
        else:
            area = self.region(scheme)
        return ResolvedArea(query, AreaFilter(scheme, query.province, query.commune, query.library), area)

    def _check_reach(self, reach: Reach, principal: Principal, query: AreaQuery, library: LibraryInfo | None,
                     region_ok: bool) -> None:
        if reach.everything:
            return
        scheme, hint_vi, hint_en = query.scheme, "", ""
        if library is not None:
            outside = None if reach.library(library.at.areas) else (
                "library", f"Thư viện {query.library}", f"Library {query.library}")
        elif query.commune:
            outside = None if reach.commune(self.reference, scheme, query.commune) else (
                "commune", f"Xã {query.commune} ({scheme})", f"Commune {query.commune} ({scheme})")
        elif query.province:
            outside = None if reach.province(scheme, query.province) else (
                "province", f"Tỉnh {query.province} ({scheme})", f"Province {query.province} ({scheme})")
        else:
            outside = None if region_ok else ("province", f"Toàn vùng ({scheme})", f"The whole region ({scheme})")
            hint_vi = "; hãy chọn một tỉnh bằng province= (và scheme=)"
            hint_en = "; name one with province= (and scheme=)"
        if outside is None:
            return
        field, what_vi, what_en = outside
        reached = ", ".join([f"legacy:{c}" for c in sorted(reach.legacy)]
                            + [f"2025:{c}" for c in sorted(reach.current)])
        scope_vi = f"khoá {principal.name!r} chỉ đọc các tỉnh {reached or '(không có)'}{hint_vi}"
        scope_en = f"key {principal.name!r} reads only provinces {reached or '(none)'}{hint_en}"
        raise RequestRefused(403, "Outside the key's scope", Reason(
            "outside_scope", f"{what_vi}: {scope_vi}", f"{what_en}: {scope_en}", field))
