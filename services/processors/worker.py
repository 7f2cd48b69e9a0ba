"""The distributed processor: a faust-streaming worker running the declared pipeline over Kafka.

Run: ``python -m services.processors.worker`` (BUS is implicitly kafka; STORE_DSN is the
ClickHouse server the workers share, or a chDB path this one process then owns).

The Kafka runner of ``pipeline.PIPELINE``: one faust agent per group of topics read by the same
processors (``pipeline.consumer_groups``), each taking batches of its stream and running those
processors over them through ``runner.py``, as the embedded runner does. faust keeps the app, the
agents, the consumer group, rebalancing and the offset commits; the workers hold no state (it is
in the store), so a partition that moves to another worker is processed there at once.

Delivery is at-least-once. Events are taken in batches (``PROCESSOR_BATCH_ROWS`` /
``PROCESSOR_BATCH_MS``); faust acks a batch's offsets only after this code returns from it, and
the store writes are retried until they succeed, so offsets never pass unwritten rows. A batch
folded again after a crash gives the same rows (ReplacingMergeTree by version).

faust can skip messages around a rebalance (it hands a partition over from a later offset than
the next unprocessed one, or commits past it: faust-streaming #221, #606). Each agent keeps the
next offset it expects per partition in the store; a batch beyond it, or a partition whose log
end stays beyond it with nothing delivered, is read straight from Kafka and processed first.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import faust
from aiohttp import web

from services import logs, metrics
from services.bus.codec import Message, decode, encode
from services.bus.topics import (
    EVENT_PARTITIONS,
    INTERNAL_TOPICS,
    MAX_MESSAGE_BYTES,
    Topic,
    internal_topic_name,
    key_for,
    topic_for,
)
from services.config import Settings
from services.entrypoint import start
from services.processors import runner
from services.processors.pipeline import Batch, Processor, consumer_groups, pipeline_for
from services.processors.retry import until_written
from services.store.clickhouse import Store

log = logging.getLogger(__name__)
IDLE_GAP_S = 10.0  # a partition behind its log end with nothing delivered this long is read directly

TP = tuple[str, int]
_processed: dict[TP, int] = {}  # highest offset written to the store, per partition


def _mark_processed(offsets: dict[TP, int]) -> None:
    for tp, offset in offsets.items():
        _processed[tp] = max(_processed.get(tp, -1), offset)
        metrics.PROCESSED_OFFSET.labels(topic=tp[0], partition=str(tp[1])).set(_processed[tp])


def read_partition(bootstrap_servers: str, topic: str, partition: int, start: int, end: int
                   ) -> list[tuple[int, bytes]]:
    """Messages ``[start, end)`` of one partition, read with a plain consumer outside the group.
    Offsets on the event topics are contiguous: no transactions, no compaction."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "gap-reader",
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


def log_ends(bootstrap_servers: str, tps: list[TP]) -> dict[TP, int]:
    """The log end of each partition, from the broker."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "gap-reader", "enable.auto.commit": False})
    try:
        return {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] for t, p in tps}
    finally:
        consumer.close()


class Agent:
    """``processors`` over batches of one topic group: what one faust agent runs."""

    def __init__(self, name: str, processors: tuple[Processor, ...], settings: Settings, store: Store,
                 outputs: dict[str, faust.TopicT], app: faust.App):
        self.name, self.processors, self.settings, self.store = name, processors, settings, store
        self.outputs, self.app = outputs, app
        self.lock = asyncio.Lock()  # one batch at a time: the stream's, or the idle sweep's
        self.delivered: dict[TP, float] = {}  # when each partition last delivered or was swept
        # The next offset expected per partition assigned here: read from the store the first time a
        # partition shows up, then kept as this agent moves it on (and forgotten when it is revoked).
        self.expected_next: dict[TP, int] = {}
        # The last offset per partition ever handed to the processors (-1: none), likewise.
        self.handed_over: dict[TP, int] = {}

    @property
    def offsets_key(self) -> str:
        return f"{self.name}-offsets"

    def expected(self, tps: set[TP]) -> dict[TP, int]:
        """The next offset this agent expects per partition (none for a partition never processed)."""
        self._read_marks(tps)
        return {tp: self.expected_next[tp] for tp in tps if tp in self.expected_next}

    def _read_marks(self, tps: set[TP]) -> None:
        """The expected offsets and the handed-over marks of partitions new here, from the store."""
        fresh = {tp for tp in tps if tp not in self.handed_over}
        if not fresh:
            return
        keys = {f"{kind}:{t}:{p}": (kind, (t, p)) for t, p in fresh for kind in ("next", "seen")}
        found = until_written(self.store.load_state, self.offsets_key, keys, table="processor_state")
        for key, (value, _) in found.items():
            kind, tp = keys[key]
            (self.expected_next if kind == "next" else self.handed_over)[tp] = value["offset"]
        for tp in fresh:
            self.handed_over.setdefault(tp, -1)

    def hand_over(self, offsets: list[tuple[TP, int]]) -> bool:
        """Mark, in the store, the offsets handed to the processors; whether one of them was handed
        over before (then the batch may have been written already: ``runner.process``'s
        ``redelivered``)."""
        self._read_marks({tp for tp, _ in offsets})
        redelivered = any(offset <= self.handed_over[tp] for tp, offset in offsets)
        last: dict[TP, int] = {}
        for tp, offset in offsets:
            last[tp] = max(last.get(tp, -1), offset)
        moved = {tp: o for tp, o in last.items() if o > self.handed_over[tp]}
        if moved:
            rows = [(f"seen:{t}:{p}", {"offset": o}, o) for (t, p), o in moved.items()]
            until_written(self.store.save_state, self.offsets_key, rows, table="processor_state")
            self.handed_over |= moved
        return redelivered

    def process(self, batch: Batch, loop: asyncio.AbstractEventLoop, redelivered: bool = True) -> None:
        """Run every processor over ``batch`` (in a thread: store I/O blocks); their emitted messages are
        sent on ``loop`` and flushed before the next processor runs."""

        def emit(messages: Sequence[Message]) -> None:
            asyncio.run_coroutine_threadsafe(self._send(messages), loop).result()

        for processor in self.processors:
            runner.process(processor, self.store, batch, emit=emit, redelivered=redelivered)

    async def _send(self, messages: Sequence[Message]) -> None:
        for message in messages:
            await self.outputs[topic_for(message).name].send(key=key_for(message).encode(), value=encode(message))
        await self.app.producer.flush()  # on the broker before the batch counts as processed

    async def run_batch(self, records: list[tuple[TP, int, bytes]]) -> None:
        """(partition, offset, value) records, each partition's in order: any skipped message first, then
        all of them decoded and through the processors (in a thread, so that faust keeps fetching),
        then the expected offsets moved on."""
        loop = asyncio.get_running_loop()
        async with self.lock:
            tps = {tp for tp, _, _ in records}
            expected = await loop.run_in_executor(None, self.expected, tps)
            raw: list[tuple[int, bytes]] = []
            handed: list[tuple[TP, int]] = []
            last: dict[TP, int] = {}
            for tp, offset, value in records:
                following = last[tp] + 1 if tp in last else expected.get(tp)
                if following is not None and offset > following:
                    skipped = await loop.run_in_executor(None, read_partition,
                                                         self.settings.kafka_bootstrap_servers, tp[0], tp[1],
                                                         following, offset)
                    raw += skipped
                    handed += [(tp, o) for o, _ in skipped]
                raw.append((offset, value))  # at or before the expected offset too: read as redelivered
                handed.append((tp, offset))
                last[tp] = max(last.get(tp, -1), offset)
            moved = {tp: o + 1 for tp, o in last.items() if o + 1 > expected.get(tp, 0)}
            await loop.run_in_executor(None, self._decode_process_advance, raw, handed, moved, loop)
            self.expected_next |= moved
            now = time.monotonic()
            for tp in last:
                self.delivered[tp] = now
            _mark_processed(last)

    def _decode_process_advance(self, raw: list[tuple[int, bytes]], handed: list[tuple[TP, int]],
                                moved: dict[TP, int], loop: asyncio.AbstractEventLoop) -> None:
        redelivered = self.hand_over(handed)
        self.process([(offset, decode(value)) for offset, value in raw], loop, redelivered)
        rows = [(f"next:{t}:{p}", {"offset": offset}, offset) for (t, p), offset in moved.items()]
        until_written(self.store.save_state, self.offsets_key, rows, table="processor_state")

    async def consume(self, stream: faust.Stream) -> None:
        within = self.settings.processor_batch_ms / 1000
        async for events in stream.take_events(self.settings.processor_batch_rows, within=within):
            await self.run_batch([((e.message.topic, e.message.partition), e.message.offset, e.value)
                                  for e in events])

    async def sweep(self, topics: set[str]) -> None:
        """Read directly what a partition assigned here has past the expected offset when faust has
        delivered nothing of it for a while (it skipped the tail, and nothing later will show it)."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        assigned = {(tp.topic, tp.partition): tp for tp in self.app.consumer.assignment() if tp.topic in topics}
        async with self.lock:
            for tp in (set(self.delivered) | set(self.expected_next)) - set(assigned):
                # revoked: its next owner sweeps it, and moves its expected offset on in the store
                self.delivered.pop(tp, None)
                self.expected_next.pop(tp, None)
                self.handed_over.pop(tp, None)
        idle = set()
        for key in assigned:
            self.delivered.setdefault(key, now)
            if now - self.delivered[key] >= IDLE_GAP_S:
                idle.add(key)
        if not idle:
            return
        expected = await loop.run_in_executor(None, self.expected, idle)
        ends = {key: self.app.consumer.highwater(assigned[key]) for key in idle}
        unknown = [key for key, end in ends.items() if end is None]  # faust has not fetched it: ask the broker
        if unknown:
            ends |= await loop.run_in_executor(None, log_ends, self.settings.kafka_bootstrap_servers, unknown)
        for key in idle:
            end = ends.get(key)
            start = max(expected.get(key, 0), _processed.get(key, -1) + 1)
            self.delivered[key] = time.monotonic()
            if end is None or end <= start:
                continue
            found = await loop.run_in_executor(None, read_partition, self.settings.kafka_bootstrap_servers,
                                               key[0], key[1], start, end)
            if found:
                await self.run_batch([(key, offset, value) for offset, value in found])


class QuietWorker(faust.Worker):
    """faust's worker without its terminal spinner. At a log level of WARNING or above the spinner
    sets the root logger to DEBUG and ticks on every record, so every debug line of faust and
    aiokafka (several per event) would be built and handled, only to be dropped."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def _died_inside_a_batch(store: Store) -> bool:
    """Whether some partition was handed to the processors past what was then recorded as done
    (``seen:`` at or past ``next:``, in ``Agent``'s marks)."""
    rows = store.select(
        "SELECT processor, key, seq FROM processor_state FINAL WHERE endsWith(processor, '-offsets') "
        "AND (startsWith(key, 'seen:') OR startsWith(key, 'next:'))")
    marks: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        kind, _, partition = row["key"].partition(":")
        marks.setdefault((row["processor"], partition), {})[kind] = row["seq"]
    return any(m.get("seen", -1) >= m.get("next", 0) for m in marks.values())


def create_worker_app(settings: Settings) -> faust.App:
    app = faust.App(
        f"{settings.kafka_topic_prefix}{settings.processor_group}",
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",  # no faust tables: the processors' state is in the store
        datadir=str(settings.faust_data_dir),
        web_port=settings.faust_web_port,
        web_host=settings.host,
        topic_partitions=EVENT_PARTITIONS,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        # At least the largest message a topic takes (an approval's snapshot), so that it is fetched
        # whatever the fetch protocol: a smaller size would make aiokafka skip it as too large.
        consumer_max_fetch_size=MAX_MESSAGE_BYTES + 64 * 1024,
        broker_session_timeout=settings.faust_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.faust_session_timeout_s / 10),
        logging_config=logs.dict_config(settings),  # faust's worker re-configures logging: ours, JSON by default
        Worker=QuietWorker,
    )
    # A batch's emitted messages are queued at once; faust's default buffer of 100 makes the
    # conductor stop at every message until the buffer ebbs.
    app.producer.buffer.max_messages = max(100, 4 * settings.processor_batch_rows)
    store = Store(settings.store_dsn)
    store.migrate()
    if store.dsn.startswith("chdb://") and _died_inside_a_batch(store):
        # chDB died with the last worker, maybe between a chain insert and its views (a server would
        # not have); this worker is the store's only writer, so the rollups are made again.
        log.warning("the last worker stopped inside a batch: rebuilding the rollups from the chain rows")
        store.rebuild_rollups()
    prefix, group = settings.kafka_topic_prefix, settings.processor_group

    def topic_name(topic: Topic) -> str:
        return internal_topic_name(topic, prefix, group) if topic in INTERNAL_TOPICS else topic.named(prefix)

    def raw_topic(*names: str) -> faust.TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    outputs = {t.name: raw_topic(topic_name(t)) for t in INTERNAL_TOPICS}
    agents: list[tuple[Agent, set[str]]] = []
    for topics, processors in consumer_groups(pipeline_for(settings)):
        name = "+".join(p.name for p in processors)
        agent = Agent(name, processors, settings, store, outputs, app)
        names = [topic_name(t) for t in topics]
        app.agent(raw_topic(*names), name=f"{name}-agent")(agent.consume)
        agents.append((agent, set(names)))

    @app.timer(interval=IDLE_GAP_S / 2)
    async def sweep() -> None:
        for agent, names in agents:
            await agent.sweep(names)

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
    _, settings = start("python -m services.processors.worker", __doc__, argv, bus="kafka")
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
