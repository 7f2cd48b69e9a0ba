"""The provincial report's content (``GET /v1/reports/province``), as a plain structure the writer
(``report_xlsx.py``) lays out: no figure here is computed anew. Each comes from the function the
API's own route calls for it, with the parameters that route would be given:

- indicators K1–K4, completeness and timeliness: ``indicators_body`` (``/v1/indicators?year=Y&as_of=D``,
  D the period's last day, or today while it runs);
- visits by month, the same months a year earlier and the totals: ``visits_body`` (``/v1/visits`` by
  month, and by year over the period for the totals); growth is ``indicators.change`` of the two;
- communes and their libraries in the model at D: ``/v1/areas?level=commune&in_programme=true`` and
  ``/v1/libraries?in_model=true&as_of=D``;
- rotation: ``province_rows`` (``/v1/rotation/provinces?as_of=D``);
- mobile sessions, reading promotion, training, donations: ``activity_series``, as their routes
  call it, by month and by year over the period (the totals);
- approval of each month: ``approval_states``, the one seam to the approval of periods.

Values stay raw (numbers, dates, booleans, codes); labels and formats are the writer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from services.clock import now_local, today_local
from services.domain.approvals import APPROVED, PROVISIONAL, Approvals
from services.domain.events import Scheme
from services.domain.forms import donation, mobile_session, reading_promotion, staff_training
from services.domain.indicators import change
from services.domain.periods import Granularity, Period, months_of, year_before
from services.query.access import Principal
from services.query.aggregates_api import activity_series, indicators_body, visits_body
from services.query.areas import AreaResolver, ResolvedArea
from services.query.params import AreaQuery
from services.query.rotation_api import province_rows
from services.store.aggregates import Aggregates
from services.store.approvals import ApprovalReader
from services.store.clickhouse import Store

# How the writer shows a column: a count, a share (0.125 → 12.5 %), an amount with decimals, a day,
# a month, a moment, a code, text, a name (Vietnamese or English), a label of the writer's
# dictionaries (``key`` prefixed), yes/no, on-track status, an approval state.
Kind = Literal["int", "pct", "decimal", "date", "month", "datetime", "code", "text", "name", "label", "yes_no",
               "status", "approval"]


@dataclass(frozen=True)
class Column:
    key: str
    kind: Kind
    labels: str = ""  # for kind "label": the dictionary its values are looked up in


@dataclass(frozen=True)
class Table:
    """One sheet: its name (a label key), columns, rows, and an optional totals row (the API's figure
    for the whole period, never a sum made here)."""

    name: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None  # a label key, written under the table


@dataclass(frozen=True)
class MonthApproval:
    """A month's approval in the province: ``approved`` (by whom, when) or ``provisional``."""

    month: date
    state: Literal["approved", "provisional"]
    approved_by: str | None = None
    approved_at: datetime | None = None


@dataclass(frozen=True)
class ProvinceReport:
    area: dict[str, Any]  # as the API writes it: scheme, code, name_vi, name_en
    period: str  # 2026-Q1 or 2026-03
    start: date
    end: date
    as_of: date  # the day the stock figures (indicators, registry, rotation) are for
    generated_at: datetime  # Asia/Ho_Chi_Minh
    key_name: str
    tables: list[Table]


def approval_states(approvals: Approvals, scheme: Scheme, province: str, months: list[date]) -> list[MonthApproval]:
    """Each month of the report as approved (by whom, when: the approvals that together cover the
    province, ``Approvals.covering``) or provisional, as ``/v1/visits`` marks its points."""
    states = []
    for month in months:
        covering = approvals.covering(scheme, province, month)
        if covering:
            states.append(MonthApproval(month, APPROVED, ", ".join(sorted({a.by for a in covering})),
                                        max(a.at for a in covering)))
        else:
            states.append(MonthApproval(month, PROVISIONAL))
    return states


def report_day(period: Period) -> date:
    """The day D the report's stock figures are for: the period's last day, or today while it runs."""
    return min(period.end, today_local())


def build_report(aggregates: Aggregates, approvals: ApprovalReader, areas: AreaResolver, store: Store,
                 principal: Principal, area: ResolvedArea, name: str, period: Period, loan_days: int
                 ) -> ProvinceReport:
    """The report of ``area`` (a province, checked against the key) for ``period`` (a month or a quarter
    named ``name``, begun)."""
    scheme, province = area.query.scheme, area.query.province
    assert province is not None  # the route asks for one
    day = report_day(period)
    months = months_of(period)
    with aggregates.one_reading():
        indicators = indicators_body(aggregates, approvals, area, period.end.year, day)["indicators"]
        tables = [
            _summary(indicators, ("K1", "K2", "K3", "K4"), "sheet.summary", "note.summary"),
            _visits(aggregates, approvals, area, period),
            _communes(areas, principal, scheme, province, day),
            _rotation(areas, store, scheme, province, day, loan_days),
            *_activities(aggregates, approvals, area, period),
            _summary(indicators, ("completeness", "timeliness"), "sheet.quality", "note.quality"),
            _approvals(approval_states(approvals.approvals(), scheme, province, months)),
        ]
    return ProvinceReport(area.area, name, period.start, period.end, day, now_local(), principal.name, tables)


def _summary(indicators: dict[str, dict[str, Any]], names: tuple[str, ...], sheet: str, note: str) -> Table:
    columns = (Column("indicator", "label", "indicator"), Column("value", "pct"), Column("numerator", "int"),
               Column("denominator", "int"), Column("target", "pct"), Column("on_track", "status"),
               Column("state", "approval"))
    return Table(sheet, columns, [{"indicator": n, **indicators[n], "state": indicators[n]["status"]} for n in names],
                 note=note)


def _visits(aggregates: Aggregates, approvals: ApprovalReader, area: ResolvedArea, period: Period) -> Table:
    """Each month of the period beside the same month a year earlier, and the period's totals, each
    month approved or provisional as ``/v1/visits`` serves it."""
    before = year_before(period)

    def series(over: Period) -> list[dict[str, Any]]:
        return visits_body(aggregates, approvals, area, over, area.filter)["series"]

    now = {row["period"]: row for row in series(period)}
    then = {row["period"]: row for row in series(before)}
    rows = []
    for month in months_of(period):
        current = now.get(f"{month:%Y-%m}", {})
        previous = then.get(f"{month.year - 1}-{month:%m}", {})
        rows.append(_visit_row(month, current, previous))
    whole = Period(period.start, period.end, "year")
    total_now = series(whole)
    total_then = series(Period(before.start, before.end, "year"))
    totals = [_visit_row(None, total_now[0] if total_now else {}, total_then[0] if total_then else {})]
    columns = (Column("month", "month"), Column("visits_total", "int"), Column("previous", "int"),
               Column("growth", "pct"), Column("visits_children", "int"), Column("loans", "int"),
               Column("reports", "int"), Column("state", "approval"))
    return Table("sheet.visits", columns, rows, totals, "note.visits")


def _visit_row(month: date | None, current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    visits, last = current.get("visits_total", 0), previous.get("visits_total", 0)
    return {"month": month, "visits_total": visits, "previous": last, "growth": change(visits, last),
            "visits_children": current.get("visits_children", 0), "loans": current.get("loans", 0),
            "reports": current.get("reports", 0), "state": current.get("status", PROVISIONAL)}


def _communes(areas: AreaResolver, principal: Principal, scheme: str, province: str, day: date) -> Table:
    """The province's communes in the programme, each with its libraries in the model at ``day`` (as
    ``/v1/libraries?in_model=true`` lists them)."""
    reach, reference = principal.reach(), areas.reference
    where = areas.resolve(principal, AreaQuery(scheme, province)).filter  # type: ignore[arg-type]
    in_model: dict[str, list[str]] = {}
    for _, info in sorted(areas.libraries(day).items()):
        lib = info.at
        if where.contains(lib.areas, lib.library_id) and reach.library(lib.areas) and lib.in_model_on(day):
            in_model.setdefault(lib.area(scheme).commune_code, []).append(info.name_vi)  # type: ignore[arg-type]
    rows = []
    for commune in reference.communes_in(scheme, province):  # type: ignore[arg-type]
        if scheme == "2025" and not reference.in_programme(commune.code):
            continue
        names = in_model.get(commune.code, [])
        rows.append({"code": commune.code, "name": (commune.name_vi, commune.name_en),
                     "district": commune.district_name_vi or None, "with_model": bool(names),
                     "libraries": len(names), "library_names": "; ".join(names)})
    columns = (Column("code", "code"), Column("name", "name"), Column("district", "text"),
               Column("with_model", "yes_no"), Column("libraries", "int"), Column("library_names", "text"))
    return Table("sheet.communes", columns, rows, note="note.communes")


def _rotation(areas: AreaResolver, store: Store, scheme: str, province: str, day: date, loan_days: int) -> Table:
    """``/v1/rotation/provinces`` for the province at ``day``, one figure a row."""
    found = [row for row in province_rows(areas, store, scheme, day, loan_days)  # type: ignore[arg-type]
             if row["province_code"] == province]
    row = found[0] if found else {}
    figures = ("batches_dispatched", "copies_dispatched", "batches_in_circulation", "copies_in_circulation",
               "batches_overdue", "copies_lost", "copies_damaged")
    rows = [{"figure": name, "value": row.get(name, 0), "share": None} for name in figures]
    rows.append({"figure": "loss_rate", "value": None, "share": row.get("loss_rate")})
    columns = (Column("figure", "label", "rotation"), Column("value", "int"), Column("share", "pct"))
    return Table("sheet.rotation", columns, rows, note="note.rotation")


def _activities(aggregates: Aggregates, approvals: ApprovalReader, area: ResolvedArea, period: Period) -> list[Table]:
    """Mobile sessions, reading promotion, training and donations by month, with the period's totals
    (the same call by year over the period), each approved or provisional as their routes serve them."""
    where, start, end = area.filter, period.start, period.end

    def read(event_type: str, granularity: Granularity) -> list[dict[str, Any]]:
        rows, _ = activity_series(aggregates, approvals, where, Period(start, end, granularity), event_type)
        return [{**row, "state": row["status"],
                 "month": date(int(row["period"][:4]), int(row["period"][5:7]), 1) if granularity == "month"
                 else None} for row in rows]

    tables = []
    for sheet, event_type, columns in (
            ("sheet.mobile", mobile_session.EVENT_TYPE,
             (Column("sessions", "int"), Column("visits_total", "int"), Column("visits_children", "int"),
              Column("visits_adults", "int"), Column("loans", "int"))),
            ("sheet.reading", reading_promotion.EVENT_TYPE,
             (Column("occasion", "label", "occasion"), Column("events", "int"), Column("participants_total", "int"),
              Column("participants_children", "int"), Column("participants_adults", "int"),
              Column("co_organised", "int"))),
            ("sheet.training", staff_training.EVENT_TYPE,
             (Column("records", "int"), Column("hours", "decimal"), Column("workers", "int"),
              Column("workers_passed", "int"))),
            ("sheet.donations", donation.EVENT_TYPE,
             (Column("donor_kind", "label", "donor_kind"), Column("donor_origin", "label", "donor_origin"),
              Column("donations", "int"), Column("books", "int"), Column("money_vnd", "int")))):
        tables.append(Table(sheet, (Column("month", "month"), *columns, Column("state", "approval")),
                            read(event_type, "month"), read(event_type, "year"), "note.activities"))
    return tables


def _approvals(states: list[MonthApproval]) -> Table:
    columns = (Column("month", "month"), Column("state", "approval"), Column("approved_by", "text"),
               Column("approved_at", "datetime"))
    rows = [{"month": s.month, "state": s.state, "approved_by": s.approved_by,
             "approved_at": s.approved_at} for s in states]
    return Table("sheet.approval", columns, rows, note="note.approval")
