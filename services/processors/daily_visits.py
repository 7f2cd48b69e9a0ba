"""Runs the daily-visits fold over a batch of events and writes the result to the store.

Framework-free: the embedded consumer and the faust agent both call ``fold_batch`` with
their own ``State`` (SQLite / faust tables), then ``write_batch`` to the same store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services import metrics
from services.clock import now_local
from services.domain.daily_visits import DailyVisitsRow, State, fold_visit_event, retract_visit_chain
from services.domain.dead_letters import DeadLetter
from services.domain.errors import Reason
from services.domain.events import SubmissionRetracted
from services.domain.forms.visit_log import EVENT_TYPE, VisitLogged

log = logging.getLogger(__name__)
NAME = "daily_visits"


class Sink(Protocol):
    def upsert_daily_visits(self, rows: Sequence[DailyVisitsRow]) -> int: ...
    def record_dead_letters(self, letters: Sequence[DeadLetter]) -> int: ...


@dataclass
class FoldedBatch:
    rows: dict[tuple[str, str], DailyVisitsRow] = field(default_factory=dict)  # latest row per library-day
    dead_letters: list[DeadLetter] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)  # what the batch folded, for the write's log line


def _conflict(event: VisitLogged, detail: str) -> DeadLetter:
    reason = Reason("instance_id_conflict", f"Mã bản ghi trùng với nội dung khác: {detail}",
                    f"Same instanceID with other answers: {detail}")
    return DeadLetter.of(stage="processor", reason=reason, instance_id=event.event_id, form_id=event.form_id,
                         library_id=event.library_id, submitter=event.submitter, content_hash=event.content_hash,
                         raw=b"", recorded_at=now_local(), event_json=event.model_dump_json())


def fold_event(state: State, position: int, event: object, into: FoldedBatch) -> None:
    if isinstance(event, VisitLogged):
        result = fold_visit_event(state, event, position)
    elif isinstance(event, SubmissionRetracted) and event.payload.retracts_event_type == EVENT_TYPE:
        result = retract_visit_chain(state, event, position)
    else:
        return
    metrics.EVENTS_PROCESSED.labels(processor=NAME, outcome=result.outcome).inc()
    log.info("event folded", extra={"event_id": event.event_id, "processor": NAME, "outcome": result.outcome,
                                    "library_id": event.library_id, "position": position})
    into.event_ids.append(event.event_id)
    if result.outcome == "conflict" and isinstance(event, VisitLogged):
        into.dead_letters.append(_conflict(event, result.detail))
    for row in result.rows:
        into.rows[(row.library_id, row.day.isoformat())] = row


def fold_batch(state: State, batch: Sequence[tuple[int, object]]) -> FoldedBatch:
    folded = FoldedBatch()
    for position, event in batch:
        fold_event(state, position, event, folded)
    return folded


def write_batch(sink: Sink, folded: FoldedBatch) -> int:
    """Write dead letters and changed rows; raise if the store refuses (the caller retries)."""
    started = time.perf_counter()
    try:
        if folded.dead_letters:
            sink.record_dead_letters(folded.dead_letters)
        for letter in folded.dead_letters:
            log.warning("dead letter %s: %s", letter.instance_id, letter.reason_en)
            metrics.DEAD_LETTERS.labels(stage=letter.stage, reason=letter.reason_code).inc()
        written = sink.upsert_daily_visits(list(folded.rows.values()))
    except Exception:
        log.warning("write of %d rows failed", len(folded.rows))
        raise
    elapsed = time.perf_counter() - started
    metrics.ROWS_INSERTED.labels(table="visits_library_daily").inc(written)
    metrics.STORE_WRITE_SECONDS.labels(table="visits_library_daily").observe(elapsed)
    log.info("batch written", extra={"processor": NAME, "table": "visits_library_daily", "rows": written,
                                     "dead_letters": len(folded.dead_letters), "event_ids": folded.event_ids,
                                     "duration_ms": round(elapsed * 1000, 1)})
    return written


def process_batch(state: State, sink: Sink, batch: Sequence[tuple[int, object]]) -> int:
    return write_batch(sink, fold_batch(state, batch))
