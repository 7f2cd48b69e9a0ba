"""What the operator command needs of Kafka: the declared layout, creating it, a group's lag and offsets.

confluent-kafka's AdminClient and Consumer do the work (list/describe/create topics, watermarks,
``offsets_for_times``, ``alter_consumer_group_offsets``); nothing here consumes a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from time import monotonic, sleep

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from services.bus.admin import ensure_topics
from services.bus.topics import INTERNAL_TOPICS, TOPICS, Topic, group_topics, internal_topic_name
from services.config import TIMEZONE, Settings

log = logging.getLogger(__name__)
METADATA_GRACE_S = 5.0  # how long a topic may take to appear in the metadata after it was created
_rdkafka_log = logging.getLogger("librdkafka")  # librdkafka's own lines through logging, not bare stderr


def declared_topics(group: str) -> tuple[Topic, ...]:
    """Every topic the pipeline needs: the event, dead-letter and rejection topics, and ``group``'s
    internal topics."""
    return (*TOPICS, *group_topics(group))


def worker_input_topics(settings: Settings, group: str | None = None) -> list[str]:
    """The topics the faust worker of ``group`` (default PROCESSOR_GROUP) consumes, prefixed: its consumer
    group's offsets live on these."""
    group = group or settings.processor_group
    prefix = settings.kafka_topic_prefix
    return [*(t.named(prefix) for t in TOPICS), *(internal_topic_name(t, prefix, group) for t in INTERNAL_TOPICS)]


def group_id(settings: Settings, group: str) -> str:
    """The Kafka consumer group of the workers run with ``PROCESSOR_GROUP=group`` (faust's app id)."""
    return f"{settings.kafka_topic_prefix}{group}"


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "logger": _rdkafka_log})


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                     "enable.auto.commit": False, "logger": _rdkafka_log})


def retention_text(ms: int) -> str:
    if ms < 0:
        return "forever"
    days = ms / 86_400_000
    return f"{days:g} d" if days >= 1 else f"{ms / 3_600_000:g} h"


# ------------------------------------------------------------------------------ topics


@dataclass(frozen=True)
class TopicState:
    name: str
    declared: Topic
    exists: bool
    partitions: int | None  # on the broker
    cleanup_policy: str | None  # on the broker
    created_now: bool = False
    max_message_bytes: int | None = None  # on the broker (None: not read)

    @property
    def matches(self) -> bool:
        return self.exists and not self.problem()

    def _too_small(self) -> bool:
        """A topic declared with a larger message limit (approvals) that the broker has below it."""
        wanted = self.declared.max_message_bytes
        return wanted is not None and self.max_message_bytes is not None and self.max_message_bytes < wanted

    def problem(self) -> str:
        """What differs from the declaration, in words ('' when nothing)."""
        if not self.exists:
            return "missing"
        found = []
        if self.partitions != self.declared.partitions:
            found.append(f"{self.partitions} partitions (declared {self.declared.partitions})")
        if self.cleanup_policy is not None and self.cleanup_policy != self.declared.cleanup_policy:
            found.append(f"cleanup.policy={self.cleanup_policy} (declared {self.declared.cleanup_policy})")
        if self._too_small():
            found.append(f"max.message.bytes={self.max_message_bytes} (declared {self.declared.max_message_bytes})")
        return ", ".join(found)


def topic_states(settings: Settings, topics: Sequence[Topic], timeout_s: float = 15.0,
                 admin: AdminClient | None = None) -> list[TopicState]:
    """Each declared topic as the broker has it: exists, partitions, cleanup.policy."""
    admin = admin or admin_client(settings)
    metadata = admin.list_topics(timeout=timeout_s)
    prefix = settings.kafka_topic_prefix
    names = [t.named(prefix) for t in topics]
    present = [n for n in names if n in metadata.topics and metadata.topics[n].error is None]
    policies: dict[str, str] = {}
    limits: dict[str, int] = {}
    if present:
        futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in present])
        for resource, future in futures.items():
            configs = future.result(timeout_s)
            if (entry := configs.get("cleanup.policy")) is not None:
                policies[resource.name] = entry.value
            if (entry := configs.get("max.message.bytes")) is not None and entry.value is not None:
                limits[resource.name] = int(entry.value)
    return [TopicState(name, topic, name in present,
                       len(metadata.topics[name].partitions) if name in present else None, policies.get(name),
                       max_message_bytes=limits.get(name))
            for name, topic in zip(names, topics, strict=True)]


def apply_topics(settings: Settings, group: str, timeout_s: float = 30.0) -> list[TopicState]:
    """Create what is missing of the layout (idempotent: ``services.bus.admin.ensure_topics``); report each topic."""
    created = set(ensure_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix,
                                settings.kafka_replication_factor, group=group, timeout_s=timeout_s))
    states = topic_states(settings, declared_topics(group), timeout_s)
    return [TopicState(s.name, s.declared, s.exists, s.partitions, s.cleanup_policy, s.name in created,
                       s.max_message_bytes) for s in states]


# ------------------------------------------------------------------------------ offsets and lag


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # the group's committed offset (next to read); None: nothing committed
    low: int
    end: int  # log end (high watermark)

    @property
    def lag(self) -> int:
        """Messages the group has not committed: from its offset (or the log start) to the log end."""
        start = self.committed if self.committed is not None else self.low
        return max(0, self.end - start)


def _partitions(consumer: Consumer, topics: Iterable[str], timeout_s: float) -> list[TopicPartition]:
    """The partitions of ``topics``. A topic created a moment ago (a replay's own internal topics) can be
    missing from the first metadata answer: asked again for a few seconds before it is called absent."""
    wanted = list(topics)
    deadline = monotonic() + min(timeout_s, METADATA_GRACE_S)
    while True:
        metadata = consumer.list_topics(timeout=timeout_s)
        missing = [t for t in wanted if (found := metadata.topics.get(t)) is None or found.error is not None]
        if not missing:
            break
        if monotonic() >= deadline:
            raise LookupError(f"topic {missing[0]} does not exist: run `thuvien topics --apply`")
        sleep(0.2)
    return [TopicPartition(t, p) for t in wanted for p in sorted(metadata.topics[t].partitions)]


def group_lag(settings: Settings, group: str, topics: Sequence[str] | None = None,
              timeout_s: float = 15.0) -> list[PartitionLag]:
    """Committed offset, log start and end of every partition of ``topics`` for the workers' ``group``."""
    consumer = _consumer(settings, group_id(settings, group))
    try:
        tps = _partitions(consumer, topics or worker_input_topics(settings), timeout_s)
        committed = consumer.committed(tps, timeout=timeout_s) if tps else []
        out = []
        for tp in committed:
            low, high = _watermark_offsets(consumer, TopicPartition(tp.topic, tp.partition), timeout_s)
            out.append(PartitionLag(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else None, low, high))
        return out
    finally:
        consumer.close()


def date_to_ms(day: date) -> int:
    """Midnight at the start of ``day`` in Asia/Ho_Chi_Minh, as Kafka's epoch milliseconds."""
    return int(datetime.combine(day, time(0), TIMEZONE).timestamp() * 1000)


def starting_offsets(settings: Settings, *, from_offset: int | None = None, from_date: date | None = None,
                     topics: Sequence[str] | None = None, timeout_s: float = 15.0) -> dict[tuple[str, int], int]:
    """Where a replay starts on each partition: the log start (neither argument), ``from_offset`` (clamped
    to the partition's log start and end), or the first message stamped on/after ``from_date``'s midnight
    (Asia/Ho_Chi_Minh; the log end when there is none)."""
    marks = watermarks(settings, topics, timeout_s)
    if from_date is None:
        if from_offset is not None:
            return {tp: min(max(from_offset, low), high) for tp, (low, high) in marks.items()}
        return {tp: low for tp, (low, _high) in marks.items()}
    consumer = _consumer(settings, "thuvien-ops")
    try:
        stamp = date_to_ms(from_date)
        found = consumer.offsets_for_times([TopicPartition(t, p, stamp) for t, p in marks], timeout=timeout_s)
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else marks[(tp.topic, tp.partition)][1]
                for tp in found}
    finally:
        consumer.close()


def watermarks(settings: Settings, topics: Sequence[str] | None = None,
               timeout_s: float = 15.0) -> dict[tuple[str, int], tuple[int, int]]:
    """(log start, log end) of every partition of ``topics`` (default: what the worker reads)."""
    consumer = _consumer(settings, "thuvien-ops")
    try:
        tps = _partitions(consumer, topics or worker_input_topics(settings), timeout_s)
        return {(tp.topic, tp.partition): _watermark_offsets(consumer, tp, timeout_s) for tp in tps}
    finally:
        consumer.close()


# What a partition created a moment ago answers until its leader is known; librdkafka does not
# always mark these retriable (NOT_LEADER_FOR_PARTITION came back non-retriable in a clean-clone run).
_NEW_TOPIC_ERRORS = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                               KafkaError.UNKNOWN_TOPIC_OR_PART})


def _watermark_offsets(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """A partition's (log start, log end). A topic just created may have no leader for a moment
    ("not leader for partition"): a retriable error is asked again until ``timeout_s`` has passed."""
    deadline = monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=max(0.5, deadline - monotonic()))
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in _NEW_TOPIC_ERRORS) or monotonic() >= deadline:
                raise
            sleep(0.2)


def committed_offsets(settings: Settings, group: str, topics: Sequence[str] | None = None,
                      timeout_s: float = 15.0) -> dict[tuple[str, int], int]:
    """What ``group`` has committed (partitions with nothing committed are left out)."""
    return {(p.topic, p.partition): p.committed for p in group_lag(settings, group, topics, timeout_s)
            if p.committed is not None}


def commit_offsets(settings: Settings, group: str, offsets: dict[tuple[str, int], int],
                   timeout_s: float = 30.0) -> None:
    """Set ``group``'s committed offsets (the group must have no running member)."""
    request = ConsumerGroupTopicPartitions(group_id(settings, group),
                                           [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())])
    admin = admin_client(settings)  # kept referenced until the futures resolve: its thread answers them
    for future in admin.alter_consumer_group_offsets([request]).values():
        result = future.result(timeout_s)
        failed = [tp for tp in result.topic_partitions if tp.error is not None]
        if failed:
            raise KafkaException(f"could not commit offsets of {group}: {failed[0].error} on "
                                 f"{failed[0].topic}[{failed[0].partition}]")
