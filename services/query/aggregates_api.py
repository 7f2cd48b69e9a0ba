"""Aggregates and indicators (``schemas/AGGREGATES.md``) over HTTP: ``/v1/indicators``, ``/v1/visits``,
``/v1/growth``, ``/v1/mobile-sessions``, ``/v1/reading-promotion``, ``/v1/training``, ``/v1/donations``.

Each answer names its area (names VI/EN, code and scheme) and period; series come as JSON or CSV
with an ETag (``services/query/formats.py``).
"""

# No `from __future__ import annotations` here: FastAPI must resolve the annotations of route and
# dependency closures (`Depends(read)`, a local name) when the routes are built.
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.clock import today_local
from services.domain.forms.donation import DonorKind, DonorOrigin
from services.domain.forms.reading_promotion import Occasion
from services.domain.forms.visit_log import COUNT_FIELDS
from services.query import models
from services.query.access import Principal
from services.query.areas import Places, Resolved
from services.query.formats import FormatParam, documented, respond
from services.query.params import (
    AreaQuery,
    Period,
    YearParam,
    area_query,
    check_day,
    period_query,
    place_query,
    the_year,
)
from services.query.problems import Problem
from services.store.aggregates import Aggregates

INDICATORS = ("K1", "K2", "K3", "K4", "completeness", "timeliness")
INDICATOR_COLUMNS = ["indicator", "value", "numerator", "denominator", "target", "on_track"]
VISIT_COLUMNS = ["period", *COUNT_FIELDS, "reports"]
MOBILE_COLUMNS = ["period", "sessions", "visits_total", "visits_children", "visits_adults", "loans"]
READING_COLUMNS = ["period", "occasion", "events", "participants_total", "participants_children",
                   "participants_adults", "co_organised"]
TRAINING_COLUMNS = ["period", "records", "hours", "workers", "workers_passed"]
DONATION_COLUMNS = ["period", "donor_kind", "donor_origin", "donations", "books", "money_vnd"]
GROWTH_COLUMNS = ["year", "all.visits", "all.previous", "all.yoy", "like_for_like.visits", "like_for_like.previous",
                  "like_for_like.yoy", "like_for_like.libraries", "cagr.baseline_year", "cagr.value"]



def _filename(name: str, resolved: Resolved) -> str:
    q = resolved.query
    parts = [name, q.scheme, q.province or "", q.commune or "", q.library or "", q.library_type or ""]
    return "-".join(p for p in parts if p)


# The answers as bodies, built once: each route sends one, and /v1/dashboard gathers several.

def series_body(resolved: Resolved, period: Period, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"area": resolved.area, "library_type": resolved.query.library_type, "granularity": period.granularity,
            "start": period.start.isoformat(), "end": period.end.isoformat(), **extra, "series": rows}


def indicators_body(places: Places, aggregates: Aggregates, principal: Principal, area: AreaQuery,
                    year: int | None, as_of: date | None = None) -> tuple[Resolved, dict[str, Any]]:
    """``/v1/indicators``: the area checked against the key, and its indicators for the year."""
    year = the_year(year)
    check_day("as_of", as_of)
    day = as_of or min(date(year, 12, 31), today_local())
    if day.year != year:
        raise Problem(400, "as_of outside the year", f"as_of {day} is not in {year}", "as_of")
    resolved = places.resolve(principal, area)
    values = aggregates.indicators(resolved.filter, year, day)
    return resolved, {"area": resolved.area, "year": year, "as_of": day.isoformat(), "indicators": values}


def visits_body(places: Places, aggregates: Aggregates, principal: Principal, area: AreaQuery,
                period: Period) -> tuple[Resolved, dict[str, Any]]:
    """``/v1/visits``: the area checked against the key, and its visits over the period."""
    resolved = places.resolve(principal, area)
    rows = aggregates.visits(resolved.filter, period.start, period.end, period.granularity,
                             library_type=area.library_type)
    return resolved, series_body(resolved, period, rows)


def growth_body(places: Places, aggregates: Aggregates, principal: Principal, area: AreaQuery, year: int | None,
                baseline_year: int | None = None) -> tuple[Resolved, dict[str, Any]]:
    """``/v1/growth``: the area checked against the key, and its visit growth in the year."""
    year = the_year(year)
    if baseline_year is not None and baseline_year >= year:
        raise Problem(400, "Baseline not before the year", f"baseline_year {baseline_year} is not before {year}",
                      "baseline_year")
    resolved = places.resolve(principal, area)
    values = aggregates.growth(places.typed(resolved, min(date(year, 12, 31), today_local())), year, baseline_year)
    return resolved, {"area": resolved.area, "library_type": area.library_type, **values}


def aggregates_router(places: Places, aggregates: Aggregates, read: Callable[..., Principal]) -> APIRouter:
    router = APIRouter(tags=["Aggregates and indicators"])

    def series(request: Request, name: str, resolved: Resolved, period: Period, rows: list[dict[str, Any]],
               columns: list[str], fmt: str | None, **extra: Any) -> Response:
        body = series_body(resolved, period, rows, **extra)
        return respond(request, body, rows, columns, fmt, _filename(name, resolved))  # type: ignore[arg-type]

    @router.get("/indicators", summary="K1–K4, reporting completeness and timeliness for an area and a year",
                responses=documented(models.Indicators))
    def indicators(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(place_query)],
        year: YearParam = None,
        as_of: Annotated[date | None, Query(
            description="The date D the indicators are for (default: 31 December of `year`, or today in the "
                        "current year); within `year`.")] = None,
        format: FormatParam = None,
    ) -> Response:
        resolved, body = indicators_body(places, aggregates, principal, area, year, as_of)
        rows = [{"indicator": name, **body["indicators"][name]} for name in INDICATORS]
        return respond(request, body, rows, INDICATOR_COLUMNS, format,
                       _filename(f"indicators-{body['year']}", resolved))

    @router.get("/visits", summary="Visits, loans and registrations over time for an area",
                responses=documented(models.Visits))
    def visits(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        period: Annotated[Period, Depends(period_query)],
        format: FormatParam = None,
    ) -> Response:
        resolved, body = visits_body(places, aggregates, principal, area, period)
        return respond(request, body, body["series"], VISIT_COLUMNS, format, _filename("visits", resolved))

    @router.get("/growth", summary="Year-on-year visit growth (all libraries and like-for-like) and CAGR",
                responses=documented(models.Growth))
    def growth(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        year: YearParam = None,
        baseline_year: Annotated[int | None, Query(
            ge=2000, le=2100, description="Baseline of the average yearly growth, before `year` (default: the "
                                          "first year with visits).")] = None,
        format: FormatParam = None,
    ) -> Response:
        resolved, body = growth_body(places, aggregates, principal, area, year, baseline_year)
        values = {name: value for name, value in body.items() if name not in ("area", "library_type")}
        return respond(request, body, [values], GROWTH_COLUMNS, format, _filename(f"growth-{body['year']}", resolved))

    @router.get("/mobile-sessions", summary="Mobile-library sessions, visits and loans (serving library's area)",
                responses=documented(models.MobileSessions))
    def mobile_sessions(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        period: Annotated[Period, Depends(period_query)],
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, area)
        rows = aggregates.mobile_sessions(places.typed(resolved, period.end), period.start, period.end,
                                          period.granularity)
        return series(request, "mobile-sessions", resolved, period, rows, MOBILE_COLUMNS, format)

    @router.get("/reading-promotion", summary="Reading-promotion events and participants, by occasion",
                responses=documented(models.ReadingPromotion))
    def reading_promotion(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        period: Annotated[Period, Depends(period_query)],
        occasion: Annotated[Occasion | None, Query(description="Only this occasion.")] = None,
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, area)
        rows = aggregates.reading_promotion(places.typed(resolved, period.end), period.start, period.end,
                                            period.granularity)
        rows = [row for row in rows if occasion is None or row["occasion"] == occasion]
        return series(request, "reading-promotion", resolved, period, rows, READING_COLUMNS, format,
                      occasion=occasion)

    @router.get("/training", summary="Staff training: records, hours, workers trained and passed",
                responses=documented(models.Training))
    def training(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        period: Annotated[Period, Depends(period_query)],
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, area)
        rows = aggregates.training(places.typed(resolved, period.end), period.start, period.end, period.granularity)
        return series(request, "training", resolved, period, rows, TRAINING_COLUMNS, format)

    @router.get("/donations", summary="Donations: count, books and money, by donor kind and origin",
                responses=documented(models.Donations))
    def donations(
        request: Request,
        principal: Annotated[Principal, Depends(read)],
        area: Annotated[AreaQuery, Depends(area_query)],
        period: Annotated[Period, Depends(period_query)],
        donor_kind: Annotated[DonorKind | None, Query(description="Only this kind of donor.")] = None,
        donor_origin: Annotated[DonorOrigin | None, Query(description="Only domestic or foreign donors.")] = None,
        format: FormatParam = None,
    ) -> Response:
        resolved = places.resolve(principal, area)
        rows = aggregates.donations(places.typed(resolved, period.end), period.start, period.end, period.granularity)
        rows = [row for row in rows if (donor_kind is None or row["donor_kind"] == donor_kind)
                and (donor_origin is None or row["donor_origin"] == donor_origin)]
        return series(request, "donations", resolved, period, rows, DONATION_COLUMNS, format,
                      donor_kind=donor_kind, donor_origin=donor_origin)

    return router
