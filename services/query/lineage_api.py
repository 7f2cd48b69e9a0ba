"""Every figure traced to its submissions: ``/v1/lineage/visits``, ``/v1/lineage/growth`` and
``/v1/lineage/k1`` take exactly the parameters of the figure's own route (``/v1/visits``,
``/v1/growth``, ``/v1/indicators``: the same dependencies) and list what makes it, read by the
figure's own rules (``services/store/lineage.py``): the submission chains of a visits figure or a
growth rate's two years, the communes K1 counts. Each answer carries the figure as its route serves
it, beside the list; keyset pages by ``root_id`` (K1: commune code), or every row as CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from services.domain.forms.visit_log import COUNT_FIELDS
from services.query import models
from services.query.aggregates_api import growth_area, growth_body, indicator_day, indicators_body, visits_body
from services.query.approvals_api import figure_approvals
from services.query.deps import AggregatesDep, ApprovalsDep, AreaAsked, AreaRequest, PlaceRequest, Series
from services.query.formats import PageSize, PageToken, decode_token, documented, encode_token, wants_csv
from services.query.params import YearParam, the_year
from services.store.lineage import Lineage, Page

router = APIRouter(prefix="/lineage", tags=["Lineage"])

CHAIN_COLUMNS = ["root_id", "instance_id", "period", "library_id", "occurred_on", "submitter", "source",
                 "first_accepted_at", "last_accepted_at", "versions", "edits", "retractions",
                 *(f"contribution.{name}" for name in (*COUNT_FIELDS, "reports"))]
COMMUNE_COLUMNS = ["commune_code", "contribution", "libraries"]


def _lineage(aggregates: AggregatesDep) -> Lineage:
    return Lineage(aggregates)


LineageDep = Annotated[Lineage, Depends(_lineage)]


def _answer(asked: AreaAsked, body: dict[str, Any], read: Callable[[str | None, int | None], Page], key: str,
            columns: list[str], filename: str, page_size: int, page_token: str | None) -> Response:
    """One page of what ``read(after, limit)`` lists (every row as CSV), after ``body``; ``next_page_token``
    and a ``Link: rel="next"`` when more follow."""
    after = decode_token(asked.request, page_token) if page_token else None
    page = read(after, None if wants_csv(asked.request, asked.format) else page_size)
    token = encode_token(asked.request, str(page.items[-1][key])) if page.more else None
    headers = {}
    if token:
        headers["Link"] = f'<{asked.request.url.include_query_params(page_token=token)}>; rel="next"'
    return asked.respond({**body, "items": page.items, "next_page_token": token}, page.items, columns,
                         filename, **headers)


@router.get("/visits", summary="The submission chains making a visits figure (the parameters of /v1/visits)",
            responses=documented(models.VisitsLineage))
def visits_lineage(q: Series, aggregates: AggregatesDep, lineage: LineageDep, approvals: ApprovalsDep,
                   page_size: PageSize = 1000, page_token: PageToken = None) -> Response:
    """Each counted visit log of the area and period (a chart's point: its period as `start` and `end`),
    its current version's counts as its `contribution` (in an approved month: its approved version's,
    a held change left out): they sum to the figure of its `period` in `series`, as `/v1/visits`
    serves it."""
    p = q.period
    # The figure as /v1/visits serves it (approved months from their approvals), and what makes it.
    found = figure_approvals(approvals, aggregates.reference, q.filter, p.start, p.end)
    body = visits_body(aggregates, approvals, q.area, p, q.filter, found)
    body["chains"] = sum(row["reports"] for row in body["series"])
    return _answer(q, body, lambda after, limit: lineage.visits(q.filter, p.start, p.end, p.granularity,
                                                                after=after, limit=limit, approved=found.approved),
                   "root_id", CHAIN_COLUMNS, q.filename("lineage-visits"), page_size, page_token)


@router.get("/growth", summary="The submission chains of a growth rate's two years (the parameters of /v1/growth)",
            responses=documented(models.GrowthLineage))
def growth_lineage(asked: AreaRequest, aggregates: AggregatesDep, lineage: LineageDep, approvals: ApprovalsDep,
                   year: YearParam = None, page_size: PageSize = 1000, page_token: PageToken = None) -> Response:
    """The visit logs of `year` (their `period`) make `all.visits`, those of the year before `all.previous`
    (in approved months: their approved versions, as `/v1/growth` counts them)."""
    year = the_year(year)
    where = growth_area(aggregates, asked.area, year)
    figure = growth_body(aggregates, approvals, asked.area, year, where=where)
    start, end = date(year - 1, 1, 1), date(year, 12, 31)
    approved = figure_approvals(approvals, aggregates.reference, where, start, end).approved
    body = {"area": asked.area.area, "library_type": asked.area.query.library_type, "year": year,
            "all": figure["all"], "status": figure["status"],
            "chains": sum(row["reports"] for row in aggregates.visits(where, start, end, "year", approved=approved))}
    return _answer(asked, body, lambda after, limit: lineage.growth(where, year, after=after, limit=limit,
                                                                    approved=approved),
                   "root_id", CHAIN_COLUMNS, asked.filename(f"lineage-growth-{year}"), page_size, page_token)


@router.get("/k1", summary="The communes K1 counts, and what covers each (the parameters of /v1/indicators)",
            responses=documented(models.K1Lineage))
def k1_lineage(
    asked: PlaceRequest,
    aggregates: AggregatesDep,
    approvals: ApprovalsDep,
    lineage: LineageDep,
    year: YearParam = None,
    as_of: Annotated[date | None, Query(
        description="The date D K1 is for (default: 31 December of `year`, or today in the current year).")] = None,
    page_size: PageSize = 1000,
    page_token: PageToken = None,
) -> Response:
    """Each commune of K1's numerator counts 1; with the libraries of the model operating there on the day
    and the registry form's chains that made them so."""
    year, day = indicator_day(year, as_of)
    indicator = indicators_body(aggregates, approvals, asked.area, year, day)["indicators"]["K1"]
    body = {"area": asked.area.area, "year": year, "as_of": day.isoformat(), "indicator": indicator}
    return _answer(asked, body, lambda after, limit: lineage.k1(asked.area.filter, day, after=after, limit=limit),
                   "commune_code", COMMUNE_COLUMNS, asked.filename(f"lineage-k1-{year}"), page_size, page_token)
