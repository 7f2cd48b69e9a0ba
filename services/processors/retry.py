"""Writes that must not be skipped: retried with backoff until the store takes them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from services import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


def until_written(write: Callable[..., T], *args: object, table: str, max_backoff_s: float = 5.0) -> T:
    """Block until ``write(*args)`` succeeds: consumer offsets must never move past unwritten rows.

    The backoff stays short (≤ 5 s): a store back after an outage is used within seconds, and one
    failed insert every few seconds costs it nothing."""
    delay = 0.5
    while True:
        try:
            return write(*args)
        except Exception:
            metrics.STORE_INSERT_FAILURES.labels(table=table).inc()
            log.exception("write to %s failed; retrying in %.1fs", table, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
