"""Aggregates and indicators (``schemas/AGGREGATES.md``) over HTTP: ``/v1/indicators``, ``/v1/visits``,
``/v1/growth``, ``/v1/mobile-sessions``, ``/v1/reading-promotion``, ``/v1/training``, ``/v1/donations``.

Each answer names its area (names VI/EN, code and scheme) and period; series come as JSON or CSV
with an ETag (``services/query/formats.py``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from services.clock import today_local
from services.domain.approvals import PROVISIONAL, mark_series
from services.domain.errors import Reason
from services.domain.forms import donation as donation_form
from services.domain.forms import mobile_session as mobile_form
from services.domain.forms import reading_promotion as reading_form
from services.domain.forms import staff_training as training_form
from services.domain.forms.donation import DonorKind, DonorOrigin
from services.domain.forms.reading_promotion import Occasion
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.periods import ALL_TIME, Period
from services.problems import RequestRefused
from services.query import models
from services.query.approvals_api import (
    FigureApprovals,
    figure_approvals,
)
from services.query.areas import ResolvedArea
from services.query.deps import AggregatesDep, ApprovalsDep, AreaRequest, PlaceRequest, Series, series_body
from services.query.formats import documented
from services.query.params import YearParam, check_day, the_year
from services.store.aggregates import Aggregates
from services.store.approvals import ApprovalReader
from services.store.clickhouse import AreaFilter

INDICATORS = ("K1", "K2", "K3", "K4", "completeness", "timeliness")
INDICATOR_COLUMNS = ["indicator", "value", "numerator", "denominator", "target", "on_track", "status"]
VISIT_COLUMNS = ["period", *COUNT_FIELDS, "reports", "status"]
MOBILE_COLUMNS = ["period", "sessions", "visits_total", "visits_children", "visits_adults", "loans", "status"]
READING_COLUMNS = ["period", "occasion", "events", "participants_total", "participants_children",
                   "participants_adults", "co_organised", "status"]
TRAINING_COLUMNS = ["period", "records", "hours", "workers", "workers_passed", "status"]
DONATION_COLUMNS = ["period", "donor_kind", "donor_origin", "donations", "books", "money_vnd", "status"]
GROWTH_COLUMNS = ["year", "all.visits", "all.previous", "all.yoy", "like_for_like.visits", "like_for_like.previous",
                  "like_for_like.yoy", "like_for_like.libraries", "cagr.baseline_year", "cagr.value", "cagr.status",
                  "status"]

router = APIRouter(tags=["Aggregates and indicators"])


# The answers as bodies, built once: each route sends one, and /v1/dashboard gathers several.

def indicators_body(aggregates: Aggregates, approvals: ApprovalReader, area: ResolvedArea, year: int | None,
                    as_of: date | None = None) -> dict[str, Any]:
    """``/v1/indicators``: the area's indicators for the year, each ``approved`` or ``provisional``
    (``indicator_status``)."""
    year, day = indicator_day(year, as_of)
    found = growth_approvals(aggregates, approvals, area.filter)
    values = aggregates.indicators(area.filter, year, day, approved_visits=found.approved)
    status = indicator_status(found, year)
    return {"area": area.area, "year": year, "as_of": day.isoformat(),
            "indicators": {name: {**value, "status": status[name]} for name, value in values.items()}}


def indicator_status(growth: FigureApprovals, year: int) -> dict[str, str]:
    """Which indicators are served as approved: K4 (visit growth, from the visit logs of the year and the
    year before) when all its months are approved for the area. K1–K3 count the registry's libraries
    and workers and the coordination and training reports, and completeness and timeliness the
    reports' arrival, none of which a period's approval holds: they stay provisional
    (``schemas/AGGREGATES.md``, "Approval")."""
    return {**dict.fromkeys(INDICATORS, PROVISIONAL), "K4": growth.status(*growth_dates(year))}


def growth_dates(year: int, first_year: int | None = None) -> tuple[date, date]:
    """The dates a growth figure of ``year`` draws on: from the start of ``first_year`` (default: the
    year before) to the year's end, or today while it runs."""
    return date(year - 1 if first_year is None else first_year, 1, 1), min(date(year, 12, 31), today_local())


def growth_approvals(aggregates: Aggregates, approvals: ApprovalReader, where: AreaFilter) -> FigureApprovals:
    """The approvals of the area's visit figures over every year (growth reads them all, for CAGR)."""
    return figure_approvals(approvals, aggregates.reference, where, *ALL_TIME)


def indicator_day(year: int | None, as_of: date | None) -> tuple[int, date]:
    """The year and the date D the indicators are for (``/v1/indicators``' ``year`` and ``as_of``)."""
    year = the_year(year)
    check_day("as_of", as_of)
    day = as_of or min(date(year, 12, 31), today_local())
    if day.year != year:
        raise RequestRefused(400, "as_of outside the year", Reason(
            "as_of_outside_year", f"as_of {day} không thuộc năm {year}", f"as_of {day} is not in {year}", "as_of"))
    return year, day


def growth_area(aggregates: Aggregates, area: ResolvedArea, year: int) -> AreaFilter:
    """The area of ``/v1/growth`` in ``year``: narrowed to the library type asked (the registry at the
    year's end, or today)."""
    return aggregates.of_type(area.filter, area.query.library_type, min(date(year, 12, 31), today_local()))


def visits_body(aggregates: Aggregates, approvals: ApprovalReader, area: ResolvedArea, period: Period,
                where: AreaFilter, found: FigureApprovals | None = None) -> dict[str, Any]:
    """``/v1/visits``: the area's visits over the period (``where``: the area, of the library type asked),
    each point ``approved`` (and served as approved) or ``provisional``, with the approvals that make
    the approved points (``found``: the figure's approvals, when the caller has read them already)."""
    if found is None:
        found = figure_approvals(approvals, aggregates.reference, where, period.start, period.end)
    rows = aggregates.visits(where, period.start, period.end, period.granularity, approved=found.approved)
    return series_body(area, period, mark_series(rows, period.granularity, period.start, period.end, found.covered),
                       approvals=found.briefs())


def growth_body(aggregates: Aggregates, approvals: ApprovalReader, area: ResolvedArea, year: int | None,
                baseline_year: int | None = None, where: AreaFilter | None = None) -> dict[str, Any]:
    """``/v1/growth``: the area's visit growth in the year, approved months counted as approved;
    ``approved`` when every month of the two years is (CAGR: of the baseline year to the year).
    ``where``: ``growth_area``'s, when the caller has it already."""
    year = the_year(year)
    if baseline_year is not None and baseline_year >= year:
        raise RequestRefused(400, "Baseline not before the year", Reason(
            "baseline_not_before_year", f"baseline_year {baseline_year} không trước năm {year}",
            f"baseline_year {baseline_year} is not before {year}", "baseline_year"))
    where = where or growth_area(aggregates, area, year)
    found = growth_approvals(aggregates, approvals, where)
    figure = aggregates.growth(where, year, baseline_year, found.approved)
    baseline = figure["cagr"]["baseline_year"]
    figure["cagr"]["status"] = found.status(*growth_dates(year, baseline)) if baseline is not None else PROVISIONAL
    return {"area": area.area, "library_type": area.query.library_type, **figure,
            "status": found.status(*growth_dates(year)), "approvals": found.briefs()}


@router.get("/indicators", summary="K1–K4, reporting completeness and timeliness for an area and a year",
            responses=documented(models.Indicators))
def indicators(
    asked: PlaceRequest,
    aggregates: AggregatesDep,
    approvals: ApprovalsDep,
    year: YearParam = None,
    as_of: Annotated[date | None, Query(
        description="The date D the indicators are for (default: 31 December of `year`, or today in the "
                    "current year); within `year`.")] = None,
) -> Response:
    body = indicators_body(aggregates, approvals, asked.area, year, as_of)
    rows = [{"indicator": name, **body["indicators"][name]} for name in INDICATORS]
    return asked.respond(body, rows, INDICATOR_COLUMNS, asked.filename(f"indicators-{body['year']}"))


@router.get("/visits", summary="Visits, loans and registrations over time for an area",
            responses=documented(models.Visits))
def visits(q: Series, aggregates: AggregatesDep, approvals: ApprovalsDep) -> Response:
    body = visits_body(aggregates, approvals, q.area, q.period, q.filter)
    return q.respond(body, body["series"], VISIT_COLUMNS, q.filename("visits"))


@router.get("/growth", summary="Year-on-year visit growth (all libraries and like-for-like) and CAGR",
            responses=documented(models.Growth))
def growth(
    asked: AreaRequest,
    aggregates: AggregatesDep,
    approvals: ApprovalsDep,
    year: YearParam = None,
    baseline_year: Annotated[int | None, Query(
        ge=2000, le=2100, description="Baseline of the average yearly growth, before `year` (default: the "
                                      "first year with visits).")] = None,
) -> Response:
    body = growth_body(aggregates, approvals, asked.area, year, baseline_year)
    values = {name: value for name, value in body.items() if name not in ("area", "library_type", "approvals")}
    return asked.respond(body, [values], GROWTH_COLUMNS, asked.filename(f"growth-{body['year']}"))


def activity_series(aggregates: Aggregates, approvals: ApprovalReader, area: AreaFilter, period: Period,
                    event_type: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An activity form's series (``ACTIVITY_READS``) of ``area`` over ``period``, each row ``approved`` or
    ``provisional`` (approved months read from their approvals, as ``/v1/visits``), and the approvals
    that make its approved rows."""
    found = figure_approvals(approvals, aggregates.reference, area, period.start, period.end, event_type)
    rows = ACTIVITY_READS[event_type](aggregates, area, period.start, period.end, period.granularity,
                                      approved=found.approved)
    return mark_series(rows, period.granularity, period.start, period.end, found.covered), found.briefs()


ACTIVITY_READS = {mobile_form.EVENT_TYPE: Aggregates.mobile_sessions,
                  reading_form.EVENT_TYPE: Aggregates.reading_promotion,
                  training_form.EVENT_TYPE: Aggregates.training, donation_form.EVENT_TYPE: Aggregates.donations}


@router.get("/mobile-sessions", summary="Mobile-library sessions, visits and loans (serving library's area)",
            responses=documented(models.MobileSessions))
def mobile_sessions(q: Series, aggregates: AggregatesDep, approvals: ApprovalsDep) -> Response:
    rows, used = activity_series(aggregates, approvals, q.filter, q.period, mobile_form.EVENT_TYPE)
    return q.series("mobile-sessions", rows, MOBILE_COLUMNS, approvals=used)


@router.get("/reading-promotion", summary="Reading-promotion events and participants, by occasion",
            responses=documented(models.ReadingPromotion))
def reading_promotion(
    q: Series,
    aggregates: AggregatesDep,
    approvals: ApprovalsDep,
    occasion: Annotated[Occasion | None, Query(description="Only this occasion.")] = None,
) -> Response:
    rows, used = activity_series(aggregates, approvals, q.filter, q.period, reading_form.EVENT_TYPE)
    rows = [row for row in rows if occasion is None or row["occasion"] == occasion]
    return q.series("reading-promotion", rows, READING_COLUMNS, occasion=occasion, approvals=used)


@router.get("/training", summary="Staff training: records, hours, workers trained and passed",
            responses=documented(models.Training))
def training(q: Series, aggregates: AggregatesDep, approvals: ApprovalsDep) -> Response:
    rows, used = activity_series(aggregates, approvals, q.filter, q.period, training_form.EVENT_TYPE)
    return q.series("training", rows, TRAINING_COLUMNS, approvals=used)


@router.get("/donations", summary="Donations: count, books and money, by donor kind and origin",
            responses=documented(models.Donations))
def donations(
    q: Series,
    aggregates: AggregatesDep,
    approvals: ApprovalsDep,
    donor_kind: Annotated[DonorKind | None, Query(description="Only this kind of donor.")] = None,
    donor_origin: Annotated[DonorOrigin | None, Query(description="Only domestic or foreign donors.")] = None,
) -> Response:
    rows, used = activity_series(aggregates, approvals, q.filter, q.period, donation_form.EVENT_TYPE)
    rows = [row for row in rows if (donor_kind is None or row["donor_kind"] == donor_kind)
            and (donor_origin is None or row["donor_origin"] == donor_origin)]
    return q.series("donations", rows, DONATION_COLUMNS, donor_kind=donor_kind, donor_origin=donor_origin,
                    approvals=used)
