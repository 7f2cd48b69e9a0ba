"""Kafka topic layout, declared once, and what each message is keyed by.

Keys are what the consuming state is about, chosen when the event is published: a submission's
events (every version and its retraction) are keyed by their chain's ``root_id``, so one partition,
hence one worker, holds a chain whatever library or day an edit moves it to. Book rotation needs a
second key, the batch: its chain stage publishes each movement's placement to ``rotation.batches``
keyed by ``batch_id`` (a repartition topic), where the batch stage folds it. Why keys at publish
time and not a repartition of everything: ``schemas/AGGREGATES.md``, "Partitioning"."""

from __future__ import annotations

from dataclasses import dataclass

from services.bus.codec import Message
from services.domain.approvals import ApprovalAction
from services.domain.events import Envelope, SubmissionRetracted
from services.domain.flag_checks import FlagCheck
from services.domain.forms import FORMS
from services.domain.quality import QualityCheck
from services.domain.rotation import BatchChange


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int  # -1: keep forever (the log is the source of replays)
    cleanup_policy: str = "delete"
    purpose: str = ""
    max_message_bytes: int | None = None  # the topic's max.message.bytes; None: the broker's (about 1 MB)

    def named(self, prefix: str) -> str:
        return f"{prefix}{self.name}"


# 12: the many-worker test runs 4 workers over them; more partitions than workers leaves room to grow.
EVENT_PARTITIONS = 12

# One topic per event kind, named after it; retractions travel on their form's topic so
# they stay in order with the versions they retract.
EVENT_TOPICS: dict[str, Topic] = {
    spec.event_type: Topic(f"events.{spec.event_type}", partitions=EVENT_PARTITIONS, retention_ms=-1,
                           purpose=f"Validated {spec.form_id} events, one per submission version.")
    for spec in FORMS.values()
}
VISIT_EVENTS = EVENT_TOPICS["visit_logged"]
DEAD_LETTERS = Topic("deadletters", partitions=1, retention_ms=-1,
                     purpose="Submissions the intake accepted or received but could not apply, with the reason.")

REJECTIONS = Topic("rejections", partitions=1, retention_ms=180 * 24 * 3600 * 1000,
                   purpose="Submissions the intake turned away (4xx) and why, for operators.")

# One partition: approvals, decisions and un-approvals are folded in one order (the log's), so that
# of two actions that raced the first wins wherever the log is replayed. An approval carries its
# snapshot of chain rows, packed (services/domain/chain_rows.py): about 50 B a chain, so 1.3 MB for a
# province-quarter of 300 libraries' daily logs; 16 MiB holds twelve times that.
APPROVALS = Topic("approvals", partitions=1, retention_ms=-1,
                  purpose="Approvals of periods by area, un-approvals, decisions on held changes and "
                          "data-quality flags marked checked (primary data: schemas/AGGREGATES.md, \"Approval\").",
                  max_message_bytes=16 * 1024 * 1024)

ROTATION_BATCHES = Topic("rotation.batches", partitions=EVENT_PARTITIONS, retention_ms=-1,
                         purpose="Book-rotation movements placed in or withdrawn from a batch, keyed by batch_id "
                                 "(the rotation chain stage's output, the batch stage's input).")

QUALITY_CHECKS = Topic("quality.checks", partitions=EVENT_PARTITIONS, retention_ms=-1,
                       purpose="Library-months whose data-quality flags may have changed, keyed by library_id "
                               "(the visit and registry processors' output, the quality stage's input).")

TOPICS: tuple[Topic, ...] = (*EVENT_TOPICS.values(), DEAD_LETTERS, REJECTIONS, APPROVALS)  # the intake and query write
INTERNAL_TOPICS: tuple[Topic, ...] = (ROTATION_BATCHES, QUALITY_CHECKS)  # what the processors write, per consumer group
# The largest message a topic takes: what the producers may send and the consumers must fetch.
MAX_MESSAGE_BYTES = max(t.max_message_bytes or 1_000_000 for t in (*TOPICS, *INTERNAL_TOPICS))


def group_topics(group: str) -> tuple[Topic, ...]:
    """The internal topics of the workers' consumer group ``group``, named after the group (as faust
    names its own), so that a replay under a new group never mixes its messages with the live ones.
    Made before any worker starts, with the declared partitions."""
    return tuple(Topic(f"{group}-{t.name}", t.partitions, t.retention_ms, t.cleanup_policy, t.purpose,
                       t.max_message_bytes) for t in INTERNAL_TOPICS)


def internal_topic_name(topic: Topic, prefix: str, group: str) -> str:
    """An internal topic's name in Kafka for consumer group ``group`` (see ``group_topics``)."""
    return f"{prefix}{group}-{topic.name}"


TOPIC_BY_EVENT_TYPE: dict[str, Topic] = {**EVENT_TOPICS, "dead_letter": DEAD_LETTERS, "rejection": REJECTIONS,
                                         "rotation_batch_change": ROTATION_BATCHES, "approval_action": APPROVALS,
                                         "flag_check": APPROVALS, "quality_check": QUALITY_CHECKS}


def topic_for(event: Message) -> Topic:
    """The topic an event goes to: its kind's, or for a retraction the retracted form's."""
    if isinstance(event, SubmissionRetracted):
        return TOPIC_BY_EVENT_TYPE[event.payload.retracts_event_type]
    return TOPIC_BY_EVENT_TYPE[event.event_type]


def key_for(event: Message) -> str:
    """Partition key: what the consuming state is about. A submission's chain (``root_id``) for
    events, a batch for rotation placements, a library for quality checks; the instanceID for dead
    letters and rejections."""
    if isinstance(event, BatchChange):
        return event.batch_id
    if isinstance(event, ApprovalAction):
        return f"{event.scheme}:{event.province}"
    if isinstance(event, FlagCheck):
        return f"legacy:{event.province}"
    if isinstance(event, QualityCheck):
        return event.library_id
    if isinstance(event, Envelope):
        return event.root_id
    return event.instance_id or event.library_id
