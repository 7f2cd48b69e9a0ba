"""The test Kafka broker works with both client stacks the pipeline uses.

confluent-kafka (librdkafka) produces with acks=all + idempotence; aiokafka (what faust
runs on) and confluent-kafka both consume the message back from the beginning.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

pytestmark = pytest.mark.kafka


@pytest.fixture
def produced(kafka_bootstrap_servers: str) -> tuple[str, bytes, bytes]:
    """Create a fresh topic and produce one message to it; return (topic, key, value)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"test-broker-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)

    key, value = b"k-1", f"hello {topic}".encode()
    reports: list[tuple[object, object]] = []
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: reports.append((err, msg)))
    assert producer.flush(30) == 0, "message still queued after flush"
    assert len(reports) == 1
    err, msg = reports[0]
    assert err is None, f"delivery failed: {err}"
    assert msg.topic() == topic and msg.offset() == 0
    return topic, key, value


def test_aiokafka_consumer_reads_back(kafka_bootstrap_servers: str, produced: tuple[str, bytes, bytes]):
    from aiokafka import AIOKafkaConsumer

    topic, key, value = produced

    async def consume_one():
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap_servers,
            group_id=f"g-aio-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            return await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()

    record = asyncio.run(consume_one())
    assert (record.topic, record.offset, record.key, record.value) == (topic, 0, key, value)


def test_confluent_consumer_reads_back(kafka_bootstrap_servers: str, produced: tuple[str, bytes, bytes]):
    from confluent_kafka import Consumer

    topic, key, value = produced
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap_servers,
            "group.id": f"g-ck-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        msg = None
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                break
        assert msg is not None, "no message within 30s"
        assert msg.error() is None, msg.error()
        assert (msg.topic(), msg.offset(), msg.key(), msg.value()) == (topic, 0, key, value)
    finally:
        consumer.close()
