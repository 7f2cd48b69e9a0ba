"""What every runner does with a batch, written once: load, fold, write (retried), account.

The runners (``embedded.py``, ``worker.py``) differ only in where batches come from, where the
local state lives, how emitted messages are published and how offsets are committed. Metrics,
logs and write retries are here, for every processor of ``pipeline.PIPELINE``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services import metrics
from services.clock import now_local
from services.domain.state import State
from services.processors.pipeline import Batch, Folded, Processor
from services.processors.retry import until_written
from services.store.clickhouse import Store

log = logging.getLogger(__name__)


def load(processor: Processor, store: Store, batch: Batch) -> Any:
    """The store-kept state the batch touches (one query), or None for other processors."""
    return until_written(processor.load, store, batch, table=processor.name) if processor.load else None


def fold(processor: Processor, batch: Batch, state: State | None, loaded: Any) -> Folded:
    return processor.fold(batch, state, loaded, now_local())


def write(processor: Processor, store: Store, folded: Folded) -> dict[str, int]:
    """Write the folded batch, retried until the store takes it: offsets never pass unwritten rows."""
    started = time.perf_counter()
    written = until_written(processor.write, store, folded, table=processor.name)
    elapsed = time.perf_counter() - started
    metrics.STORE_WRITE_SECONDS.labels(processor=processor.name).observe(elapsed)
    for outcome, n in folded.outcomes.items():  # counted once written: what a reader of the store can see
        metrics.EVENTS_PROCESSED.labels(processor=processor.name, outcome=outcome).inc(n)
    for table, rows in written.items():
        if rows:
            metrics.ROWS_INSERTED.labels(table=table).inc(rows)
    for letter in folded.new_dead_letters:
        log.warning("dead letter %s: %s", letter.instance_id, letter.reason_en)
        metrics.DEAD_LETTERS.labels(stage=letter.stage, reason=letter.reason_code).inc()
    log.info("batch written", extra={"processor": processor.name, "rows": written, "event_ids": folded.event_ids,
                                     "outcomes": dict(folded.outcomes), "emitted": len(folded.emit),
                                     "duration_ms": round(elapsed * 1000, 1)})
    return written


def process(processor: Processor, store: Store, state: State | None, batch: Batch) -> Folded:
    """One batch through one processor, synchronously: the embedded runner's whole step."""
    folded = fold(processor, batch, state, load(processor, store, batch))
    write(processor, store, folded)
    return folded
