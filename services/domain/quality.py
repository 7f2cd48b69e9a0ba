"""Data-quality rules over a library's visit logs, evaluated per library-month.

Plain Python: the ``quality`` processor (``services/processors/pipeline.py``) hands each rule the
library's current chains (``ChainFacts``) and whether the registry had the library operating on a
day, and writes the flags that hold, replacing those of the months it evaluated. A flag is a pure
function of the chains as they stand and the registry: no "now" inside a rule (the deadline rule
compares the acceptance time each chain carries with its month's deadline), so a replay of the log
gives the same flags, and an edit that fixes a problem clears its flag at the next evaluation.

The rules, by code (``RULES``):

- ``outlier``: the month's visits are far from the library's own history: robust z-score
  0.6745·(x − median)/MAD over the library's months with reports among the 12 calendar months
  before it, flagged when |z| exceeds the threshold (``QUALITY_Z_THRESHOLD``). With fewer than
  ``MIN_HISTORY_MONTHS`` such months there is no history to judge by: not evaluated. With MAD = 0
  (most months equal) the spread is the mean absolute deviation (z = (x − median)/(1.2533·MeanAD),
  the usual fallback); with that 0 too (every month the same) nothing is flagged: there is no
  spread to measure a distance in.
- ``zero_visits``: the month has counted reports but no visit (physical or virtual) in any.
- ``late_report``: reports whose first version was accepted after the month's reporting deadline
  (its last day + ``REPORTING_GRACE_DAYS``, as ``on_time_reports`` in the library-month rollup).
- ``breakdown_mismatch``: reports whose current version's breakdowns (children + adults, female +
  male, by purpose, ethnic minority) do not add up to its total. The intake refuses such a version
  (``visit_log.breakdown_errors``), so every edit it accepts adds up; what is left is a chain whose
  current version was accepted before that check (an older intake, still in the log the store is
  rebuilt from), and an edit accepted now that fixes it clears the flag.
- ``closed_day``: reports for a day the registry says the library was not operating (its status
  at that day, or a day before it opened).
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.domain.forms.visit_log import breakdown_errors
from services.domain.periods import TIMEZONE, add_months

Rule = Literal["outlier", "zero_visits", "late_report", "breakdown_mismatch", "closed_day"]
RULES: tuple[Rule, ...] = ("outlier", "zero_visits", "late_report", "breakdown_mismatch", "closed_day")

HISTORY_MONTHS = 12  # the window of the outlier rule
MIN_HISTORY_MONTHS = 6  # months with reports in the window needed before a month is judged by it
REPORTING_GRACE_DAYS = 10  # a month's reports are due by its last day + this (schemas/AGGREGATES.md)
EARLIEST = date(2000, 1, 1)  # before any report of the programme (it began in 2024)
_MAD_SCALE = 0.6745  # MAD of a normal distribution, in standard deviations (Iglewicz & Hoaglin)
_MEAN_AD_SCALE = 1.253314  # sqrt(pi/2): mean absolute deviation to standard deviation


class QualityCheck(BaseModel):
    """What the processors tell the quality stage: a library's months from ``first`` (to ``last``, or
    every later month when None) may have changed. Keyed by ``library_id``, so one worker owns a
    library's flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: Literal["quality_check"] = "quality_check"
    library_id: str
    first: date
    last: date | None = None


@dataclass(frozen=True)
class ChainFacts:
    """One counted visit-log chain as it stands (its current version)."""

    root_id: str
    instance_id: str
    library_id: str
    day: date
    counts: Mapping[str, int]
    first_reported_at: datetime | None
    areas: tuple[str, str, str, str]  # province_legacy, commune_legacy, province_2025, commune_2025


@dataclass(frozen=True)
class Flag:
    rule: Rule
    library_id: str
    month: date
    message_vi: str
    message_en: str
    figures: dict[str, Any]
    root_ids: tuple[str, ...]
    instance_ids: tuple[str, ...]
    areas: tuple[str, str, str, str]

    @property
    def key(self) -> tuple[str, date, str]:
        return self.library_id, self.month, self.rule


@dataclass
class Checks:
    """The library-months a batch may have changed: per library, the first month and the last (None:
    every later one)."""

    ranges: dict[str, tuple[date, date | None]] = field(default_factory=dict)

    def add(self, library_id: str, first: date, last: date | None) -> None:
        first = month_of(first)
        if library_id in self.ranges:
            was_first, was_last = self.ranges[library_id]
            first = min(first, was_first)
            last = None if last is None or was_last is None else max(last, was_last)
        self.ranges[library_id] = (first, last)

    def visit_changed(self, library_id: str, day: date) -> None:
        """A report of ``day`` changed: its month, and the months whose history holds it."""
        month = month_of(day)
        self.add(library_id, month, add_months(month, HISTORY_MONTHS))

    def registry_changed(self, library_id: str) -> None:
        """The registry changed for a library: every month of it, from its first."""
        self.add(library_id, EARLIEST, None)

    def messages(self) -> list[QualityCheck]:
        return [QualityCheck(library_id=library_id, first=first, last=last)
                for library_id, (first, last) in sorted(self.ranges.items())]


def month_of(day: date) -> date:
    return day.replace(day=1)


def reporting_deadline(month: date) -> date:
    """The last day a report of ``month`` is on time."""
    return month.replace(day=calendar.monthrange(month.year, month.month)[1]) + timedelta(days=REPORTING_GRACE_DAYS)


def robust_z(value: float, history: Sequence[float]) -> tuple[float | None, float, float]:
    """(z, median, MAD) of ``value`` against ``history``; z None when the history has no spread."""
    median = statistics.median(history)
    deviations = [abs(h - median) for h in history]
    mad = statistics.median(deviations)
    if mad > 0:
        return _MAD_SCALE * (value - median) / mad, median, mad
    mean_ad = statistics.fmean(deviations)
    if mean_ad > 0:
        return (value - median) / (_MEAN_AD_SCALE * mean_ad), median, mad
    return None, median, mad


def _visits(chain: ChainFacts) -> int:
    return chain.counts["visits_total"]


def _flag(rule: Rule, month: date, chains: Sequence[ChainFacts], vi: str, en: str, **figures: Any) -> Flag:
    ordered = sorted(chains, key=lambda c: (c.day, c.root_id))
    return Flag(rule, ordered[0].library_id, month, vi, en, figures, tuple(c.root_id for c in ordered),
                tuple(c.instance_id for c in ordered), ordered[-1].areas)


def _outlier(month: date, chains: Sequence[ChainFacts], history: Sequence[int], threshold: float) -> Flag | None:
    if len(history) < MIN_HISTORY_MONTHS:
        return None
    total = sum(_visits(c) for c in chains)
    z, median, mad = robust_z(total, history)
    if z is None or abs(z) <= threshold:
        return None
    label = f"{month:%m/%Y}"
    more_vi, more_en = ("cao", "above") if z > 0 else ("thấp", "below")
    return _flag("outlier", month, chains,
                 f"Tổng lượt tháng {label} ({total}) {more_vi} bất thường so với {len(history)} tháng trước "
                 f"(trung vị {median:g}, z = {z:.1f}).",
                 f"Visits in {label} ({total}) are far {more_en} the {len(history)} months before "
                 f"(median {median:g}, robust z = {z:.1f}).",
                 visits_total=total, median=median, mad=mad, z=round(z, 2), threshold=threshold,
                 history_months=len(history))


def _zero_visits(month: date, chains: Sequence[ChainFacts]) -> Flag | None:
    if any(c.counts["visits_total"] or c.counts["virtual_visits"] for c in chains):
        return None
    return _flag("zero_visits", month, chains,
                 f"Tháng {month:%m/%Y} có {len(chains)} báo cáo nhưng không có lượt nào.",
                 f"{month:%m/%Y} has {len(chains)} report(s) but no visit.", reports=len(chains))


def _late(month: date, chains: Sequence[ChainFacts]) -> Flag | None:
    deadline = reporting_deadline(month)
    late = [c for c in chains
            if c.first_reported_at is not None and c.first_reported_at.astimezone(TIMEZONE).date() > deadline]
    if not late:
        return None
    last = max(c.first_reported_at for c in late if c.first_reported_at is not None)
    return _flag("late_report", month, late,
                 f"{len(late)} báo cáo tháng {month:%m/%Y} gửi sau hạn {deadline:%d/%m/%Y}.",
                 f"{len(late)} report(s) of {month:%m/%Y} accepted after the deadline {deadline:%d/%m/%Y}.",
                 deadline=deadline.isoformat(), reports=len(late), latest_accepted_at=last.isoformat())


def _breakdowns(month: date, chains: Sequence[ChainFacts]) -> Flag | None:
    wrong = {c.root_id: breakdown_errors(c.counts) for c in chains}
    bad = [c for c in chains if wrong[c.root_id]]
    if not bad:
        return None
    first = wrong[bad[0].root_id][0]
    return _flag("breakdown_mismatch", month, bad,
                 f"{len(bad)} báo cáo có số liệu thành phần không cộng đúng tổng lượt ({first.message_vi})",
                 f"{len(bad)} report(s) whose breakdowns do not add up to total visits ({first.message_en})",
                 reports=len(bad), fields=sorted({r.field or "" for c in bad for r in wrong[c.root_id]}))


def _closed(month: date, chains: Sequence[ChainFacts], operating: Callable[[date], bool]) -> Flag | None:
    closed = [c for c in chains if not operating(c.day)]
    if not closed:
        return None
    days = sorted({c.day for c in closed})
    listed = ", ".join(f"{d:%d/%m}" for d in days)
    return _flag("closed_day", month, closed,
                 f"{len(closed)} báo cáo cho ngày thư viện không hoạt động ({listed}).",
                 f"{len(closed)} report(s) for days the library was not operating ({listed}).",
                 reports=len(closed), days=[d.isoformat() for d in days])


def evaluate(chains: Iterable[ChainFacts], months: Iterable[date], operating: Callable[[date], bool],
             threshold: float) -> list[Flag]:
    """The flags of one library's ``months``: ``chains`` are its counted chains of those months and of
    the ``HISTORY_MONTHS`` before the first; ``operating(day)`` is the registry's word on a day."""
    by_month: dict[date, list[ChainFacts]] = {}
    for chain in chains:
        by_month.setdefault(month_of(chain.day), []).append(chain)
    totals = {m: sum(_visits(c) for c in cs) for m, cs in by_month.items()}
    flags: list[Flag] = []
    for month in sorted(set(months)):
        of_month = by_month.get(month)
        if not of_month:
            continue
        history = [totals[m] for k in range(HISTORY_MONTHS, 0, -1) if (m := add_months(month, -k)) in totals]
        for flag in (_outlier(month, of_month, history, threshold), _zero_visits(month, of_month),
                     _late(month, of_month), _breakdowns(month, of_month), _closed(month, of_month, operating)):
            if flag is not None:
                flags.append(flag)
    return flags
