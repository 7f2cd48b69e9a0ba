"""What the intake published, read back from the bus, for the oracle (``tests/oracle.py``).

Both readers return ``(position, event)`` pairs, dead letters left out, in publish order. The
position is only a tie-breaker for two versions of one chain accepted in the same instant;
``submitted_at`` decides otherwise (AGGREGATES.md).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from services.bus.codec import Message, decode
from services.bus.topics import DEAD_LETTERS, EVENT_TOPICS
from services.domain.events import Envelope

# Kafka position: (monotonic timestamp in ms, topic, partition, offset); see from_kafka.
KafkaPosition = tuple[int, str, int, int]


def from_embedded_log(path: Path | str) -> list[tuple[int, Envelope]]:
    """Every event in the embedded bus's SQLite log, by log position; dead letters skipped.

    Opens the file read-only (``mode=ro``), so it can be read while the stack runs (WAL lets a
    reader see the last committed state) or after it stopped.
    """
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute("SELECT position, topic, value FROM log WHERE topic != ? ORDER BY position",
                          (DEAD_LETTERS.name,)).fetchall()
    finally:
        db.close()
    out = []
    for position, _topic, value in rows:
        event = decode(value)
        if isinstance(event, Envelope):
            out.append((position, event))
    return out


def event_topics() -> list[str]:
    """Every event topic's name, without prefix (retractions travel on their form's topic)."""
    return sorted(topic.name for topic in EVENT_TOPICS.values())


def from_kafka(bootstrap: str, prefix: str = "", topics: Iterable[str] | None = None,
               timeout_s: float = 60.0) -> list[tuple[KafkaPosition, Envelope]]:
    """Every event on the event topics, from the beginning to the end offsets as they were at the call.

    ``topics`` are names without the prefix (default: every event topic); ``prefix`` is prepended.
    The position is ``(timestamp_ms, topic, partition, offset)`` where the timestamp is made
    monotonic within each partition (max of itself and the partition's previous one): sorting by
    it keeps each partition's offset order, hence one library's publish order (the key is the
    library), and interleaves partitions by time.
    """
    return [(position, event) for position, event in messages_from_kafka(bootstrap, prefix, topics, timeout_s)
            if isinstance(event, Envelope)]


def messages_from_kafka(bootstrap: str, prefix: str = "", topics: Iterable[str] | None = None,
                        timeout_s: float = 60.0) -> list[tuple[KafkaPosition, Message]]:
    """As ``from_kafka``, but every message decoded, whatever it is (dead letters, rejections too)."""
    from confluent_kafka import Consumer, TopicPartition

    names = [f"{prefix}{name}" for name in (event_topics() if topics is None else topics)]
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"oracle-{uuid.uuid4().hex}",  # a throwaway group: nothing committed, nothing shared
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "isolation.level": "read_committed",
    })
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        ends: dict[tuple[str, int], int] = {}
        assignment = []
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                raise LookupError(f"topic {name} not found on {bootstrap}")
            for partition in sorted(topic.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=timeout_s)
                if high > low:
                    ends[(name, partition)] = high
                    assignment.append(TopicPartition(name, partition, low))
        raw: list[tuple[str, int, int, int, bytes]] = []
        if assignment:
            consumer.assign(assignment)
            pending = dict(ends)
            deadline = time.monotonic() + timeout_s
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read to the end offsets within {timeout_s}s: {sorted(pending)}")
                for message in consumer.consume(num_messages=500, timeout=1.0):
                    if message.error() is not None:
                        raise RuntimeError(f"Kafka error while reading: {message.error()}")
                    key = (message.topic(), message.partition())
                    end = ends.get(key)
                    if end is None or message.offset() >= end:
                        continue  # published after the call: not part of this snapshot
                    raw.append((message.topic(), message.partition(), message.offset(), message.timestamp()[1],
                                message.value()))
                    if message.offset() >= end - 1:
                        pending.pop(key, None)
    finally:
        consumer.close()
    out: list[tuple[KafkaPosition, Message]] = []
    last_timestamp: dict[tuple[str, int], int] = {}
    for topic, partition, offset, timestamp, value in sorted(raw, key=lambda r: (r[0], r[1], r[2])):
        stamp = max(timestamp, last_timestamp.get((topic, partition), timestamp))
        last_timestamp[(topic, partition)] = stamp
        out.append(((stamp, topic.removeprefix(prefix), partition, offset), decode(value)))
    return sorted(out, key=lambda pair: pair[0])
