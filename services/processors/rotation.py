"""Runs the book-rotation fold over a batch of events and writes the result to the store.

Framework-free, like ``processors/daily_visits.py``: the embedded consumer and the faust agent
both call ``fold_batch`` (or ``fold_event`` per event) with their own ``State``, then
``write_batch`` to the same store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services import metrics
from services.clock import now_local
from services.domain.daily_visits import State
from services.domain.dead_letters import DeadLetter
from services.domain.errors import Reason
from services.domain.forms.rotation_movement import RotationMoved
from services.domain.rotation import LetterChange, RotationBatchRow, RotationMovementRow, fold
from services.store import rotation as rotation_store
from services.store.clickhouse import Store

log = logging.getLogger(__name__)
NAME = "rotation"


@dataclass
class FoldedBatch:
    batches: dict[str, RotationBatchRow] = field(default_factory=dict)  # latest row per batch
    movements: dict[tuple[str, str], RotationMovementRow] = field(default_factory=dict)  # per (batch, root)
    letters: dict[str, LetterChange] = field(default_factory=dict)  # latest change per dead letter
    event_ids: list[str] = field(default_factory=list)  # what the batch folded, for the write's log line


def _conflict(event: RotationMoved, detail: str, now: datetime) -> LetterChange:
    reason = Reason("instance_id_conflict", f"Mã bản ghi trùng với nội dung khác: {detail}",
                    f"Same instanceID with other answers: {detail}")
    letter = DeadLetter.of(stage="processor", reason=reason, instance_id=event.event_id, form_id=event.form_id,
                           library_id=event.library_id, submitter=event.submitter, content_hash=event.content_hash,
                           raw=b"", recorded_at=now, event_json=event.model_dump_json())
    return LetterChange(letter, resolved=False, new=True)


def fold_event(state: State, position: int, event: object, into: FoldedBatch, now: datetime | None = None) -> None:
    now = now or now_local()
    result = fold(state, event, position, now)
    if result is None:
        return
    metrics.EVENTS_PROCESSED.labels(processor=NAME, outcome=result.outcome).inc()
    event_id = getattr(event, "event_id", "")
    log.info("event folded", extra={"event_id": event_id, "processor": NAME, "outcome": result.outcome,
                                    "library_id": getattr(event, "library_id", ""), "position": position})
    into.event_ids.append(event_id)
    if result.outcome == "conflict" and isinstance(event, RotationMoved):
        change = _conflict(event, result.detail, now)
        into.letters[change.letter.dead_letter_id] = change
    for row in result.batches:
        into.batches[row.batch_id] = row
    for movement in result.movements:
        into.movements[(movement.batch_id, movement.root_id)] = movement
    for change in result.letters:
        earlier = into.letters.get(change.letter.dead_letter_id)
        # opened then closed within one batch: still counted as opened once
        new = change.new or (earlier is not None and earlier.new)
        into.letters[change.letter.dead_letter_id] = LetterChange(change.letter, change.resolved, new)


def fold_batch(state: State, batch: Sequence[tuple[int, object]]) -> FoldedBatch:
    folded = FoldedBatch()
    now = now_local()
    for position, event in batch:
        fold_event(state, position, event, folded, now)
    return folded


def write_batch(store: Store, folded: FoldedBatch) -> int:
    """Write dead letters, then movements, then batches; raise if the store refuses (the caller retries)."""
    started = time.perf_counter()
    try:
        letters = rotation_store.record_letters(store, list(folded.letters.values()))
        moved = rotation_store.upsert_movements(store, list(folded.movements.values()))
        batches = rotation_store.upsert_batches(store, list(folded.batches.values()))
    except Exception:
        log.warning("write of %d batches failed", len(folded.batches))
        raise
    for change in folded.letters.values():
        if change.new:
            log.warning("dead letter %s: %s", change.letter.instance_id, change.letter.reason_en)
            metrics.DEAD_LETTERS.labels(stage=change.letter.stage, reason=change.letter.reason_code).inc()
    metrics.ROWS_INSERTED.labels(table="dead_letters").inc(letters)
    metrics.ROWS_INSERTED.labels(table="rotation_movements").inc(moved)
    metrics.ROWS_INSERTED.labels(table="rotation_batches").inc(batches)
    elapsed = time.perf_counter() - started
    metrics.STORE_WRITE_SECONDS.labels(table="rotation_batches").observe(elapsed)
    log.info("batch written", extra={"processor": NAME, "table": "rotation_batches", "rows": batches,
                                     "movements": moved, "dead_letters": letters, "event_ids": folded.event_ids,
                                     "duration_ms": round(elapsed * 1000, 1)})
    return batches + moved


def process_batch(state: State, store: Store, batch: Sequence[tuple[int, object]]) -> int:
    return write_batch(store, fold_batch(state, batch))
