"""Create the declared topics (``services/bus/topics.py``) on a broker. Idempotent.

``python -m services.bus.admin`` — run before starting intake and workers; existing
topics are left as they are, missing ones are created with the declared layout, with the
internal topics of the workers' consumer group (PROCESSOR_GROUP). ``thuvien topics [--apply]``
does the same and prints the layout (README, "Operations").
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from services.bus.topics import TOPICS, Topic, group_topics
from services.entrypoint import start

log = logging.getLogger(__name__)


def ensure_topics(bootstrap_servers: str, prefix: str = "", replication_factor: int = 1,
                  topics: tuple[Topic, ...] = TOPICS, timeout_s: float = 30.0, group: str | None = None) -> list[str]:
    """Create the missing topics (and, given the workers' ``group``, its internal topics); return those
    created now."""
    if group is not None:
        topics = (*topics, *group_topics(group))
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "logger": log})  # librdkafka lines via logging
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(t.named(prefix), num_partitions=t.partitions, replication_factor=replication_factor,
                 config={"retention.ms": str(t.retention_ms), "cleanup.policy": t.cleanup_policy,
                         **({"max.message.bytes": str(t.max_message_bytes)} if t.max_message_bytes else {})})
        for t in topics if t.named(prefix) not in existing
    ]
    # A topic made before its limit was declared (an upgrade) gets it now: setting it is idempotent.
    raise_limits = [ConfigResource(ConfigResource.Type.TOPIC, t.named(prefix), incremental_configs=[ConfigEntry(
        "max.message.bytes", str(t.max_message_bytes), incremental_operation=AlterConfigOpType.SET)])
        for t in topics if t.named(prefix) in existing and t.max_message_bytes]
    for future in (admin.incremental_alter_configs(raise_limits).values() if raise_limits else []):
        future.result(timeout_s)
    created = []
    for name, future in (admin.create_topics(wanted, operation_timeout=timeout_s).items() if wanted else []):
        try:
            future.result(timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent run made it: fine
                raise
    return created


def main(argv: list[str] | None = None) -> None:
    _, settings = start("python -m services.bus.admin", __doc__, argv, bus="kafka")
    created = ensure_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix,
                            settings.kafka_replication_factor, group=settings.processor_group)
    print(f"created: {created or 'nothing (all topics exist)'}")


if __name__ == "__main__":
    main()
