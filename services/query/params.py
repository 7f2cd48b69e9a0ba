"""The query parameters every endpoint shares: area, library type, period, dates.

Codes are read under their ``scheme`` (``legacy``: the 14 programme provinces before
2025-07-01; ``2025``: the 10 current provinces): a bare code is ambiguous (24 was Bắc Giang and
is now Bắc Ninh).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Query

from services.clock import today_local
from services.domain.errors import Reason
from services.domain.events import Scheme
from services.domain.forms.library_registry import LibraryType
from services.domain.periods import Granularity, Period, named_period
from services.problems import RequestRefused

FIRST_DAY = date(2000, 1, 1)  # the programme's data starts in 2020; ClickHouse's Date ends in 2149
LAST_DAY = date(2100, 12, 31)

# ASCII digits: a regex's \d also takes other scripts' digits ("٠٢"), which then fail later as a 500.
PROVINCE_CODE = r"^[0-9]{2}$"
NAMED_PERIOD = r"^[0-9]{4}-(0[1-9]|1[0-2]|Q[1-4])$"  # a month (2026-03) or a quarter (2026-Q1)
MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"

SchemeParam = Annotated[Scheme, Query(
    description="Scheme of the codes: `legacy` (the 14 programme provinces, before 2025-07-01) or `2025` "
                "(the 10 current provinces).")]
ProvinceParam = Annotated[str | None, Query(pattern=PROVINCE_CODE, description="Province code (under `scheme`).")]
CommuneParam = Annotated[str | None, Query(pattern=r"^[0-9]{5}$", description="Commune code (under `scheme`).")]
LibraryParam = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                                           description="Library id (e.g. `LIB-HG-0001`).")]
LibraryTypeParam = Annotated[LibraryType | None, Query(description="Only libraries of this type (registry).")]
StartParam = Annotated[date | None, Query(description="First day (default: 1 January of last year).")]
EndParam = Annotated[date | None, Query(description="Last day (default: today, Asia/Ho_Chi_Minh).")]
GranularityParam = Annotated[Granularity, Query(description="Periods: `day`, `month`, `quarter` or `year`.")]
AsOfParam = Annotated[date | None, Query(description="The date the answer is for (default: today).")]
YearParam = Annotated[int | None, Query(ge=2000, le=2100, description="The year (default: this year).")]


@dataclass(frozen=True)
class AreaQuery:
    """The area asked for: the region of a scheme, a province, a commune or a library."""

    scheme: Scheme = "legacy"
    province: str | None = None
    commune: str | None = None
    library: str | None = None
    library_type: str | None = None


def place_query(scheme: SchemeParam = "legacy", province: ProvinceParam = None, commune: CommuneParam = None,
                library: LibraryParam = None) -> AreaQuery:
    return AreaQuery(scheme, province, commune, library)


def province_query(scheme: SchemeParam = "legacy", province: ProvinceParam = None) -> AreaQuery:
    """The region of a scheme or one of its provinces (what the dashboard shows)."""
    return AreaQuery(scheme, province)


def area_query(place: Annotated[AreaQuery, Depends(place_query)],
               library_type: LibraryTypeParam = None) -> AreaQuery:
    return AreaQuery(place.scheme, place.province, place.commune, place.library, library_type)


def check_day(name: str, value: date | None) -> date | None:
    if value is not None and not FIRST_DAY <= value <= LAST_DAY:
        raise RequestRefused(400, "Date out of range", Reason(
            "date_out_of_range", f"{name} {value} nằm ngoài khoảng {FIRST_DAY} … {LAST_DAY}",
            f"{name} {value} is outside {FIRST_DAY} … {LAST_DAY}", name))
    return value


def asked_period(text: str, name: str = "period") -> Period:
    """A month or a quarter a caller named (``NAMED_PERIOD``), within the dates the API answers for;
    a problem naming ``name`` otherwise (the pattern lets year 0000 through)."""
    try:
        period = named_period(text)
    except ValueError as error:
        raise RequestRefused(400, "Invalid period", Reason(
            "invalid_period", f"kỳ {text!r} không phải một tháng hay một quý (2026-03, 2026-Q1)", str(error),
            name)) from error
    check_day(name, period.start)
    return period


def the_year(year: int | None) -> int:
    """The year asked for (default: this year); one that has not begun is refused."""
    today = today_local()
    year = year or today.year
    if year > today.year:
        raise RequestRefused(400, "Year in the future", Reason(
            "year_in_future", f"năm {year} chưa bắt đầu (hôm nay là {today})",
            f"year {year} has not begun (today is {today})", "year"))
    return year


def period_query(start: StartParam = None, end: EndParam = None,
                 granularity: GranularityParam = "month") -> Period:
    check_day("start", start)
    check_day("end", end)
    end = end or today_local()
    start = start or date(end.year - 1, 1, 1)
    if start > end:
        raise RequestRefused(400, "Empty period", Reason(
            "empty_period", f"ngày đầu {start} sau ngày cuối {end}", f"start {start} is after end {end}", "start"))
    return Period(start, end, granularity)


def as_of_query(as_of: AsOfParam = None) -> date:
    return check_day("as_of", as_of) or today_local()


AsOf = Annotated[date, Depends(as_of_query)]
