"""Kafka topic layout, declared once. Keys are ``library_id`` so one library's events stay in order."""

from __future__ import annotations

from dataclasses import dataclass

from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.events import Envelope, SubmissionRetracted
from services.domain.forms import FORMS


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int  # -1: keep forever (the log is the source of replays)
    cleanup_policy: str = "delete"
    purpose: str = ""

    def named(self, prefix: str) -> str:
        return f"{prefix}{self.name}"


EVENT_PARTITIONS = 6

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

TOPICS: tuple[Topic, ...] = (*EVENT_TOPICS.values(), DEAD_LETTERS, REJECTIONS)

# The faust tables of services/processors/worker.py. Their changelog topics are declared
# here too and made before any worker starts: left to faust, a consumer group can join
# while the new topics still show 0 partitions, and the first table write then fails.
DAILY_VISITS_TABLE = "daily_visits-state"
ROTATION_TABLE = "rotation-state"


def changelog_topics(group: str) -> tuple[Topic, ...]:
    """Changelogs of the workers' tables for consumer group ``group`` (compacted: latest value per key)."""
    return tuple(Topic(f"{group}-{table}-changelog", partitions=EVENT_PARTITIONS, retention_ms=-1,
                       cleanup_policy="compact", purpose=f"Changelog of the {table} faust table.")
                 for table in (DAILY_VISITS_TABLE, ROTATION_TABLE))
TOPIC_BY_EVENT_TYPE: dict[str, Topic] = {**EVENT_TOPICS, "dead_letter": DEAD_LETTERS, "rejection": REJECTIONS}


def topic_for(event: Envelope | DeadLetter | Rejection) -> Topic:
    """The topic an event goes to: its kind's, or for a retraction the retracted form's."""
    if isinstance(event, SubmissionRetracted):
        return TOPIC_BY_EVENT_TYPE[event.payload.retracts_event_type]
    return TOPIC_BY_EVENT_TYPE[event.event_type]


def key_for(event: Envelope | DeadLetter | Rejection) -> str:
    """Partition key: the library, so one library's events stay in order."""
    if isinstance(event, Envelope):
        return event.library_id or event.event_id
    return event.library_id or event.instance_id
