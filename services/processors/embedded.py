"""The embedded runner: every processor of the pipeline over the SQLite log, in one thread.

The processors that read the same topics share a subscription (``pipeline.consumer_groups``, as
the worker's agents do); each subscription keeps its position in its own SQLite file, committed
after its batch (rows, emitted messages, state) is in the store; a crash in between replays the
batch, marked as handed over before (``SqliteOffsets.hand_over``), so the processors read what
its first run may have written. Messages a processor emits (the rotation chain stage's
placements) go to a second log, ``internal.sqlite`` beside the positions: a replay into a fresh
state directory then rebuilds them instead of reading the live stack's.

The thread brings every processor up to the end of both logs, in batches: whatever arrived
while it wrote the last batch goes into the next one, so the store sees a few large inserts
under load instead of one per submission. ``publish`` does not wait for it (201 means durable);
``caught_up`` lets a reader wait, bounded, until what was published before it is visible.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.bus.codec import decode
from services.bus.embedded import EmbeddedLog
from services.bus.topics import INTERNAL_TOPICS
from services.processors import runner
from services.processors.pipeline import PIPELINE, Processor, consumer_groups
from services.processors.sqlite_offsets import SqliteOffsets
from services.store.clickhouse import Store

log = logging.getLogger(__name__)
INTERNAL = {t.name for t in INTERNAL_TOPICS}


@dataclass
class Subscription:
    """The processors that read the same topics (``pipeline.consumer_groups``, as the worker's agents):
    each batch is read and decoded once, and goes through each of them in turn."""

    name: str
    processors: tuple[Processor, ...]
    topics: tuple[str, ...]
    log: EmbeddedLog  # where its input is: the events' log, or the internal one
    offsets: SqliteOffsets  # its position


def subscription_names() -> list[str]:
    return ["+".join(p.name for p in processors) for _, processors in consumer_groups()]


def state_files(state_dir: Path) -> dict[str, Path]:
    return {name: state_dir / f"processor-{name}.sqlite" for name in subscription_names()}


class EmbeddedRunner:
    def __init__(self, events: EmbeddedLog, store: Store, state_dir: Path, batch_rows: int = 5000,
                 max_backoff_s: float = 30.0, pipeline: tuple[Processor, ...] = PIPELINE):
        self.events, self.store, self.batch_rows = events, store, batch_rows
        self.internal = EmbeddedLog(state_dir / "internal.sqlite")
        files = state_files(state_dir)
        self.subscriptions = []
        for (topics, processors), name in zip(consumer_groups(pipeline), subscription_names(), strict=True):
            names = tuple(t.name for t in topics)
            self.subscriptions.append(Subscription(name, processors, names,
                                                   self.internal if set(names) <= INTERNAL else self.events,
                                                   SqliteOffsets(files[name])))
        self._drain_lock = threading.Lock()
        self._max_backoff_s = max_backoff_s
        # Progress: every event position ≤ _processed is in the store.
        self._progress = threading.Condition()
        self._published = self._processed = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.on_batch: Callable[[str, int], None] = lambda _processor, _n: None  # progress of a replay
        events.on_append = self._published_up_to

    def _published_up_to(self, position: int) -> None:
        with self._progress:
            self._published = max(self._published, position)
            self._progress.notify_all()

    def start(self) -> None:
        """Process what is already in the log, then follow it in a thread."""
        if any(sub.offsets.seen(sub.name) > sub.offsets.offset(sub.name) for sub in self.subscriptions):
            # A batch was handed over and never committed: the process died in it, maybe between a
            # chain insert and its views. Nothing else writes yet: the rollups are made again.
            log.warning("the last run stopped inside a batch: rebuilding the rollups from the chain rows")
            self.store.rebuild_rollups()
        self._published = self.events.end()
        if self._thread is None:
            self._thread = threading.Thread(target=self._process_forever, name="embedded-processors", daemon=True)
            self._thread.start()

    def caught_up(self, timeout_s: float = 2.0) -> bool:
        """Wait until every event published before this call is in the store (at most ``timeout_s``)."""
        with self._progress:
            target = self._published
            return self._progress.wait_for(lambda: self._processed >= target or self._stopping, timeout=timeout_s)

    def _process_forever(self) -> None:
        delay = 0.5
        while True:
            with self._progress:
                self._progress.wait_for(lambda: self._published > self._processed or self._stopping, timeout=delay)
                if self._stopping:
                    return
                target = self._published
            try:
                self.drain()
            except Exception:
                log.exception("processing the embedded log failed; retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
                continue
            delay = 0.5
            with self._progress:
                self._processed = max(self._processed, target)
                self._progress.notify_all()

    def drain(self) -> int:
        """One pass: every processor up to where its log ended when its turn came (in pipeline order, so
        what one emits is read by the next within the pass); the number of messages processed. Bounded,
        so that under a steady stream a pass ends and what it covered is reported visible."""
        done = 0
        with self._drain_lock:
            for sub in self.subscriptions:
                end = sub.log.end()
                while entries := sub.log.read(sub.topics, sub.offsets.offset(sub.name), self.batch_rows, upto=end):
                    self._step(sub, entries)
                    done += len(entries)
                    self.on_batch(sub.name, len(entries))
        return done

    def _step(self, sub: Subscription, entries: list[tuple[int, bytes]]) -> None:
        batch = [(position, decode(value)) for position, value in entries]
        redelivered = sub.offsets.hand_over(sub.name, entries[0][0], entries[-1][0])
        with sub.offsets.transaction(sub.name, entries[-1][0]):
            for processor in sub.processors:
                runner.process(processor, self.store, batch, emit=self.internal.append_many, redelivered=redelivered)

    def close(self, settle_s: float = 30.0) -> None:
        """Stop, once what was accepted before is folded (waiting at most ``settle_s``: a store that is
        down leaves it in the log, folded at the next start)."""
        if self._thread is not None:
            self.caught_up(settle_s)
            with self._progress:
                self._stopping = True
                self._progress.notify_all()
            self._thread.join(timeout=60)
            self._thread = None
        for sub in self.subscriptions:
            sub.offsets.close()
        self.internal.close()
