"""The query planner for visits: the smallest table that answers a question, and its SQL.

The daily-visits processor's chain rows (``visit_chain_rows``) feed three rollups through the
store's materialized views (``schemas/clickhouse/012_visit_rollups.sql``): per library per month,
and per area (region, province, commune, under each scheme) per day and per month. They hold the
same sums as the chains, so the planner may pick any table that can answer; it picks the smallest:

- one library, or the libraries of a type: ``visits_library_month`` when the period is whole
  months and the answer is by month, quarter or year; else the chain rows;
- an area (the region, a province, a commune): ``visits_area_month`` when the period is whole
  months and the answer is not by day; else ``visits_area_day``.

A rollup row's sums are already summed (``sum(x)``); a chain row counts ``sign * x`` (a cancel row
takes back what the row it cancels added), and only where the chain is ``counted``. Either way a
period with no counted report has ``reports = 0`` and is left out, as it is from the chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from services.domain.forms.visit_log import COUNT_FIELDS
from services.store.clickhouse import AreaFilter

Granularity = Literal["day", "month", "quarter", "year"]
VALUES: tuple[str, ...] = (*COUNT_FIELDS, "reports", "on_time_reports")

CHAINS = "visit_chain_rows"
LIBRARY_MONTH = "visits_library_month"
AREA_DAY = "visits_area_day"
AREA_MONTH = "visits_area_month"
# The tables from the smallest (fewest rows for the same question) to the facts.
TABLES: tuple[str, ...] = (AREA_MONTH, AREA_DAY, LIBRARY_MONTH, CHAINS)


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

    def total(self, column: str) -> str:
        """The SQL summing ``column`` over the rows of this plan."""
        if self.table == CHAINS:
            if column == "on_time_reports":
                raise ValueError("on_time_reports is kept by the rollups only")
            return "toInt64(sum(sign))" if column == "reports" else f"toInt64(sum(sign * {column}))"
        return f"toInt64(sum({column}))"

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses) or "1"


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
               by_library: bool = False) -> list[str]:
    """Every table that answers exactly, the smallest first."""
    by_library = by_library or area.library_id is not None
    months = whole_months(start, end) and granularity != "day"
    if by_library:
        return [LIBRARY_MONTH, CHAINS] if months else [CHAINS]
    return [AREA_MONTH, AREA_DAY, LIBRARY_MONTH, CHAINS] if months else [AREA_DAY, CHAINS]


def plan(area: AreaFilter, start: date, end: date, granularity: Granularity,
         library_ids: list[str] | None = None, table: str | None = None) -> Plan:
    """The table that answers visits in ``area`` from ``start`` to ``end`` by ``granularity`` (the
    libraries ``library_ids`` only, when given): the smallest that can, or ``table`` if it can."""
    tables = candidates(area, start, end, granularity, by_library=library_ids is not None)
    chosen = table if table is not None else tables[0]
    if chosen not in tables:
        raise ValueError(f"{chosen} cannot answer this question (it takes one of: {', '.join(tables)})")
    params: dict[str, Any] = {"start": start, "end": end}
    date_column = "month" if chosen in (LIBRARY_MONTH, AREA_MONTH) else "day"
    clauses = [f"{date_column} BETWEEN {{start:Date}} AND {{end:Date}}"]
    if chosen in (AREA_DAY, AREA_MONTH):
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
        if chosen == CHAINS:
            clauses.append("counted")
    return Plan(chosen, date_column, tuple(clauses), params)


def series_sql(p: Plan, granularity: Granularity) -> str:
    """Visits by period: every count, and ``reports``; periods without a counted report left out."""
    sums = ", ".join(f"{p.total(c)} AS {c}" for c in (*COUNT_FIELDS, "reports"))
    return (f"SELECT {period_sql(p.date_column, granularity)} AS period, {sums} FROM {p.table} "
            f"WHERE {p.where} GROUP BY period HAVING reports > 0 ORDER BY period")
