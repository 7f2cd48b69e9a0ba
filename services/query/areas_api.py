"""``GET /v1/areas`` (reference provinces and communes of a scheme) and ``GET /v1/libraries`` (the
library registry at a date), both filtered to what the key reaches (``areas.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from services.domain.forms.library_registry import Status
from services.query import models
from services.query.areas import AREA_CODE_COLUMNS
from services.query.deps import AreasDep, Reader, ReferenceDep, RegistryRequest
from services.query.formats import FormatParam, PageSize, PageToken, documented, plain, respond_page
from services.query.params import PROVINCE_CODE, AreaQuery, AsOf, SchemeParam

PROVINCE_COLUMNS = ["scheme", "level", "code", "name_vi", "name_en"]
COMMUNE_COLUMNS = [*PROVINCE_COLUMNS, "province_code", "province_name_vi", "province_name_en", "district_name_vi",
                   "in_programme"]
LIBRARY_COLUMNS = ["library_id", "name_vi", "name_en", "library_type", "status", "operating", "opened_on",
                   "model_joined_on", "in_model", "latitude", "longitude", *AREA_CODE_COLUMNS]

router = APIRouter(tags=["Areas and libraries"])


@router.get("/areas", summary="Reference provinces or communes of a scheme (names VI/EN), paginated",
            responses=documented(models.Areas))
def areas(
    request: Request,
    principal: Reader,
    resolver: AreasDep,
    reference: ReferenceDep,
    scheme: SchemeParam = "legacy",
    level: Annotated[Literal["province", "commune"], Query(description="`province` or `commune`.")] = "province",
    province: Annotated[str | None, Query(pattern=PROVINCE_CODE, description="Only this province's communes.")] = None,
    in_programme: Annotated[bool | None, Query(
        description="2025 communes with (or without) programme territory.")] = None,
    page_size: PageSize = 1000,
    page_token: PageToken = None,
    format: FormatParam = None,
) -> Response:
    if province:
        resolver.resolve(principal, AreaQuery(scheme, province))  # exists, and within reach
    reach = principal.reach()
    rows: list[dict[str, Any]]
    if level == "province":
        rows = [{"scheme": scheme, "level": "province", "code": p.code, "name_vi": p.name_vi, "name_en": p.name_en}
                for p in reference.provinces_in(scheme)
                if reach.province(scheme, p.code) and (not province or p.code == province)]
        columns = PROVINCE_COLUMNS
    else:
        rows = []
        for c in reference.communes_in(scheme, province):
            member = scheme == "legacy" or reference.in_programme(c.code)
            if (in_programme is not None and member != in_programme) or not reach.commune(reference, scheme, c.code):
                continue
            p = reference.province(scheme, c.province_code)
            rows.append({"scheme": scheme, "level": "commune", "code": c.code, "name_vi": c.name_vi,
                         "name_en": c.name_en, "province_code": c.province_code,
                         "province_name_vi": p.name_vi if p else None, "province_name_en": p.name_en if p else None,
                         "district_name_vi": c.district_name_vi or None, "in_programme": member})
        columns = COMMUNE_COLUMNS
    return respond_page(request, {"scheme": scheme, "level": level}, rows, "code", columns, format,
                        f"areas-{scheme}-{level}", page_size, page_token)


@router.get("/libraries", summary="The library registry at a date: names VI/EN, type, codes under both schemes",
            responses=documented(models.Libraries))
def libraries(
    asked: RegistryRequest,
    as_of: AsOf,
    resolver: AreasDep,
    status: Annotated[Status | None, Query(description="Only libraries with this status at `as_of`.")] = None,
    in_model: Annotated[bool | None, Query(description="Only libraries in (or not in) the model at `as_of`.")] = None,
    page_size: PageSize = 1000,
    page_token: PageToken = None,
) -> Response:
    reach, where, library_type = asked.principal.reach(), asked.area.filter, asked.area.query.library_type
    rows = []
    for info in resolver.libraries(as_of).values():
        lib = info.at
        if not (where.contains(lib.areas, lib.library_id) and reach.library(lib.areas)):
            continue
        if (library_type and lib.library_type != library_type) or (status and lib.status != status):
            continue
        if in_model is not None and lib.in_model_on(as_of) != in_model:
            continue
        rows.append(plain({
            "library_id": lib.library_id, "name_vi": info.name_vi, "name_en": info.name_en,
            "library_type": lib.library_type, "status": lib.status, "operating": lib.operating_on(as_of),
            "opened_on": lib.opened_on, "model_joined_on": lib.model_joined_on, "in_model": lib.in_model_on(as_of),
            "latitude": info.latitude, "longitude": info.longitude, "areas": resolver.codes(lib.areas)}))
    body = {"area": asked.area.area, "as_of": as_of.isoformat()}
    return asked.respond_page(body, rows, "library_id", LIBRARY_COLUMNS, "libraries", page_size, page_token)
