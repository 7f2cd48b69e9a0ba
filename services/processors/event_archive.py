"""Writes every accepted event and every dead letter to the store, as published.

No state: rows are keyed by event_id / dead_letter_id, so re-delivery rewrites them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from services import metrics
from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.events import Envelope

log = logging.getLogger(__name__)
NAME = "event_archive"


class Sink(Protocol):
    def insert_events(self, events: Sequence[tuple[int, Envelope]]) -> int: ...
    def record_dead_letters(self, letters: Sequence[DeadLetter]) -> int: ...
    def record_rejections(self, rejections: Sequence[Rejection]) -> int: ...


def archive_batch(sink: Sink, batch: Sequence[tuple[int, object]]) -> int:
    events = [(position, e) for position, e in batch if isinstance(e, Envelope)]
    letters = [e for _, e in batch if isinstance(e, DeadLetter)]
    rejections = [e for _, e in batch if isinstance(e, Rejection)]
    started = time.perf_counter()
    written = 0
    if rejections:
        written += sink.record_rejections(rejections)
        metrics.ROWS_INSERTED.labels(table="rejections").inc(len(rejections))
    if events:
        written += sink.insert_events(events)
        metrics.ROWS_INSERTED.labels(table="events").inc(len(events))
    if letters:
        written += sink.record_dead_letters(letters)
        metrics.ROWS_INSERTED.labels(table="dead_letters").inc(len(letters))
        for letter in letters:
            metrics.DEAD_LETTERS.labels(stage=letter.stage, reason=letter.reason_code).inc()
    metrics.EVENTS_PROCESSED.labels(processor=NAME, outcome="archived").inc(len(batch))
    elapsed = time.perf_counter() - started
    metrics.STORE_WRITE_SECONDS.labels(table="events").observe(elapsed)
    fields = {"processor": NAME, "table": "events", "rows": len(events), "event_ids": [e.event_id for _, e in events],
              "duration_ms": round(elapsed * 1000, 1)}
    if letters:
        fields["dead_letter_instance_ids"] = [letter.instance_id for letter in letters]
    if rejections:
        fields["rejection_instance_ids"] = [r.instance_id for r in rejections]
    log.info("batch written", extra=fields)
    return written
