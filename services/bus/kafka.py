"""Kafka publisher on confluent-kafka: idempotent producer, acks=all, delivery confirmed.

``publish`` blocks until the broker has acknowledged the write to all in-sync replicas,
so the intake answers 201 only for events that are durable in Kafka. ``send`` (``bus.base.Sender``)
is its first half: the event is queued to the broker and the caller gets the wait for its ack, so
it can do other work meanwhile (the intake keeps the raw XML while the broker acks). One thread serves the
producer's delivery reports and wakes each waiting publisher as soon as its own report comes,
so many requests can wait at once and their events share the broker's round trips.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaException, Producer

from services import metrics
from services.bus.base import Delivery, PublishFailed
from services.bus.codec import Message, encode
from services.bus.topics import MAX_MESSAGE_BYTES, key_for, topic_for

log = logging.getLogger(__name__)


class KafkaPublisher:
    def __init__(self, bootstrap_servers: str, topic_prefix: str = "", timeout_s: float = 15.0):
        self._producer = Producer({
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,  # implies acks=all, bounded in-flight, retries without duplicates
            "acks": "all",
            # Every publisher waits for its ack, so time spent lingering is latency on each request.
            # Under load the events still share requests: while up to 5 produce requests are in
            # flight (idempotence's bound), what arrives meanwhile queues and goes in the next one.
            "linger.ms": 1,
            # Small produce requests back to back: Nagle would hold one until the previous is acked.
            "socket.nagle.disable": True,
            "compression.type": "lz4",
            # An approval carries its snapshot: up to the approvals topic's limit (the broker checks
            # every other topic's own).
            "message.max.bytes": MAX_MESSAGE_BYTES + 64 * 1024,
            "message.timeout.ms": int(timeout_s * 1000),
            "logger": log,  # librdkafka's own log lines go through Python logging, not bare stderr
        })
        self._prefix = topic_prefix
        self._timeout_s = timeout_s
        self._closing = threading.Event()
        self._reports = threading.Thread(target=self._serve_reports, daemon=True, name="kafka-delivery-reports")
        self._reports.start()

    def _serve_reports(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)  # runs the delivery callbacks; returns early when one ran

    def send(self, event: Message) -> Delivery:
        """Queue ``event`` to the broker; the returned wait gives back once it is acked (acks=all),
        raising PublishFailed if it is refused or not acked within the timeout."""
        topic = topic_for(event).named(self._prefix)
        outcome: list[Exception | None] = []
        # A bare lock as the signal, released by the delivery report: lighter than an Event
        # (a Condition and its waiter list) on the paths every request takes.
        reported = threading.Lock()
        reported.acquire()

        def delivered(err, _msg) -> None:
            outcome.append(KafkaException(err) if err else None)
            reported.release()

        started = time.perf_counter()
        try:
            self._producer.produce(topic, key=key_for(event).encode(), value=encode(event),
                                   headers={"event_type": event.event_type}, on_delivery=delivered)
        except (KafkaException, BufferError) as exc:
            raise PublishFailed(f"could not enqueue to {topic}: {exc}") from exc

        def wait() -> None:
            reported.acquire(timeout=max(0.0, started + self._timeout_s - time.perf_counter()))
            metrics.PUBLISH_SECONDS.labels(bus="kafka").observe(time.perf_counter() - started)
            if not outcome:
                raise PublishFailed(f"no acknowledgement from Kafka for {topic} within {self._timeout_s}s")
            if outcome[0] is not None:
                raise PublishFailed(f"Kafka refused the event on {topic}: {outcome[0]}")

        return wait

    def publish(self, event: Message) -> None:
        self.send(event)()

    def close(self) -> None:
        self._closing.set()
        self._reports.join()
        self._producer.flush(self._timeout_s)
