"""Programme indicators K1–K4 and reporting completeness: ratios, targets, on-track status.

Plain Python: the store supplies per-library facts, this module counts and divides.
Definitions in ``schemas/AGGREGATES.md``; targets are data (``services/reference/targets.csv``).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

TARGETS_FILE = Path(__file__).resolve().parents[1] / "reference" / "targets.csv"


@dataclass(frozen=True)
class Indicator:
    value: float | None
    numerator: float
    denominator: float
    target: float | None
    on_track: bool | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@cache
def milestones(path: Path = TARGETS_FILE) -> dict[str, list[tuple[int, float]]]:
    table: dict[str, list[tuple[int, float]]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            table.setdefault(row["indicator"], []).append((int(row["year"]), float(row["target"])))
    return {name: sorted(points) for name, points in table.items()}


def target_for(indicator: str, year: int) -> float | None:
    """The milestone's target, interpolated linearly between milestones; flat before the first and after the last."""
    points = milestones().get(indicator)
    if not points:
        return None
    if year <= points[0][0]:
        return points[0][1]
    for (y0, t0), (y1, t1) in zip(points, points[1:], strict=False):
        if y0 <= year <= y1:
            return round(t0 + (t1 - t0) * (year - y0) / (y1 - y0), 6)
    return points[-1][1]


def ratio(numerator: float, denominator: float, indicator: str | None = None, year: int | None = None) -> Indicator:
    value = round(numerator / denominator, 6) if denominator else None
    target = target_for(indicator, year) if indicator and year else None
    on_track = None if value is None or target is None else value >= target
    return Indicator(value, numerator, denominator, target, on_track)


def change(current: float, previous: float) -> float | None:
    """Relative change (0.12 = +12 %); None when there is nothing to compare with."""
    return round(current / previous - 1, 6) if previous else None


def cagr(last: float, first: float, years: int) -> float | None:
    """Average yearly growth from ``first`` to ``last`` over ``years`` years."""
    if years <= 0 or first <= 0:
        return None
    return round((last / first) ** (1 / years) - 1, 6)


def growth_indicator(current: float, previous: float, year: int) -> Indicator:
    """K4: its value is a growth rate, not a share, so it is built from the two totals."""
    value = change(current, previous)
    target = target_for("K4", year)
    return Indicator(value, current, previous, target, None if value is None or target is None else value >= target)
