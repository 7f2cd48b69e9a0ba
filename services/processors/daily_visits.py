"""Runs the daily-visits fold over a batch of events and writes the result to the store.

Framework-free: the embedded consumer and the faust agent both call ``fold_batch`` with
their own ``State`` (SQLite / faust tables), then ``write_batch`` to the same store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services import metrics
from services.domain.daily_visits import DailyVisitsRow, State, fold_visit_event
from services.domain.events import Envelope
from services.domain.forms.visit_log import VisitLogged

log = logging.getLogger(__name__)
NAME = "daily_visits"


class Sink(Protocol):
    def upsert_daily_visits(self, rows: Sequence[DailyVisitsRow]) -> int: ...
    def record_dead_letter(self, event_id: str, event_type: str, library_id: str, reason_code: str,
                           reason: str, event: dict[str, Any]) -> None: ...


@dataclass
class FoldedBatch:
    rows: dict[tuple[str, str], DailyVisitsRow] = field(default_factory=dict)  # latest row per library-day
    dead_letters: list[tuple[VisitLogged, str, str]] = field(default_factory=list)


def fold_event(state: State, position: int, event: Envelope, into: FoldedBatch) -> None:
    if not isinstance(event, VisitLogged):
        return
    result = fold_visit_event(state, event, position)
    metrics.EVENTS_PROCESSED.labels(processor=NAME, outcome=result.outcome).inc()
    if result.outcome == "conflict":
        into.dead_letters.append((event, "instance_id_conflict", result.detail))
    for row in result.rows:
        into.rows[(row.library_id, row.day.isoformat())] = row


def fold_batch(state: State, batch: Sequence[tuple[int, Envelope]]) -> FoldedBatch:
    folded = FoldedBatch()
    for position, event in batch:
        fold_event(state, position, event, folded)
    return folded


def write_batch(sink: Sink, folded: FoldedBatch) -> int:
    """Write dead letters and changed rows; raise if the store refuses (the caller retries)."""
    try:
        for event, code, detail in folded.dead_letters:
            log.warning("dead letter %s: %s", event.event_id, detail)
            sink.record_dead_letter(event.event_id, event.event_type, event.library_id, code, detail,
                                    event.model_dump(mode="json"))
            metrics.DEAD_LETTERS.labels(reason=code).inc()
        written = sink.upsert_daily_visits(list(folded.rows.values()))
    except Exception:
        metrics.STORE_INSERT_FAILURES.labels(table="visits_library_daily").inc()
        raise
    metrics.ROWS_INSERTED.labels(table="visits_library_daily").inc(written)
    return written


def write_with_retry(sink: Sink, folded: FoldedBatch, max_backoff_s: float = 30.0) -> int:
    """Block until the store takes the batch: offsets must not move past unwritten rows."""
    delay = 0.5
    while True:
        try:
            return write_batch(sink, folded)
        except Exception:
            log.exception("store write failed; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, max_backoff_s)


def process_batch(state: State, sink: Sink, batch: Sequence[tuple[int, Envelope]]) -> int:
    return write_batch(sink, fold_batch(state, batch))
