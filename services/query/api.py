"""The query API (``/v1``): aggregates, indicators, rotation, the registry and reference areas, for
programme managers, dashboards and tools. One router, ``router``, over what an app puts on its
state (``deps.QueryServices``); the routes live in

- ``aggregates_api.py``: indicators, visits, growth, mobile sessions, reading promotion, training, donations;
- ``rotation_api.py``: rotation batches, books on hand per library, rotation per province;
- ``areas_api.py``: reference areas and the library registry (``areas.py``: how area parameters are read);
- ``admin_api.py``: dead letters and intake rejections (scope ``admin``);
- ``approvals_api.py``: approval of periods by area, the held changes (scopes ``approve:…``);
- ``lineage_api.py``: the submission chains behind a figure (``/v1/lineage/…``);
- ``quality_api.py``: the data-quality flags the processors keep (``/v1/data-quality``);
- ``dashboard_api.py``: every figure of one view of the dashboard page, in one answer;
- ``reports_api.py``: the provincial report, an XLSX workbook (``report.py``, ``report_xlsx.py``);
- ``deps.py``: what routes depend on (the app's services, the key, the area asked, a period);
- ``access.py``: API keys and scopes, ``/v1/me``; ``formats.py``: JSON/CSV, ETags, pagination;
- ``params.py``: the shared parameters (area, period); ``models.py``: the answers' shapes, for OpenAPI.

Every route needs an API key; an unknown query parameter is refused (400), so a typo such as
``provnce=02`` never silently answers for the whole region.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant

from services.domain.errors import Reason
from services.problems import RequestRefused
from services.query import (
    admin_api,
    aggregates_api,
    approvals_api,
    areas_api,
    dashboard_api,
    lineage_api,
    models,
    quality_api,
    reports_api,
    rotation_api,
)
from services.query.access import describe
from services.query.deps import CurrentKey, ReferenceDep

_KNOWN = "_v1_query_names"  # kept on each route: its query parameters, computed once


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def reject_unknown_parameters(request: Request) -> None:
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = getattr(route, _KNOWN, None)
    if known is None:
        known = frozenset(_query_names(dependant))
        setattr(route, _KNOWN, known)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise RequestRefused(400, "Unknown parameter", Reason(
            "unknown_parameter", f"không có tham số truy vấn {unknown[0]!r}; đường dẫn này nhận: {takes}",
            f"unknown query parameter {unknown[0]!r}; this endpoint takes: {takes}", unknown[0]))


router = APIRouter(prefix="/v1", dependencies=[Depends(reject_unknown_parameters)])


@router.get("/me", tags=["Access"], summary="The API key's name, scopes and the provinces it reaches",
            response_model=models.Me)
def me(principal: CurrentKey, reference: ReferenceDep) -> dict[str, Any]:
    return describe(principal, reference)


for _routes in (aggregates_api, approvals_api, lineage_api, quality_api, rotation_api, areas_api, dashboard_api,
                reports_api, admin_api):
    router.include_router(_routes.router)
