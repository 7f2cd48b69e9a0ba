"""Periods an answer is summed over: a span of days cut into days, months, quarters or years."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

Granularity = Literal["day", "month", "quarter", "year"]


@dataclass(frozen=True)
class Period:
    """From ``start`` to ``end`` (both included), by ``granularity``."""

    start: date
    end: date
    granularity: Granularity
