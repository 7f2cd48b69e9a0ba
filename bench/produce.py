"""Filling a benchmark's topic fast (not timed): one idempotent, batching producer."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Producer


def produce_all(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Produce every ``(key, value)`` to ``topic``; return how many once the broker acked them all."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10_000,
                         "compression.type": "lz4", "enable.idempotence": True,
                         "queue.buffering.max.messages": 500_000})
    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError(f"the broker did not ack every event produced to {topic}")
    return count
