"""Periods an answer is summed over: a span of days cut into days, months, quarters or years."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # the programme's: every calendar day and timestamp is read there
ALL_TIME = (date(1900, 1, 1), date(2999, 12, 31))  # every date a figure over all years reads

Granularity = Literal["day", "month", "quarter", "year"]


@dataclass(frozen=True)
class Period:
    """From ``start`` to ``end`` (both included), by ``granularity``."""

    start: date
    end: date
    granularity: Granularity


def label(day: date, granularity: Granularity) -> str:
    """A period's label, as the API writes it (``rollups.period_sql`` in SQL)."""
    if granularity == "day":
        return day.isoformat()
    if granularity == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if granularity == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}"


def add_months(month: date, months: int) -> date:
    """The first day of the month ``months`` after ``month``'s (before it, if negative)."""
    year, index = divmod(month.year * 12 + month.month - 1 + months, 12)
    return date(year, index + 1, 1)


def month_end(month: date) -> date:
    """The last day of ``month``'s month."""
    return add_months(month, 1) - timedelta(days=1)


_NAMED = re.compile(r"^([0-9]{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")  # ASCII digits: \d takes any script's


def named_period(text: str) -> Period:
    """A month ``2026-03`` or a quarter ``2026-Q1`` as the period of its days, by month; ValueError
    for anything else (a report is for a month or a quarter, as approvals are)."""
    match = _NAMED.match(text)
    if not match:
        raise ValueError(f"not a month or a quarter: {text!r} (use 2026-03 or 2026-Q1)")
    year = int(match.group(1))
    if year < 1:
        raise ValueError(f"no year {year}")
    first = int(match.group(2)) if match.group(2) else (int(match.group(3)) - 1) * 3 + 1
    last = first if match.group(2) else first + 2
    return Period(date(year, first, 1), month_end(date(year, last, 1)), "month")


def months_between(start: date, end: date) -> list[date]:
    """The first days of the months from ``start``'s to ``end``'s."""
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(day)
        day = add_months(day, 1)
    return months


def months_of(period: Period) -> list[date]:
    """The first days of the months ``period`` spans."""
    return months_between(period.start, period.end)


def year_before(period: Period) -> Period:
    """The same days one year earlier (29 February → 28 February)."""
    def back(day: date) -> date:
        return day.replace(year=day.year - 1, day=min(day.day, 28) if day.month == 2 else day.day)
    return Period(back(period.start), back(period.end), period.granularity)
