"""Areas and libraries: what an area parameter means, who may ask for it, and how an area is
written in an answer (names in Vietnamese and English, codes tagged with their scheme).

Routes: ``GET /v1/areas`` (reference provinces and communes of a scheme) and ``GET /v1/libraries``
(the library registry at a date). Both are filtered to the key's reach; every other endpoint
refuses an area outside it (``services/query/access.py``).
"""

# No `from __future__ import annotations` here: FastAPI must resolve the annotations of route and
# dependency closures (`Depends(read)`, a local name) when the routes are built.
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from services.clock import today_local
from services.domain.events import AdminArea, Scheme
from services.domain.forms.library_registry import Status
from services.domain.reference import Reference
from services.domain.registry import LibraryAt
from services.query import models
from services.query.access import Principal, Reach
from services.query.formats import FormatParam, PageToken, documented, paginate, plain, respond, wants_csv
from services.query.params import AreaQuery, SchemeParam, area_query, as_of_query
from services.query.problems import Problem
from services.store.aggregates import Aggregates
from services.store.clickhouse import AreaFilter, string_list

REGION_NAMES = {"legacy": ("14 tỉnh của chương trình", "the 14 programme provinces"),
                "2025": ("10 tỉnh hiện nay", "the 10 current provinces")}
_SCHEMES: tuple[Scheme, Scheme] = ("legacy", "2025")
AREA_CODE_COLUMNS = [f"areas.{scheme}.{level}_{what}" for scheme in _SCHEMES for level in ("province", "commune")
                     for what in ("code", "name_vi", "name_en")]


def ascii_name(name: str) -> str:
    """Vietnamese without diacritics (``Thư viện xã Đồng Văn`` → ``Thu vien xa Dong Van``), the
    reference's English form of a place name; used for libraries registered without one."""
    decomposed = unicodedata.normalize("NFKD", name.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class TypedArea(AreaFilter):
    """An area restricted to some libraries (those of a type): every query built on ``where()`` and
    ``contains()`` (aggregates, growth, rotation) then counts only them."""

    library_ids: tuple[str, ...] | None = None

    def where(self) -> tuple[list[str], dict[str, Any]]:
        clauses, params = super().where()
        if self.library_ids is not None:
            ids, values = string_list("typed_library_ids", self.library_ids)
            clauses.append(f"library_id IN (SELECT arrayJoin({ids}))")
            params |= values
        return clauses, params

    @property
    def by_library(self) -> bool:
        return self.library_ids is not None or super().by_library

    def contains(self, areas: Any, library_id: str) -> bool:
        return super().contains(areas, library_id) and (self.library_ids is None or library_id in self.library_ids)


@dataclass(frozen=True)
class LibraryInfo:
    at: LibraryAt
    name_vi: str
    name_en: str
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class Resolved:
    """An area parameter checked: its filter for the store and how it is written in answers."""

    query: AreaQuery
    filter: AreaFilter
    area: dict[str, Any]


class Places:
    def __init__(self, reference: Reference, aggregates: Aggregates):
        self.reference = reference
        self.aggregates = aggregates

    # --- the registry with names ---------------------------------------------------------------

    def libraries(self, day: date) -> dict[str, LibraryInfo]:
        """The registry at the end of ``day`` (AGGREGATES.md), each library with its names and coordinates."""
        changes = self.aggregates.registry_changes()
        registry = self.aggregates.registry(day, changes)
        names: dict[str, tuple[str, str, float | None, float | None]] = {
            lib.library_id: (lib.name_vi, lib.name_en, lib.latitude, lib.longitude)
            for lib in self.reference.libraries.values()}
        for change in sorted((c for c in changes if c["occurred_on"] <= day),
                             key=lambda c: (c["occurred_on"], c["order"])):
            payload, library_id = change["payload"], change["library_id"]
            if payload["action"] not in ("register", "update") or library_id not in registry:
                continue
            name_vi, name_en, latitude, longitude = names.get(library_id, (library_id, library_id, None, None))
            if payload.get("name_vi"):
                name_vi, name_en = payload["name_vi"], ascii_name(payload["name_vi"])
            if payload.get("latitude") is not None and payload.get("longitude") is not None:
                latitude, longitude = payload["latitude"], payload["longitude"]
            names[library_id] = (name_vi, name_en, latitude, longitude)
        return {library_id: LibraryInfo(at, *names.get(library_id, (library_id, library_id, None, None)))
                for library_id, at in registry.items()}

    def libraries_of_type(self, library_type: str, day: date) -> tuple[str, ...]:
        return tuple(self.aggregates.libraries_of_type(library_type, day))

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
                if scheme in by_scheme else self.codes_of(scheme, None, None) for scheme in _SCHEMES}

    def codes_of(self, scheme: Scheme, province: str | None, commune: str | None) -> dict[str, Any]:
        p = self.unit(scheme, province) if province else {"name_vi": None, "name_en": None}
        c = self.unit(scheme, None, commune) if commune else {"name_vi": None, "name_en": None}
        return {"province_code": province or None, "province_name_vi": p["name_vi"], "province_name_en": p["name_en"],
                "commune_code": commune or None, "commune_name_vi": c["name_vi"], "commune_name_en": c["name_en"]}

    def row_codes(self, row: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Codes of a store row (``province_legacy``, ``commune_legacy``, ``province_2025``, ``commune_2025``)."""
        return {scheme: self.codes_of(scheme, row.get(f"province_{scheme}"), row.get(f"commune_{scheme}"))
                for scheme in _SCHEMES}

    def region(self, scheme: Scheme) -> dict[str, Any]:
        name_vi, name_en = REGION_NAMES[scheme]
        return {"scheme": scheme, "level": "region", "code": None, "name_vi": name_vi, "name_en": name_en}

    # --- reading an area parameter ---------------------------------------------------------------

    def resolve(self, principal: Principal, query: AreaQuery, *, region_ok: bool = False) -> Resolved:
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
                raise Problem(404, "Unknown province", f"No province {query.province} under scheme {scheme}",
                              "province")
        if query.commune:
            commune_unit = self.reference.commune(scheme, query.commune)
            if commune_unit is None:
                raise Problem(404, "Unknown commune", f"No commune {query.commune} under scheme {scheme}", "commune")
            if query.province and commune_unit.province_code != query.province:
                raise Problem(400, "Commune not in province",
                              f"Commune {query.commune} ({scheme}) lies in province {commune_unit.province_code}, "
                              f"not {query.province}", "commune")
        if query.library:
            library = self.libraries(today_local()).get(query.library)
            if library is None:
                raise Problem(404, "Unknown library", f"No library {query.library} in the registry", "library")
            here = library.at.area(scheme)
            for name, given, actual in (("province", query.province, here.province_code),
                                        ("commune", query.commune, here.commune_code)):
                if given and given != actual:
                    raise Problem(400, f"Library not in {name}",
                                  f"Library {query.library} lies in {name} {actual} ({scheme}), not {given}", "library")
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
        return Resolved(query, AreaFilter(scheme, query.province, query.commune, query.library), area)

    def _check_reach(self, reach: Reach, principal: Principal, query: AreaQuery, library: LibraryInfo | None,
                     region_ok: bool) -> None:
        if reach.everything:
            return
        scheme = query.scheme
        reached = ", ".join([f"legacy:{c}" for c in sorted(reach.legacy)]
                            + [f"2025:{c}" for c in sorted(reach.current)])
        scope = f"key {principal.name!r} reads only provinces {reached or '(none)'}"
        if library is not None:
            if not reach.library(library.at.areas):
                raise Problem(403, "Outside the key's scope", f"Library {query.library}: {scope}", "library")
        elif query.commune:
            if not reach.commune(self.reference, scheme, query.commune):
                raise Problem(403, "Outside the key's scope", f"Commune {query.commune} ({scheme}): {scope}",
                              "commune")
        elif query.province:
            if not reach.province(scheme, query.province):
                raise Problem(403, "Outside the key's scope", f"Province {query.province} ({scheme}): {scope}",
                              "province")
        elif not region_ok:
            raise Problem(403, "Outside the key's scope", f"The whole region ({scheme}): {scope}; name one with "
                          "province= (and scheme=)", "province")

    def typed(self, resolved: Resolved, day: date) -> AreaFilter:
        """The area's filter, restricted to the libraries of ``library_type`` (registry at ``day``) if asked."""
        f = resolved.filter
        if not resolved.query.library_type:
            return f
        return TypedArea(f.scheme, f.province_code, f.commune_code, f.library_id,
                         self.libraries_of_type(resolved.query.library_type, day))


# --- /v1/areas and /v1/libraries ---------------------------------------------------------------------

PROVINCE_COLUMNS = ["scheme", "level", "code", "name_vi", "name_en"]
COMMUNE_COLUMNS = [*PROVINCE_COLUMNS, "province_code", "province_name_vi", "province_name_en", "district_name_vi",
                   "in_programme"]
LIBRARY_COLUMNS = ["library_id", "name_vi", "name_en", "library_type", "status", "operating", "opened_on",
                   "model_joined_on", "in_model", "latitude", "longitude", *AREA_CODE_COLUMNS]


def areas_router(places: Places, read: Callable[..., Principal]) -> APIRouter:
    router = APIRouter(tags=["Areas and libraries"])
    reference = places.reference

    @router.get("/areas", summary="Reference provinces or communes of a scheme (names VI/EN), paginated",
                responses=documented(models.Areas))
    def areas(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        scheme: SchemeParam = "legacy",
        level: Annotated[Literal["province", "commune"], Query(description="`province` or `commune`.")] = "province",
        province: Annotated[str | None, Query(pattern=r"^\d{2}$", description="Only this province's communes.")]
        = None,
        in_programme: Annotated[bool | None, Query(
            description="2025 communes with (or without) programme territory.")] = None,
        page_size: Annotated[int, Query(ge=1, le=1000, description="Rows per page (1–1000).")] = 1000,
        page_token: PageToken = None,
        format: FormatParam = None,
    ) -> Response:
        if province:
            places.resolve(principal, AreaQuery(scheme, province))  # exists, and within reach
        reach = principal.reach()
        rows: list[dict[str, Any]]
        if level == "province":
            rows = [{"scheme": scheme, "level": "province", "code": p.code, "name_vi": p.name_vi,
                     "name_en": p.name_en}
                    for p in reference.provinces_in(scheme)
                    if reach.province(scheme, p.code) and (not province or p.code == province)]
            columns = PROVINCE_COLUMNS
        else:
            rows = []
            for c in reference.communes_in(scheme, province):
                member = scheme == "legacy" or reference.in_programme(c.code)
                if (in_programme is not None and member != in_programme) or not reach.commune(reference, scheme,
                                                                                             c.code):
                    continue
                p = reference.province(scheme, c.province_code)
                rows.append({"scheme": scheme, "level": "commune", "code": c.code, "name_vi": c.name_vi,
                             "name_en": c.name_en, "province_code": c.province_code,
                             "province_name_vi": p.name_vi if p else None, "province_name_en": p.name_en if p else None,
                             "district_name_vi": c.district_name_vi or None, "in_programme": member})
            columns = COMMUNE_COLUMNS
        csv = wants_csv(request, format)
        page, token, links = paginate(request, rows, "code", None if csv else page_size, page_token)
        body = {"scheme": scheme, "level": level, "items": page, "next_page_token": token}
        return respond(request, body, page, columns, format, f"areas-{scheme}-{level}", headers=links)

    @router.get("/libraries", summary="The library registry at a date: names VI/EN, type, codes under both schemes",
                responses=documented(models.Libraries))
    def libraries(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        as_of: Annotated[date, Depends(as_of_query)],
        status: Annotated[Status | None, Query(description="Only libraries with this status at `as_of`.")] = None,
        in_model: Annotated[bool | None, Query(description="Only libraries in (or not in) the model at `as_of`.")]
        = None,
        page_size: Annotated[int, Query(ge=1, le=1000, description="Rows per page (1–1000).")] = 1000,
        page_token: PageToken = None,
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, area, region_ok=True)
        reach = principal.reach()
        rows = []
        for info in places.libraries(as_of).values():
            lib = info.at
            if not (resolved.filter.contains(lib.areas, lib.library_id) and reach.library(lib.areas)):
                continue
            if (area.library_type and lib.library_type != area.library_type) or (status and lib.status != status):
                continue
            if in_model is not None and lib.in_model_on(as_of) != in_model:
                continue
            rows.append(plain({
                "library_id": lib.library_id, "name_vi": info.name_vi, "name_en": info.name_en,
                "library_type": lib.library_type, "status": lib.status, "operating": lib.operating_on(as_of),
                "opened_on": lib.opened_on, "model_joined_on": lib.model_joined_on, "in_model": lib.in_model_on(as_of),
                "latitude": info.latitude, "longitude": info.longitude, "areas": places.codes(lib.areas)}))
        csv = wants_csv(request, format)
        page, token, links = paginate(request, rows, "library_id", None if csv else page_size, page_token)
        body = {"area": resolved.area, "as_of": as_of.isoformat(), "items": page, "next_page_token": token}
        return respond(request, body, page, LIBRARY_COLUMNS, format, "libraries", headers=links)

    return router
