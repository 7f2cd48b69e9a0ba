"""The query planner: the smallest table that answers a question, and its SQL.

A report-chain processor's rows (``visit_chain_rows``; ``activity_chain_rows`` for mobile
sessions, reading promotion, training and donations) feed rollups through the store's
materialized views (``schemas/clickhouse/012_visit_rollups.sql`` to ``014_visits_library_day.sql``):
per library per month, per area (region, province, commune, under each scheme) per day and per
month, and for visits per library per day sorted by day. They hold the same sums as the chains,
so the planner may pick any table that can answer; it picks the smallest:

- one library, or the libraries of a type: ``visits_library_month`` when the period is whole
  months and the answer is by month, quarter or year; else ``visits_library_day`` (visits; sorted
  by day) or the chain rows (activities);
- an area (the region, a province, a commune): ``visits_area_month`` when the period is whole
  months and the answer is not by day; else ``visits_area_day``.

A rollup row's sums are already summed (``sum(x)``); a chain row counts ``sign * x`` (a cancel row
takes back what the row it cancels added), and only where the chain is ``counted``. Either way a
period with no counted report has ``reports = 0`` and is left out, as it is from the chains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.domain.activity_chains import DIMENSIONS, MEASURES
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.periods import Granularity
from services.store.clickhouse import AreaFilter

VALUES: tuple[str, ...] = (*COUNT_FIELDS, "reports", "on_time_reports")


@dataclass(frozen=True)
class Tables:
    """A family of tables over the same chains: the chain rows and their rollups."""

    chains: str
    library_month: str
    area_day: str
    area_month: str
    library_day: str | None = None  # sorted by day: some libraries by day, without scanning the chains


VISITS = Tables("visit_chain_rows", "visits_library_month", "visits_area_day", "visits_area_month",
                "visits_library_day")
ACTIVITIES = Tables("activity_chain_rows", "activity_library_month", "activity_area_day", "activity_area_month")
CHAINS, LIBRARY_MONTH, AREA_DAY, AREA_MONTH, LIBRARY_DAY = (VISITS.chains, VISITS.library_month, VISITS.area_day,
                                                            VISITS.area_month, VISITS.library_day)


def period_sql(column: str, granularity: Granularity) -> str:
    """A period label computed in SQL: YYYY-MM-DD, YYYY-MM, YYYY-Qn or YYYY."""
    return {
        "day": f"toString({column})",
        "month": f"formatDateTime({column}, '%Y-%m')",
        "quarter": f"concat(toString(toYear({column})), '-Q', toString(toQuarter({column})))",
        "year": f"toString(toYear({column}))",
    }[granularity]


@dataclass(frozen=True)
class Plan:
    """Where a visits question is answered: ``FROM {table} WHERE {where}``, dates in ``date_column``."""

    table: str
    date_column: str  # day or month
    clauses: tuple[str, ...]
    params: dict[str, Any]
    chains: bool  # the chain rows (sum sign × value), not a rollup

    def total(self, column: str) -> str:
        """The SQL summing ``column`` over the rows of this plan."""
        if self.chains:
            if column == "on_time_reports":
                raise ValueError("on_time_reports is kept by the rollups only")
            return "toInt64(sum(sign))" if column == "reports" else f"{_cast(column)}(sum(sign * {column}))"
        return f"{_cast(column)}(sum({column}))"

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses) or "1"

    def without_months(self, months: Sequence[date]) -> Plan:
        """This plan with the rows of ``months`` (their first days) left out: approved months, which a
        figure counts from their approvals instead."""
        if not months:
            return self
        return dataclasses.replace(
            self, clauses=(*self.clauses, f"toStartOfMonth({self.date_column}) NOT IN {{approved_months:Array(Date)}}"),
            params={**self.params, "approved_months": list(months)})


def _cast(column: str) -> str:
    return "toFloat64" if column == "hours" else "toInt64"


def whole_months(start: date, end: date) -> bool:
    return start.day == 1 and (end + timedelta(days=1)).day == 1


def _area_key(area: AreaFilter) -> tuple[str, str, str]:
    """(scheme, level, code) of an area's rows in the area rollups."""
    if area.commune_code:  # the API refuses a commune outside the province given: its rows say all
        return area.scheme, "commune", area.commune_code
    if area.province_code:
        return area.scheme, "province", area.province_code
    return "", "region", ""


def candidates(area: AreaFilter, start: date, end: date, granularity: Granularity,
               by_library: bool = False, family: Tables = VISITS) -> list[str]:
    """Every table of ``family`` that answers exactly, the smallest first."""
    by_library = by_library or area.by_library
    months = whole_months(start, end) and granularity != "day"
    days = [family.library_day] if family.library_day else []
    if by_library:
        return [family.library_month, *days, family.chains] if months else [*days, family.chains]
    if months:
        return [family.area_month, family.area_day, family.library_month, *days, family.chains]
    return [family.area_day, *days, family.chains]


def plan(area: AreaFilter, start: date, end: date, granularity: Granularity,
         library_ids: list[str] | None = None, table: str | None = None, family: Tables = VISITS,
         event_type: str | None = None) -> Plan:
    """The table of ``family`` that answers for ``area`` from ``start`` to ``end`` by ``granularity``
    (the libraries ``library_ids`` only, when given; the form ``event_type`` only, when given): the
    smallest that can, or ``table`` if it can."""
    tables = candidates(area, start, end, granularity, library_ids is not None, family)
    chosen = table if table is not None else tables[0]
    if chosen not in tables:
        raise ValueError(f"{chosen} cannot answer this question (it takes one of: {', '.join(tables)})")
    params: dict[str, Any] = {"start": start, "end": end}
    date_column = "month" if chosen in (family.library_month, family.area_month) else "day"
    clauses = [f"{date_column} BETWEEN {{start:Date}} AND {{end:Date}}"]
    if event_type is not None:
        clauses.insert(0, "event_type = {event_type:String}")
        params["event_type"] = event_type
    if chosen in (family.area_day, family.area_month):
        scheme, level, code = _area_key(area)
        clauses += ["scheme = {scheme:String}", "level = {level:String}", "code = {code:String}"]
        params |= {"scheme": scheme, "level": level, "code": code}
    else:
        where, values = area.where()
        clauses += where
        params |= values
        if library_ids is not None:
            clauses.append("library_id IN {library_ids:Array(String)}")
            params["library_ids"] = library_ids
        if chosen == family.chains:
            clauses.append("counted")
    return Plan(chosen, date_column, tuple(clauses), params, chosen == family.chains)


def activities_with_approved(p: Plan, months: Sequence[date], rows_json: str) -> Plan:
    """``p`` (a plan over the activity forms' chain rows) read with approved months replaced: the live chain
    rows outside ``months``, and in them the approved rows (``rows_json``: a JSON array of chain rows as
    the approval keeps them, each counted once). The figure's own SQL runs over both, so an approved
    figure is summed, grouped and counted by the same rules as a live one."""
    if not p.chains:
        raise ValueError("approved rows replace chain rows: plan over the chain rows")
    # UNION ALL matches columns by position: the measures in MEASURES' order, each of its type
    measures = ", ".join(f"JSONExtract{'Float' if m == 'hours' else 'Int'}(approved_row, 'counts', '{m}') AS {m}"
                         for m in MEASURES)
    labels = ", ".join(f"JSONExtractString(approved_row, 'labels', '{d}') AS {d}" for d in DIMENSIONS)
    places = ", ".join(f"JSONExtractString(approved_row, '{c}') AS {c}" for c in
                       ("library_id", "province_legacy", "commune_legacy", "province_2025", "commune_2025"))
    columns = ("event_type, day, library_id, province_legacy, commune_legacy, province_2025, commune_2025, "
               f"counted, sign, {', '.join(DIMENSIONS)}, {', '.join(MEASURES)}")
    table = (f"(SELECT {columns} FROM {ACTIVITIES.chains} "
             "WHERE toStartOfMonth(day) NOT IN {approved_months:Array(Date)} "
             "UNION ALL SELECT JSONExtractString(approved_row, 'event_type') AS event_type, "
             f"toDate(JSONExtractString(approved_row, 'day')) AS day, {places}, toUInt8(1) AS counted, "
             f"toInt8(1) AS sign, {labels}, {measures} "
             "FROM (SELECT arrayJoin(JSONExtractArrayRaw({approved_rows:String})) AS approved_row))")
    return dataclasses.replace(p, table=table, params={**p.params, "approved_months": list(months),
                                                       "approved_rows": rows_json})


def series_sql(p: Plan, granularity: Granularity) -> str:
    """Visits by period: every count, and ``reports``; periods without a counted report left out."""
    sums = ", ".join(f"{p.total(c)} AS {c}" for c in (*COUNT_FIELDS, "reports"))
    return (f"SELECT {period_sql(p.date_column, granularity)} AS period, {sums} FROM {p.table} "
            f"WHERE {p.where} GROUP BY period HAVING reports > 0 ORDER BY period")


def grouped_sql(p: Plan, granularity: Granularity, columns: list[tuple[str, str]], by: tuple[str, ...] = ()) -> str:
    """Totals by period (and ``by``): ``columns`` as (answer name, column); the first is the count of
    reports (``reports``), and a group where it sums to 0 is left out."""
    keys = ", ".join(("period", *by))
    sums = ", ".join(f"{p.total(column)} AS {name}" for name, column in columns)
    return (f"SELECT {period_sql(p.date_column, granularity)} AS period, {', '.join(by) + ', ' if by else ''}{sums} "
            f"FROM {p.table} WHERE {p.where} GROUP BY {keys} HAVING {columns[0][0]} > 0 ORDER BY {keys}")


def training_sql(p: Plan, granularity: Granularity) -> str:
    """Training records and hours by period, and the distinct workers trained (and passed): summed per
    worker first, so that a worker counts once per period whatever the rows that hold them."""
    return ("SELECT period, toInt64(sum(worker_records)) AS records, sum(worker_hours) AS hours, "
            "toInt64(uniqExactIf(worker_id, worker_records > 0)) AS workers, "
            "toInt64(uniqExactIf(worker_id, worker_records > 0 AND result = 'passed')) AS workers_passed "
            f"FROM (SELECT {period_sql(p.date_column, granularity)} AS period, worker_id, result, "
            f"{p.total('reports')} AS worker_records, {p.total('hours')} AS worker_hours FROM {p.table} "
            f"WHERE {p.where} GROUP BY period, worker_id, result) GROUP BY period HAVING records > 0 ORDER BY period")
