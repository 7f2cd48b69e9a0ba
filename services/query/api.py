"""The query API (``/v1``): aggregates, indicators, rotation, the registry and reference areas, for
programme managers, dashboards and tools. One entry point, ``query_router``; the routes live in

- ``aggregates_api.py``: indicators, visits, growth, mobile sessions, reading promotion, training, donations;
- ``rotation_api.py``: rotation batches, books on hand per library, rotation per province;
- ``areas.py``: reference areas and the library registry (and how area parameters are read);
- ``admin_api.py``: dead letters and intake rejections (scope ``admin``);
- ``dashboard_api.py``: every figure of one view of the dashboard page, in one answer;
- ``access.py``: API keys and scopes, ``/v1/me``; ``formats.py``: JSON/CSV, ETags, pagination;
- ``params.py``: the shared parameters (area, period); ``models.py``: the answers' shapes, for OpenAPI.

Every route needs an API key; an unknown query parameter is refused (400), so a typo such as
``provnce=02`` never silently answers for the whole region.
"""

# No `from __future__ import annotations` here: FastAPI must resolve the annotations of route and
# dependency closures (`Depends(read)`, a local name) when the routes are built.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant

from services.domain.reference import Reference
from services.login_throttle import LoginThrottle
from services.query import models
from services.query.access import ApiKeys, Principal, administrator, authenticator, describe, reader
from services.query.admin_api import admin_router
from services.query.aggregates_api import aggregates_router
from services.query.areas import Places, areas_router
from services.query.dashboard_api import dashboard_api_router
from services.query.problems import Problem
from services.query.rotation_api import rotation_router
from services.store.aggregates import Aggregates
from services.store.clickhouse import Store

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
        raise Problem(400, "Unknown parameter", f"unknown query parameter {unknown[0]!r}; this endpoint takes: "
                      f"{', '.join(sorted(known)) or 'none'}", unknown[0])


def query_router(store: Store, reference: Reference, keys: ApiKeys, throttle: LoginThrottle, *,
                 rotation_loan_days: int = 90) -> APIRouter:
    """Every ``/v1`` route over ``store`` and ``reference``, guarded by ``keys`` (wrong keys braked by ``throttle``)."""
    aggregates = Aggregates(store, reference)
    places = Places(reference, aggregates)
    authenticated = authenticator(keys, throttle)
    read, admin = reader(authenticated), administrator(authenticated)

    router = APIRouter(prefix="/v1", dependencies=[Depends(reject_unknown_parameters)])

    @router.get("/me", tags=["Access"], summary="The API key's name, scopes and the provinces it reaches",
                response_model=models.Me)
    def me(principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, Any]:
        return describe(principal, reference)

    router.include_router(aggregates_router(places, aggregates, read))
    router.include_router(rotation_router(places, store, rotation_loan_days, read))
    router.include_router(areas_router(places, read))
    router.include_router(dashboard_api_router(places, aggregates, store, rotation_loan_days, read))
    router.include_router(admin_router(store, admin))
    return router
