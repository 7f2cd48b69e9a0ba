"""``GET /v1/dashboard``: every figure of one view of the dashboard page (a scheme, its region or
one province, a year) in one answer, so that the page (``static/dashboard.js``) draws its charts
from one request, and a reload or a filter switched back revalidates it (ETag, 304: ``formats.py``).

Each part is what its own endpoint answers, built by the same functions under the same key checks
(``AreaResolver.resolve``, ``Reach``): the area's indicators, visits by month over the year and the one
before, and growth; the indicators of each province of the scheme the key reaches; rotation per
province today, with batches in transit and on hand (what ``/v1/rotation/batches`` lists); per
province, the communes and those with a library in the model today (what ``/v1/areas`` and
``/v1/libraries`` list). The long lists themselves stay separate, paginated requests.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from services.clock import today_local
from services.domain.events import Scheme
from services.domain.periods import Period
from services.query import models
from services.query.access import Principal
from services.query.aggregates_api import growth_body, indicators_body, visits_body
from services.query.areas import AreaResolver
from services.query.deps import AggregatesDep, ApprovalsDep, AreasDep, LoanDays, Reader, StoreDep
from services.query.formats import documented, respond
from services.query.params import AreaQuery, YearParam, province_query, the_year
from services.query.rotation_api import province_rows
from services.store import rotation as rotation_store
from services.store.clickhouse import AreaFilter, Store, area_column

_DESCRIPTION = """Bảng theo dõi: mọi số liệu của một màn hình trong một yêu cầu.
Every figure the dashboard page draws for what the reader is looking at, in one answer:

- `indicators`, `visits` (by month, 1 January of the year before to 31 December of `year`) and
  `growth`: what `/v1/indicators`, `/v1/visits` and `/v1/growth` answer for the area;
- `provinces`: `/v1/indicators` of each province of the scheme the key reaches;
- `rotation`: `/v1/rotation/provinces` today for those provinces, with batches in transit and on hand;
- `communes`: per province, the communes the key reaches and those with a library in the model today.

A province-scoped key names one of its provinces (the whole region is refused, 403, as elsewhere).
The answer has a strong ETag: send it back in `If-None-Match` to get 304 while nothing changed."""


def rotation_figures(areas: AreaResolver, store: Store, scheme: Scheme, provinces: set[str], day: date,
                     loan_days: int) -> dict[str, Any]:
    """Rotation per province of ``provinces`` at ``day``, with batches in transit and on hand."""
    moving: Counter[str] = Counter()
    held: Counter[str] = Counter()
    column = area_column("province", scheme)
    for batch in rotation_store.batches(store, AreaFilter(scheme), day):
        moving[batch[column]] += batch["status"] == "dispatched"
        held[batch[column]] += batch["status"] == "received"
    items = [row | {"batches_in_transit": moving[row["province_code"]], "batches_on_hand": held[row["province_code"]]}
             for row in province_rows(areas, store, scheme, day, loan_days) if row["province_code"] in provinces]
    return {"as_of": day.isoformat(), "loan_days": loan_days, "items": items}


def commune_coverage(areas: AreaResolver, principal: Principal, scheme: Scheme, day: date) -> dict[str, Any]:
    """Per province: the communes of ``scheme`` the key reaches, and those where a library of the
    registry at ``day`` (one the key reaches) is in the model."""
    reach, reference, region = principal.reach(), areas.reference, AreaFilter(scheme)
    covered = {info.at.area(scheme).commune_code for info in areas.libraries(day).values()
               if region.contains(info.at.areas, info.at.library_id) and reach.library(info.at.areas)
               and info.at.in_model_on(day)}
    communes: Counter[str] = Counter()
    with_model: Counter[str] = Counter()
    for commune in reference.communes_in(scheme, None):
        if reach.commune(reference, scheme, commune.code):
            communes[commune.province_code] += 1
            with_model[commune.province_code] += commune.code in covered
    items = [{"province_code": code, "communes": communes[code], "with_model": with_model[code]}
             for code in sorted(communes)]
    return {"as_of": day.isoformat(), "items": items}


router = APIRouter(tags=["Dashboard"])


@router.get("/dashboard", summary="Every figure of one dashboard view (area, year) in one answer",
            description=_DESCRIPTION, responses=documented(models.Dashboard, csv=False))
def dashboard(
    request: Request,
    principal: Reader,
    area: Annotated[AreaQuery, Depends(province_query)],
    areas: AreasDep,
    aggregates: AggregatesDep,
    approvals: ApprovalsDep,
    store: StoreDep,
    loan_days: LoanDays,
    year: YearParam = None,
) -> Response:
    year = the_year(year)
    resolved = areas.resolve(principal, area)  # unknown or out of reach: refused before any work
    scheme, reach, today = area.scheme, principal.reach(), today_local()
    reached = [p.code for p in areas.reference.provinces_in(scheme) if reach.province(scheme, p.code)]
    with aggregates.one_reading():  # what no province changes, read once for them all
        provinces = [indicators_body(aggregates, approvals, areas.resolve(principal, AreaQuery(scheme, code)), year)
                     for code in reached]
        own = [body for body in provinces if area.province and body["area"]["code"] == area.province]
        indicators = own[0] if own else indicators_body(aggregates, approvals, resolved, year)
        period = Period(date(year - 1, 1, 1), date(year, 12, 31), "month")
        body = {
            "area": resolved.area, "year": year, "indicators": indicators,
            "visits": visits_body(aggregates, approvals, resolved, period, resolved.filter),
            "growth": growth_body(aggregates, approvals, resolved, year),
            "provinces": provinces,
            "rotation": rotation_figures(areas, store, scheme, set(reached), today, loan_days),
            "communes": commune_coverage(areas, principal, scheme, today),
        }
    return respond(request, body, [], [], "json", "dashboard")
