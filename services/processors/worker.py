"""The distributed processor: a faust-streaming worker folding Kafka events into the store.

Run: ``python -m services.processors.worker`` (BUS is implicitly kafka; STORE_DSN is the
ClickHouse server, or a chDB path this process then owns).

The Kafka runner of the declared pipeline (``pipeline.py``): one agent per group of topics read by
the same processors (``pipeline.consumer_groups``), each running those processors over batches
through ``runner.py``, as the embedded runner does. Delivery is at-least-once. Events are taken in
batches (``PROCESSOR_BATCH_ROWS`` / ``PROCESSOR_BATCH_MS``); faust acks a batch's offsets only after
this code returns from it, and the store write is retried until it succeeds, so offsets never pass
unwritten rows. Local state lives in a faust table per agent (changelog topic), written once per key
per batch; the visits' chains live in the store. A batch replayed after a crash finds its events
already folded and rewrites identical rows (ReplacingMergeTree by version).
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
from services.bus.codec import decode, encode
from services.bus.topics import EVENT_PARTITIONS, INTERNAL_TOPICS, Topic, internal_topic_name, key_for, topic_for
from services.config import Settings
from services.processors import runner
from services.processors.pipeline import Processor, consumer_groups, state_table
from services.store.clickhouse import Store

log = logging.getLogger(__name__)


class TableState:
    """The fold's ``State`` port over a faust table, written once per key per batch.

    Puts are kept until ``flush``, which writes each changed key to the table once, as the current
    event of that key's partition: faust sends a table write to the changelog partition of the
    "current event", and a state key is ``<kind>:<message key>`` (the state is keyed by what its
    input is partitioned by), so the batch's event with that message key is the right one."""

    def __init__(self, table: faust.Table):
        self.table = table
        self._dirty: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._dirty[key] if key in self._dirty else self.table.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._dirty[key] = value

    def flush(self, stream: faust.Stream, by_message_key: dict[str, Any]) -> None:
        for key, value in self._dirty.items():
            stream._set_current_event(by_message_key[key.split(":", 1)[1]])
            self.table[key] = value
        self._dirty.clear()


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Store I/O blocks: keep it off the event loop that drives Kafka heartbeats."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))


class SkippedOffsets:
    """Reads back what faust skipped. Around a rebalance faust can hand a partition over from a
    later offset than the next unprocessed one, or commit past it (faust-streaming #221, #606),
    and a restart would then never see that event again. Each stateful agent keeps the next
    offset it expects per partition in its own table (restored from the changelog after a
    crash); an event beyond it means a gap, which is read straight from Kafka and folded first.
    Offsets on the event topics are contiguous: no transactions, no compaction."""

    def __init__(self, bootstrap_servers: str, table: faust.Table):
        self._bootstrap = bootstrap_servers
        self._table = table  # written directly: the caller has made the partition's event current

    def expected(self, topic: str, partition: int) -> int | None:
        entry = self._table.get(f"next:{topic}:{partition}")
        return entry["offset"] if entry else None

    def advance(self, topic: str, partition: int, offset: int) -> None:
        expected = self.expected(topic, partition)
        if expected is None or offset + 1 > expected:
            self._table[f"next:{topic}:{partition}"] = {"offset": offset + 1}

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


def _agent(settings: Settings, store: Store, processors: tuple[Processor, ...], table: faust.Table | None,
           outputs: dict[str, faust.TopicT]) -> Any:
    """The agent running ``processors`` (one topic group of the pipeline) over batches of its stream:
    decode the batch, then per processor load → fold → write (retried) → emit, then ack the batch."""
    state = TableState(table) if table is not None else None
    skipped = SkippedOffsets(settings.kafka_bootstrap_servers, table) if table is not None else None

    async def run(stream: faust.Stream) -> None:
        within = settings.processor_batch_ms / 1000
        async for events in stream.take_events(settings.processor_batch_rows, within=within):
            batch = _with_skipped(stream, events, skipped) if skipped else [
                (e.message.offset, (e, decode(e.value))) for e in events]
            decoded = [(offset, message) for offset, (_event, message) in batch]
            by_key = {key_for(message): event for _, (event, message) in batch}  # an event of each key's partition
            for processor in processors:
                loaded = await _in_thread(runner.load, processor, store, decoded)
                folded = runner.fold(processor, decoded, state if processor.state == "local" else None, loaded)
                if state is not None:
                    state.flush(stream, by_key)
                await _in_thread(runner.write, processor, store, folded)
                for message in folded.emit:
                    await outputs[topic_for(message).name].send(key=key_for(message).encode(), value=encode(message))
                if folded.emit:  # on the broker before the batch counts as processed (a replay watches for them)
                    await stream.app.producer.flush()
            _mark_processed(events)

    return run


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
    prefix, group = settings.kafka_topic_prefix, settings.processor_group

    def topic_name(topic: Topic) -> str:
        return internal_topic_name(topic, prefix, group) if topic in INTERNAL_TOPICS else topic.named(prefix)

    def raw_topic(*names: str) -> faust.TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    outputs = {t.name: raw_topic(topic_name(t)) for t in INTERNAL_TOPICS}
    for topics, processors in consumer_groups():
        table_name = state_table(processors, topics)
        table = (app.Table(table_name, default=None, partitions=topics[0].partitions, key_type=str)
                 if table_name else None)  # values: plain JSON dicts (a value_type must be a Record)
        name = f"{'+'.join(p.name for p in processors)}-agent"
        app.agent(raw_topic(*(topic_name(t) for t in topics)), name=name)(_agent(settings, store, processors, table,
                                                                                 outputs))

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
