"""What every runner does with a batch, written once: load, fold, write (retried), emit, save state.

The runners (``embedded.py``, ``worker.py``) differ only in where batches come from, how emitted
messages are published and how offsets are committed. Metrics, logs and write retries are here,
for every processor of ``pipeline.PIPELINE``.

Order, so that a crash anywhere is repaired by folding the batch again: the processor's rows,
then what it emits, then its state, then (the runner) the offsets. Folded again from the state
as it was, the same events give the same rows and the same messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from services import metrics
from services.bus.codec import Message
from services.clock import now_local
from services.processors.pipeline import Batch, Folded, Processor
from services.processors.retry import until_written
from services.store.clickhouse import Store

log = logging.getLogger(__name__)


class KeyedState:
    """The fold's ``State`` port over the keys a batch touches, read from the store at once.

    Each ``put`` counts one change of its key (``seq``): the same events folded from the same state
    give the same (value, seq), whichever worker folds them and however they are batched."""

    def __init__(self, loaded: dict[str, tuple[dict[str, Any], int]], keys: set[str]):
        self._keys = keys
        self._values = {key: value for key, (value, _) in loaded.items()}
        self._seqs = {key: seq for key, (_, seq) in loaded.items()}
        self._changed: set[str] = set()

    def get(self, key: str) -> dict[str, Any] | None:
        if key not in self._keys:
            raise KeyError(f"{key} was not read for this batch: the processor's state_keys must name it")
        return self._values.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.get(key)
        self._values[key] = value
        self._seqs[key] = self._seqs.get(key, 0) + 1
        self._changed.add(key)

    def changed(self) -> list[tuple[str, dict[str, Any], int]]:
        return [(key, self._values[key], self._seqs[key]) for key in sorted(self._changed)]


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


def process(processor: Processor, store: Store, batch: Batch,
            emit: Callable[[Sequence[Message]], object] = lambda _messages: None, redelivered: bool = True) -> Folded:
    """One batch through one processor, synchronously; ``emit`` publishes what it emits.

    ``redelivered`` unless the runner knows that no message of the batch was handed to a processor
    before (it marks what it hands over, durably, before the write): the processor's ``load`` then
    reads everything a write of it could have left in the store."""
    loaded = until_written(processor.load, store, batch, redelivered, table=processor.name) if processor.load \
        else None
    state = None
    if processor.state_keys is not None:
        keys = processor.state_keys(batch)
        state = KeyedState(until_written(store.load_state, processor.name, keys, table=processor.name), keys)
    folded = processor.fold(batch, state, loaded, now_local())
    write(processor, store, folded)
    if folded.emit:
        emit(folded.emit)
    if state is not None:
        until_written(store.save_state, processor.name, state.changed(), table="processor_state")
    return folded
