"""Programme time: every date and timestamp is Asia/Ho_Chi_Minh."""

from __future__ import annotations

from datetime import date, datetime

from services.config import TIMEZONE


def now_local() -> datetime:
    return datetime.now(TIMEZONE)


def today_local() -> date:
    return now_local().date()
