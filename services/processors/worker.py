"""The distributed processor: a faust-streaming worker folding Kafka events into the store.

Run: ``python -m services.processors.worker`` (BUS is implicitly kafka; STORE_DSN is the
ClickHouse server, or a chDB path this process then owns).

Delivery is at-least-once. Events are taken in batches (``PROCESSOR_BATCH_ROWS`` /
``PROCESSOR_BATCH_MS``); faust acks a batch's offsets only after this code returns from it,
and the store write is retried until it succeeds, so offsets never pass unwritten rows.
Fold state lives in a faust table with a changelog topic; a batch replayed after a crash
finds its events already folded and rewrites identical rows (ReplacingMergeTree by version).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from functools import partial
from typing import Any

import faust
from aiohttp import web

from services import logs, metrics
from services.bus.codec import decode
from services.bus.topics import (
    DAILY_VISITS_TABLE,
    DEAD_LETTERS,
    EVENT_PARTITIONS,
    EVENT_TOPICS,
    REJECTIONS,
    ROTATION_TABLE,
    VISIT_EVENTS,
)
from services.clock import now_local
from services.config import Settings
from services.processors import event_archive, rotation
from services.processors.daily_visits import NAME, FoldedBatch, fold_event, write_batch
from services.processors.retry import until_written
from services.store.clickhouse import Store

log = logging.getLogger(__name__)


class TableState:
    """The fold's ``State`` port over a faust table."""

    def __init__(self, table: faust.Table):
        self._table = table

    def get(self, key: str) -> dict[str, Any] | None:
        return self._table.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._table[key] = value


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Store I/O blocks: keep it off the event loop that drives Kafka heartbeats."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


class SkippedOffsets:
    """Reads back what faust skipped. Around a rebalance faust can hand a partition over from a
    later offset than the next unprocessed one, or commit past it (faust-streaming #221, #606),
    and a restart would then never see that event again. Each stateful agent keeps the next
    offset it expects per partition in its own table (restored from the changelog after a
    crash); an event beyond it means a gap, which is read straight from Kafka and folded first.
    Offsets on the event topics are contiguous: no transactions, no compaction."""

    def __init__(self, bootstrap_servers: str, state: TableState):
        self._bootstrap = bootstrap_servers
        self._state = state

    def expected(self, topic: str, partition: int) -> int | None:
        entry = self._state.get(f"next:{topic}:{partition}")
        return entry["offset"] if entry else None

    def advance(self, topic: str, partition: int, offset: int) -> None:
        expected = self.expected(topic, partition)
        if expected is None or offset + 1 > expected:
            self._state.put(f"next:{topic}:{partition}", {"offset": offset + 1})

    def read(self, topic: str, partition: int, start: int, end: int) -> list[tuple[int, bytes]]:
        """Messages ``[start, end)`` of one partition, read with a plain consumer outside the group."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "gap-reader",
                             "enable.auto.commit": False, "enable.partition.eof": False})
        found: list[tuple[int, bytes]] = []
        try:
            consumer.assign([TopicPartition(topic, partition, start)])
            deadline = time.monotonic() + 30
            while (not found or found[-1][0] < end - 1) and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=500, timeout=1.0):
                    if message.error() is None and start <= message.offset() < end:
                        found.append((message.offset(), message.value()))
        finally:
            consumer.close()
        log.warning("read back %d skipped messages of %s[%d] from offset %d to %d", len(found), topic, partition,
                    start, end - 1)
        return found


def _with_skipped(stream: faust.Stream, events: list[Any], skipped: SkippedOffsets) -> list[tuple[int, Any]]:
    """The batch's (offset, (event, message)) pairs, each preceded by any message faust skipped in its
    partition. The expected offsets advance as they go in memory, and are written to the table once
    per partition at the end, the partition's last event made current (a table write per event would
    be a changelog message per event). A crash before those writes leaves them behind the truth: a
    later batch then reads back, and folds again harmlessly, what was already folded."""
    pairs: list[tuple[int, Any]] = []
    expected: dict[tuple[str, int], int | None] = {}
    last: dict[tuple[str, int], Any] = {}
    for event in events:
        topic, partition, offset = event.message.topic, event.message.partition, event.message.offset
        tp = (topic, partition)
        if tp not in expected:
            expected[tp] = skipped.expected(topic, partition)
        start = expected[tp]
        if start is not None and offset > start:
            pairs += [(o, (event, decode(v))) for o, v in skipped.read(topic, partition, start, offset)]
        pairs.append((offset, (event, decode(event.value))))
        expected[tp] = offset + 1 if start is None else max(start, offset + 1)
        last[tp] = event
    for (topic, partition), event in last.items():
        stream._set_current_event(event)
        skipped.advance(topic, partition, event.message.offset)
    return pairs


def _write_all(*writes: tuple[Any, ...]) -> None:
    """Each ``(write, store, batch, table)`` in turn, each retried until the store takes it."""
    for write, *args, table in writes:
        until_written(write, *args, table=table)


_processed: dict[tuple[str, int], int] = {}  # highest offset written to the store, per partition


def _mark_processed(events: list[Any]) -> None:
    for event in events:
        tp = (event.message.topic, event.message.partition)
        _processed[tp] = max(_processed.get(tp, -1), event.message.offset)
    for (topic, partition), offset in _processed.items():
        metrics.PROCESSED_OFFSET.labels(topic=topic, partition=str(partition)).set(offset)


class QuietWorker(faust.Worker):
    """faust's worker without its terminal spinner. At a log level of WARNING or above the spinner
    sets the root logger to DEBUG and ticks on every record, so every debug line of faust and
    aiokafka (several per event) would be built and handled, only to be dropped."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def create_worker_app(settings: Settings) -> faust.App:
    app = faust.App(
        f"{settings.kafka_topic_prefix}{settings.processor_group}",
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
        store=settings.faust_store,
        datadir=str(settings.faust_data_dir),
        web_port=settings.faust_web_port,
        web_host=settings.host,
        topic_partitions=EVENT_PARTITIONS,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.faust_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.faust_session_timeout_s / 10),
        logging_config=logs.dict_config(settings),  # faust's worker re-configures logging: ours, JSON by default
        Worker=QuietWorker,
    )
    # A batch's table writes (up to three changelog messages per event) are queued at once; faust's
    # default of 100 makes the conductor stop at every message of the batch until the buffer ebbs.
    # Offsets still commit only after the buffer is flushed (faust flushes it before each commit).
    app.producer.buffer.max_messages = max(100, 4 * settings.processor_batch_rows)
    store = Store(settings.store_dsn)
    store.migrate()
    prefix = settings.kafka_topic_prefix

    def raw_topic(*names: str) -> faust.TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def batches(stream: faust.Stream):  # noqa: ANN202 - faust's async generator of event lists
        return stream.take_events(settings.processor_batch_rows, within=settings.processor_batch_ms / 1000)

    # Each topic feeds exactly one agent, which also archives what it reads: two agents sharing a
    # topic must both ack a message before its offset commits, and one stalled agent stalls both.

    # Visits per library per day (services/domain/daily_visits.py), state in a faust table.
    visit_state = TableState(app.Table(DAILY_VISITS_TABLE, default=None, partitions=VISIT_EVENTS.partitions,
                                       key_type=str))  # values: plain JSON dicts (a value_type must be a Record)

    visit_skipped = SkippedOffsets(settings.kafka_bootstrap_servers, visit_state)

    @app.agent(raw_topic(VISIT_EVENTS.named(prefix)), name=f"{NAME}-agent")
    async def fold(stream: faust.Stream) -> None:
        async for events in batches(stream):
            folded, archived = FoldedBatch(), []
            for offset, (event, message) in _with_skipped(stream, events, visit_skipped):
                # Table writes go to the changelog partition of the "current event"; inside a
                # batch faust only knows the last one, so point it at each event in turn.
                stream._set_current_event(event)
                archived.append((offset, message))
                fold_event(visit_state, offset, message, folded)
            await _in_thread(_write_all, (write_batch, store, folded, "visits_library_daily"),
                             (event_archive.archive_batch, store, archived, "events"))
            _mark_processed(events)

    # Book rotation: the batch state machine (services/domain/rotation.py), its own table.
    rotation_topic = EVENT_TOPICS["rotation_moved"]
    rotation_state = TableState(app.Table(ROTATION_TABLE, default=None, partitions=rotation_topic.partitions,
                                          key_type=str))

    rotation_skipped = SkippedOffsets(settings.kafka_bootstrap_servers, rotation_state)

    @app.agent(raw_topic(rotation_topic.named(prefix)), name=f"{rotation.NAME}-agent")
    async def rotate(stream: faust.Stream) -> None:
        async for events in batches(stream):
            folded, archived, now = rotation.FoldedBatch(), [], now_local()
            for offset, (event, message) in _with_skipped(stream, events, rotation_skipped):
                stream._set_current_event(event)  # as above: each table write to its event's partition
                archived.append((offset, message))
                rotation.fold_event(rotation_state, offset, message, folded, now)
            await _in_thread(_write_all, (rotation.write_batch, store, folded, "rotation_batches"),
                             (event_archive.archive_batch, store, archived, "events"))
            _mark_processed(events)

    # Every other event kind and the dead letters: archived only.
    others = [t.named(prefix) for t in (*EVENT_TOPICS.values(), DEAD_LETTERS, REJECTIONS)
              if t not in (VISIT_EVENTS, rotation_topic)]

    @app.agent(raw_topic(*others), name=f"{event_archive.NAME}-agent")
    async def archive(stream: faust.Stream) -> None:
        async for events in batches(stream):
            batch = [(event.message.offset, decode(event.value)) for event in events]
            await _in_thread(_write_all, (event_archive.archive_batch, store, batch, "events"))
            _mark_processed(events)

    @app.timer(interval=10.0)
    async def report_lag() -> None:
        """processor_consumer_lag: log end minus what this worker wrote, per assigned partition."""
        for tp in app.consumer.assignment():
            end = app.consumer.highwater(tp)
            done = _processed.get((tp.topic, tp.partition))
            if end is not None and done is not None:
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, end - done - 1))

    @app.page("/metrics")
    async def prometheus(_self: Any, _request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    @app.page("/health")
    async def health(_self: Any, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    return app


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m services.processors.worker", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    settings = Settings.from_env(bus="kafka")
    logs.configure(settings)
    app = create_worker_app(settings)
    # faust's own command line runs the worker (signals, graceful shutdown, rebalancing); --quiet: no
    # start-up banner on stdout, so that what the process writes is log lines only.
    # faust's --loglevel takes crit/error/warn/info/debug, not Python's WARNING or CRITICAL.
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(), settings.log_level.lower())
    sys.argv = [sys.argv[0], "--quiet", "worker", "--loglevel", level,
                "--web-host", settings.host, "--web-port", str(settings.faust_web_port)]
    app.main()


if __name__ == "__main__":
    main()
